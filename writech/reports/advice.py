"""What to do: students needing attention with one action each, tiers, a student's
suggestions and strengths, and what a class should re-teach next week.

Every item carries the numbers it rests on; the thresholds are `Thresholds`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from writech.reports.homework import main_error_type
from writech.reports.indicators import SCORES, Member
from writech.reports.model import (
    AboveClass,
    Action,
    AttentionReason,
    AttentionStudent,
    CharacterScore,
    CharactersImproving,
    CharactersMastered,
    ClassCharacter,
    ContactFamily,
    Declining,
    FarBelowClass,
    FullMarks,
    GroupKnowledgePoint,
    Improved,
    ImproveIndicator,
    Indicator,
    IndicatorKey,
    NextWeek,
    NoActivity,
    Period,
    PointMastered,
    PointsMastered,
    PractiseCharacters,
    PractiseKnowledgePoint,
    Reading,
    SteadyPractice,
    Strength,
    StudentKnowledgePoint,
    Suggestion,
    Thresholds,
    Tier,
    TierGroup,
)

RETEACH: Final = 3  # knowledge points and characters to re-teach next week
CHARACTERS_PER_ITEM: Final = 3  # characters named in one action or suggestion
QUESTIONS_PER_ITEM: Final = 3  # wrong questions named in one action or suggestion
POINTS_PER_ITEM: Final = 3  # knowledge points named in one strength
MAX_SUGGESTIONS: Final = 5
MAX_STRENGTHS: Final = 5
KNOWLEDGE_POINT_SUGGESTIONS: Final = 2
TIERS: Final[tuple[Tier, ...]] = ("support", "steady", "stretch", "insufficient")
# A student's stroke-order score from one week to the next depends on which
# characters the lessons practised: no decline is read from it.
DECLINING: Final[tuple[IndicatorKey, ...]] = tuple(
    k for k in SCORES if k != "stroke_order_accuracy"
)
# What improves with practice: the indicators suggestions and strengths speak of.
_COMPARED: Final[tuple[IndicatorKey, ...]] = (*SCORES, "writing_speed")


@dataclass(frozen=True)
class Pupil:
    """What advice needs to know about one student over the period."""

    student_id: str
    member: Member
    points: Sequence[StudentKnowledgePoint]
    characters: Sequence[CharacterScore]  # needing practice, lowest first


def _gap(reason: AttentionReason) -> float:
    if isinstance(reason, Declining):
        return reason.drop
    return reason.gap if isinstance(reason, FarBelowClass) else math.inf


def reasons(
    member: Member,
    period: Period,
    class_readings: dict[IndicatorKey, Reading],
    limits: Thresholds,
) -> list[AttentionReason]:
    """Why a student with data needs attention, on the 0-100 scores, largest gap first."""
    found: list[AttentionReason] = []
    current, previous = member.over(period), member.over(period.previous())
    for key in SCORES:
        now, before = current.value(key), previous.value(key)
        if (
            key in DECLINING
            and now is not None
            and before is not None
            and min(current.counts[key], previous.counts[key]) >= limits.min_events_decline
            and before - now >= limits.decline_points
        ):
            found.append(
                Declining(
                    indicator=key,
                    previous=round(before, 2),
                    current=round(now, 2),
                    drop=round(before - now, 2),
                )
            )
        value = current.reading(key, limits).value
        reference = class_readings[key]
        if (
            value is not None
            and reference.value is not None
            and reference.count >= limits.min_students_far_below
            and reference.value - value >= limits.far_below_points
        ):
            found.append(
                FarBelowClass(
                    indicator=key,
                    value=value,
                    class_median=reference.value,
                    gap=round(reference.value - value, 2),
                )
            )
    return sorted(found, key=lambda r: -_gap(r))


def pattern_points(
    points: Sequence[StudentKnowledgePoint], limits: Thresholds
) -> list[StudentKnowledgePoint]:
    """Knowledge points the student errs on repeatedly, more often than the class."""
    found = [
        p
        for p in points
        if p.error_rate is not None
        and p.homework_with_errors >= limits.min_homework_with_errors
        and (p.class_error_rate is None or p.error_rate > p.class_error_rate)
    ]
    return sorted(found, key=lambda p: (-(p.error_rate or 0.0), -p.wrong_questions))


def practise_point(point: StudentKnowledgePoint) -> PractiseKnowledgePoint:
    return PractiseKnowledgePoint(
        subject=point.subject,
        knowledge_point=point.knowledge_point,
        homework_with_errors=point.homework_with_errors,
        graded_homework=point.graded_homework,
        error_rate=point.error_rate,
        class_error_rate=point.class_error_rate,
        main_error_type=main_error_type(point),
        questions=point.questions[:QUESTIONS_PER_ITEM],
    )


def action(
    pupil: Pupil,
    found: Sequence[AttentionReason],
    period: Period,
    class_readings: dict[IndicatorKey, Reading],
    limits: Thresholds,
) -> Action:
    """The one thing to do first for a student needing attention: the main reason's remedy."""
    main = found[0]
    if isinstance(main, NoActivity):
        return ContactFamily(previous_active_days=main.previous_active_days)
    key = main.indicator
    points = pattern_points(pupil.points, limits)
    if key in ("homework_score", "exam_score") and points:
        return practise_point(points[0])
    if key == "stroke_order_accuracy" and pupil.characters:
        return PractiseCharacters(characters=list(pupil.characters[:CHARACTERS_PER_ITEM]))
    value = pupil.member.over(period).value(key)
    assert value is not None  # a reason rests on events of this period
    return ImproveIndicator(
        indicator=key,
        value=round(value, 2),
        class_median=class_readings[key].value,
        previous=pupil.member.over(period.previous()).reading(key, limits).value,
    )


def attention(
    pupils: Sequence[Pupil],
    class_id: str,
    period: Period,
    class_readings: dict[IndicatorKey, Reading],
    limits: Thresholds,
) -> list[AttentionStudent]:
    """Students of one class needing attention (需辅导), most urgent first."""
    found = []
    for pupil in pupils:
        why: list[AttentionReason]
        if pupil.member.active_days(period):
            why = reasons(pupil.member, period, class_readings, limits)
        elif previous_days := pupil.member.active_days(period.previous()):
            why = [NoActivity(previous_active_days=previous_days)]
        else:
            why = []
        if why:
            found.append(
                AttentionStudent(
                    student_id=pupil.student_id,
                    class_id=class_id,
                    reasons=why,
                    action=action(pupil, why, period, class_readings, limits),
                )
            )
    return sorted(found, key=urgency)


def urgency(student: AttentionStudent) -> tuple[bool, int, float, str]:
    """Silent students first, then more reasons, then the largest gap in points."""
    silent = any(isinstance(reason, NoActivity) for reason in student.reasons)
    gaps = [_gap(r) for r in student.reasons if not isinstance(r, NoActivity)]
    return (not silent, -len(student.reasons), -max(gaps, default=0.0), student.student_id)


def tier(member: Member, period: Period, needs_support: bool, limits: Thresholds) -> Tier:
    """需辅导 if any reason for attention; else by the homework score: 拔高 from
    `stretch_score`, 稳定 below it, and "too little data" without enough homework."""
    if needs_support:
        return "support"
    homework = member.over(period).reading("homework_score", limits).value
    if homework is None:
        return "insufficient"
    return "stretch" if homework >= limits.stretch_score else "steady"


def tier_groups(tiers: dict[str, Tier]) -> list[TierGroup]:
    return [
        TierGroup(tier=name, students=sorted(s for s, t in tiers.items() if t == name))
        for name in TIERS
    ]


def next_week(
    points: Sequence[GroupKnowledgePoint],
    characters: Sequence[ClassCharacter],
    limits: Thresholds,
) -> NextWeek:
    """The three knowledge points and characters most students get wrong, if enough do."""
    return NextWeek(
        knowledge_points=[
            p
            for p in points
            if p.student_share is not None and p.students_repeated >= limits.min_students_reteach
        ][:RETEACH],
        characters=[
            c
            for c in characters
            if c.student_share is not None and c.students_weak >= limits.min_students_reteach
        ][:RETEACH],
    )


# -- a student's suggestions and strengths --------------------------------------


def _notable(key: IndicatorKey, reference: float, limits: Thresholds) -> float:
    """How big a gap to `reference` is worth saying: points for scores, a share for speed."""
    return limits.notable_points if key in SCORES else limits.notable_speed_share * abs(reference)


def _gaps(
    indicators: Sequence[Indicator], limits: Thresholds, sign: int
) -> list[tuple[float, Indicator, float, float | None, float | None]]:
    """Indicators notably below (sign -1) or above (+1) the class median or the previous period,
    in multiples of a notable gap, largest first."""
    found = []
    for item in indicators:
        value = item.current.value
        if item.key not in _COMPARED or value is None:
            continue
        median = item.class_median.value if item.class_median else None
        previous = item.previous.value
        multiples = [
            sign * (value - reference) / notable
            for reference in (median, previous)
            if reference is not None and (notable := _notable(item.key, reference, limits))
        ]
        if multiples and max(multiples) >= 1:
            found.append((max(multiples), item, value, median, previous))
    return sorted(found, key=lambda gap: -gap[0])


def suggestions(
    points: Sequence[StudentKnowledgePoint],
    characters: Sequence[CharacterScore],
    indicators: Sequence[Indicator],
    limits: Thresholds,
) -> list[Suggestion]:
    """Next steps, each resting on numbers the report shows: the knowledge points erred on
    repeatedly and more than the class, the characters needing practice, then the
    indicators notably below the class or the previous period, furthest below first."""
    found: list[Suggestion] = [
        practise_point(p) for p in pattern_points(points, limits)[:KNOWLEDGE_POINT_SUGGESTIONS]
    ]
    if characters:
        found.append(PractiseCharacters(characters=list(characters[:CHARACTERS_PER_ITEM])))
    found += [
        ImproveIndicator(indicator=item.key, value=value, class_median=median, previous=previous)
        for _, item, value, median, previous in _gaps(indicators, limits, -1)
    ]
    return found[:MAX_SUGGESTIONS]


def strengths(
    indicators: Sequence[Indicator],
    mastered: Sequence[CharacterScore],
    improving: Sequence[CharacterScore],
    points: Sequence[PointMastered],
    full_marks: int,
    graded_homework: int,
    active_days: int,
    period: Period,
    limits: Thresholds,
) -> list[Strength]:
    """What went well, each with its numbers: one of each kind first, then the rest."""
    above: list[Strength] = []
    improved: list[Strength] = []
    for _, item, value, median, previous in _gaps(indicators, limits, +1):
        if median is not None and value - median >= _notable(item.key, median, limits):
            above.append(AboveClass(indicator=item.key, value=value, class_median=median))
        elif previous is not None:
            improved.append(Improved(indicator=item.key, value=value, previous=previous))
    kinds: list[list[Strength]] = [
        above,
        [CharactersMastered(characters=list(mastered[:CHARACTERS_PER_ITEM]))] if mastered else [],
        [CharactersImproving(characters=list(improving[:CHARACTERS_PER_ITEM]))]
        if improving
        else [],
        [PointsMastered(points=list(points[:POINTS_PER_ITEM]))] if points else [],
        [FullMarks(homework=full_marks, graded_homework=graded_homework)] if full_marks else [],
        improved,
        [SteadyPractice(active_days=active_days, days=period.days)]
        if active_days >= max(2, math.ceil(limits.steady_practice_share * period.days))
        else [],
    ]
    return _round_robin(kinds)[:MAX_STRENGTHS]


def _round_robin(kinds: Sequence[Sequence[Strength]]) -> list[Strength]:
    taken: list[Strength] = []
    for rank in range(max((len(k) for k in kinds), default=0)):
        taken += [kind[rank] for kind in kinds if rank < len(kind)]
    return taken


def parent_practice(
    found: Sequence[Suggestion],
) -> list[PractiseCharacters | PractiseKnowledgePoint]:
    """Two things to practise at home: characters first, then knowledge points."""
    characters: list[PractiseCharacters | PractiseKnowledgePoint] = [
        s for s in found if isinstance(s, PractiseCharacters)
    ]
    points: list[PractiseCharacters | PractiseKnowledgePoint] = [
        s for s in found if isinstance(s, PractiseKnowledgePoint)
    ]
    return (characters[:1] + points)[:2]
