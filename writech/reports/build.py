"""Report models from stored rows: the pure logic, no I/O (SPEC §8).

Rules every number follows (docs/reports.md explains them to readers):

- An average over days or students is weighted by its own count:
  sum(avg * count) / sum(count), never a mean of daily means. A group's
  average pools every event of its students, so each event weighs the same.
- Totals (study minutes, strokes, characters) are summed per student; a
  group's value is the mean over its students who have one.
- A count of 0 is "no data" (`None`), never 0.
- Error rate of a knowledge point: the share of graded homework in its
  subject with at least one wrong answer on it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import Final

from writech.reports.model import (
    AttentionReason,
    AttentionStudent,
    ClassReport,
    ClassSummary,
    Declining,
    Distribution,
    ExamSummary,
    FarBelowClass,
    GroupKnowledgePoint,
    GroupSummary,
    HistogramBin,
    ImproveIndicator,
    Indicator,
    IndicatorKey,
    KeepGoing,
    KnowledgePointErrors,
    NoActivity,
    Period,
    PractiseKnowledgePoint,
    SchoolReport,
    StudentExam,
    StudentKnowledgePoint,
    StudentReport,
    StudentSummary,
    Suggestion,
    Trend,
    Unavailable,
)
from writech.reports.rows import (
    ErrorTypeCount,
    ExamScore,
    GroupData,
    KnowledgePointCount,
    StudentData,
)
from writech.schema import DailyStats

# -- thresholds (docs/reports.md) ---------------------------------------------
# "Declining": a score fell by at least this many points from the first half
# of the period to the second, each half resting on at least this many events.
DECLINE_POINTS: Final = 10.0
MIN_EVENTS_PER_HALF: Final = 2
# "Far below the class": under the class's lower fence, with at least this
# many events behind the student's value, in a class with enough students
# for quartiles to mean something.
MIN_EVENTS_FAR_BELOW: Final = 3
MIN_STUDENTS_FOR_FENCE: Final = 5
# A suggestion is made for an indicator this far below the class average or
# the previous period: points for scores, a share of the reference for speed.
SUGGEST_SCORE_POINTS: Final = 5.0
SUGGEST_SPEED_SHARE: Final = 0.10
MAX_KNOWLEDGE_POINT_SUGGESTIONS: Final = 3
MIN_HOMEWORK_FOR_SUGGESTION: Final = 2
MAX_SUGGESTIONS: Final = 5
STUDENT_KNOWLEDGE_POINTS: Final = 8
HISTOGRAM_BINS: Final = 10
DECIMALS: Final = 2

# Every report says it: the tables hold no per-character stroke-order or
# quality scores (stroke_order's `character` is not stored).
UNAVAILABLE: Final[list[Unavailable]] = ["character_detail"]


@dataclass(frozen=True)
class Measure:
    """How an indicator is read from daily rows."""

    key: IndicatorKey
    averaged: bool  # a mean weighted by `count`; otherwise a total
    value: Callable[[DailyStats], float]
    count: Callable[[DailyStats], int]


def _row_present(row: DailyStats) -> int:
    return 1


MEASURES: Final = (
    Measure(
        "homework_score", True, attrgetter("homework_avg_score"), attrgetter("homework_completed")
    ),
    Measure("exam_score", True, attrgetter("exam_avg_score"), attrgetter("exam_count")),
    Measure(
        "stroke_order_accuracy",
        True,
        attrgetter("stroke_order_accuracy"),
        attrgetter("practice_count"),
    ),
    Measure(
        "writing_quality",
        True,
        attrgetter("writing_quality_avg"),
        attrgetter("writing_quality_count"),
    ),
    Measure(
        "writing_speed", True, attrgetter("writing_speed_avg"), attrgetter("writing_quality_count")
    ),
    Measure(
        "study_minutes", False, attrgetter("study_duration_minutes"), attrgetter("homework_count")
    ),
    # A daily row exists only for a student with events that day, so for
    # these totals a row is the evidence that 0 means 0.
    Measure("strokes", False, attrgetter("stroke_count_total"), _row_present),
    Measure("characters", False, attrgetter("practice_total_chars"), _row_present),
)
# Scores on a 0-100 scale: the indicators attention and histograms compare.
SCORES: Final[tuple[IndicatorKey, ...]] = (
    "homework_score",
    "exam_score",
    "stroke_order_accuracy",
    "writing_quality",
)
_SUGGESTED: Final[tuple[IndicatorKey, ...]] = (*SCORES, "writing_speed")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DECIMALS)


def _difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else round(value - reference, DECIMALS)


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, DECIMALS) if whole else None


class Totals:
    """Running sums and counts of every indicator over some daily rows."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.sums: dict[IndicatorKey, float] = dict.fromkeys((m.key for m in MEASURES), 0.0)
        self.counts: dict[IndicatorKey, int] = dict.fromkeys((m.key for m in MEASURES), 0)

    def add(self, row: DailyStats) -> None:
        for measure in MEASURES:
            count = measure.count(row)
            if count:
                self.counts[measure.key] += count
                value = measure.value(row)
                self.sums[measure.key] += value * count if measure.averaged else value

    def merge(self, other: Totals) -> None:
        for key, count in other.counts.items():
            self.counts[key] += count
            self.sums[key] += other.sums[key]

    def value(self, measure: Measure) -> float | None:
        count = self.counts[measure.key]
        if not count:
            return None
        total = self.sums[measure.key]
        return total / count if measure.averaged else total


def _combined(parts: Iterable[Totals]) -> Totals:
    totals = Totals()
    for part in parts:
        totals.merge(part)
    return totals


class Member:
    """One student's rows, as totals per date, and the class they belong to."""

    __slots__ = ("class_id", "days", "_latest")

    def __init__(self) -> None:
        self.days: dict[date, Totals] = {}
        self.class_id = ""
        self._latest = date.min

    def add(self, row: DailyStats) -> None:
        self.days.setdefault(row.date, Totals()).add(row)
        if row.date >= self._latest:
            self._latest, self.class_id = row.date, row.class_id

    def over(self, period: Period) -> Totals:
        return _combined(totals for day, totals in self.days.items() if day in period)

    def active_days(self, period: Period) -> int:
        return sum(day in period for day in self.days)


def members_of(rows: Iterable[DailyStats]) -> dict[str, Member]:
    members: dict[str, Member] = defaultdict(Member)
    for row in rows:
        members[row.student_id].add(row)
    return dict(members)


def group_value(measure: Measure, totals: Sequence[Totals]) -> tuple[float | None, int]:
    """A group's value and what it rests on (events, or students for totals)."""
    if measure.averaged:
        pooled = _combined(totals)
        return pooled.value(measure), pooled.counts[measure.key]
    values = [value for t in totals if (value := t.value(measure)) is not None]
    return (statistics.fmean(values) if values else None), len(values)


def _group_trend(members: Iterable[Member], dates: Sequence[date]) -> Trend:
    members = list(members)
    on_day = [[m.days[day] for m in members if day in m.days] for day in dates]
    return Trend(
        dates=list(dates),
        values={
            measure.key: [_round(group_value(measure, totals)[0]) for totals in on_day]
            for measure in MEASURES
        },
    )


def _group_indicators(members: Sequence[Member], period: Period) -> list[Indicator]:
    current = [m.over(period) for m in members]
    previous = [m.over(period.previous()) for m in members]
    indicators = []
    for measure in MEASURES:
        value, count = group_value(measure, current)
        before, _ = group_value(measure, previous)
        indicators.append(
            Indicator(
                key=measure.key,
                value=_round(value),
                count=count,
                previous=_round(before),
                change=_difference(value, before),
            )
        )
    return indicators


# -- distributions ------------------------------------------------------------


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= raw."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(power * f for f in (1.0, 2.0, 2.5, 5.0, 10.0) if power * f >= raw)


def _histogram(key: IndicatorKey, values: Sequence[float]) -> list[HistogramBin]:
    if not values:
        return []
    if key in SCORES:
        start, step, count = 0.0, 100.0 / HISTOGRAM_BINS, HISTOGRAM_BINS
    else:
        low, high = min(values), max(values)
        step = _nice_step(((high - low) or max(abs(high), 1.0)) / HISTOGRAM_BINS)
        start = math.floor(low / step) * step
        count = max(1, math.floor((high - start) / step) + 1)
    students = Counter(min(count - 1, int((v - start) // step)) for v in values)
    return [
        HistogramBin(
            start=round(start + i * step, DECIMALS),
            end=round(start + (i + 1) * step, DECIMALS),
            students=students[i],
        )
        for i in range(count)
    ]


def distribution(key: IndicatorKey, values: Sequence[float]) -> Distribution:
    """Quartiles (inclusive method), lower fence and histogram of `values`."""
    if not values:
        return Distribution(
            indicator=key,
            students=0,
            minimum=None,
            q1=None,
            median=None,
            q3=None,
            maximum=None,
            lower_fence=None,
            histogram=[],
        )
    if len(values) == 1:
        q1 = median = q3 = values[0]
    else:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Distribution(
        indicator=key,
        students=len(values),
        minimum=_round(min(values)),
        q1=_round(q1),
        median=_round(median),
        q3=_round(q3),
        maximum=_round(max(values)),
        lower_fence=_round(q1 - 1.5 * (q3 - q1)),
        histogram=_histogram(key, values),
    )


# -- knowledge points ---------------------------------------------------------


def _graded_homework(rows: Iterable[DailyStats], period: Period) -> dict[tuple[str, str], int]:
    """Graded homework per (student, subject) in the period."""
    graded: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row.date in period and row.homework_completed:
            graded[row.student_id, row.subject] += row.homework_completed
    return graded


def _error_types(counts: Iterable[ErrorTypeCount]) -> dict[tuple[str, str], dict[str, int]]:
    by_point: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for count in counts:
        by_point[count.subject, count.knowledge_point][count.error_type] += count.errors
    # most frequent first, ties by name: the first is the main error type
    return {
        point: dict(sorted(types.items(), key=lambda item: (-item[1], item[0])))
        for point, types in by_point.items()
    }


def group_knowledge_points(
    counts: Sequence[KnowledgePointCount],
    error_types: Sequence[ErrorTypeCount],
    graded: dict[tuple[str, str], int],
) -> list[GroupKnowledgePoint]:
    """Every knowledge point with errors in the group, highest error rate first."""
    graded_in: Counter[str] = Counter()
    students_graded: Counter[str] = Counter()
    for (_, subject), homework_count in graded.items():
        graded_in[subject] += homework_count
        students_graded[subject] += 1
    errors: Counter[tuple[str, str]] = Counter()
    homework: Counter[tuple[str, str]] = Counter()
    affected: Counter[tuple[str, str]] = Counter()
    for count in counts:
        point = count.subject, count.knowledge_point
        errors[point] += count.errors
        homework[point] += count.homework_with_errors
        affected[point] += 1
    types = _error_types(error_types)
    points = [
        GroupKnowledgePoint(
            subject=subject,
            knowledge_point=name,
            errors=errors[subject, name],
            homework_with_errors=homework[subject, name],
            graded_homework=graded_in[subject],
            error_rate=_percent(homework[subject, name], graded_in[subject]),
            error_types=types.get((subject, name), {}),
            students_affected=affected[subject, name],
            students_graded=students_graded[subject],
        )
        for subject, name in errors
    ]
    return sorted(points, key=_by_error_rate)


def _by_error_rate(point: GroupKnowledgePoint) -> tuple[float, int, int, str, str]:
    rate = -1.0 if point.error_rate is None else point.error_rate
    return (-rate, -point.students_affected, -point.errors, point.subject, point.knowledge_point)


def main_error_type(point: KnowledgePointErrors) -> str:
    return next(iter(point.error_types), "")


# -- attention ----------------------------------------------------------------


def _halves(period: Period) -> tuple[Period, Period] | None:
    """The first and last whole halves of the period (an odd middle day is in neither)."""
    half = period.days // 2
    if half == 0:
        return None
    dates = period.dates()
    return Period(dates[0], dates[half - 1]), Period(dates[-half], dates[-1])


def _reasons(
    member: Member, period: Period, distributions: dict[IndicatorKey, Distribution]
) -> list[AttentionReason]:
    reasons: list[AttentionReason] = []
    current = member.over(period)
    halves = _halves(period)
    for measure in MEASURES:
        if measure.key not in SCORES:
            continue
        if halves:
            first, second = (member.over(half) for half in halves)
            before, after = first.value(measure), second.value(measure)
            if (
                before is not None
                and after is not None
                and min(first.counts[measure.key], second.counts[measure.key])
                >= MIN_EVENTS_PER_HALF
                and before - after >= DECLINE_POINTS
            ):
                reasons.append(
                    Declining(
                        indicator=measure.key,
                        first_half=round(before, DECIMALS),
                        second_half=round(after, DECIMALS),
                        drop=round(before - after, DECIMALS),
                    )
                )
        value = current.value(measure)
        spread = distributions[measure.key]
        if (
            value is not None
            and current.counts[measure.key] >= MIN_EVENTS_FAR_BELOW
            and spread.students >= MIN_STUDENTS_FOR_FENCE
            and spread.lower_fence is not None
            and spread.median is not None
            and value < spread.lower_fence
        ):
            reasons.append(
                FarBelowClass(
                    indicator=measure.key,
                    value=round(value, DECIMALS),
                    class_median=spread.median,
                    lower_fence=spread.lower_fence,
                    gap=round(spread.median - value, DECIMALS),
                )
            )
    return reasons


def _urgency(student: AttentionStudent) -> tuple[bool, int, float, str]:
    """Silent students first, then more reasons, then the largest gap in points."""
    gaps = [
        reason.drop if isinstance(reason, Declining) else reason.gap
        for reason in student.reasons
        if not isinstance(reason, NoActivity)
    ]
    silent = any(isinstance(reason, NoActivity) for reason in student.reasons)
    return (not silent, -len(student.reasons), -max(gaps, default=0.0), student.student_id)


def class_attention(members: dict[str, Member], period: Period) -> list[AttentionStudent]:
    """Students of one class needing attention, most urgent first."""
    distributions = _distributions(members, period)
    attention = []
    for student_id, member in members.items():
        reasons: list[AttentionReason]
        if member.active_days(period):
            reasons = _reasons(member, period, distributions)
        elif previous_days := member.active_days(period.previous()):
            reasons = [NoActivity(previous_active_days=previous_days)]
        else:
            reasons = []
        if reasons:
            attention.append(
                AttentionStudent(student_id=student_id, class_id=member.class_id, reasons=reasons)
            )
    return sorted(attention, key=_urgency)


def _distributions(members: dict[str, Member], period: Period) -> dict[IndicatorKey, Distribution]:
    current = [m.over(period) for m in members.values() if m.active_days(period)]
    return {
        measure.key: distribution(
            measure.key, [v for t in current if (v := t.value(measure)) is not None]
        )
        for measure in MEASURES
    }


def _by_class(members: dict[str, Member]) -> dict[str, dict[str, Member]]:
    classes: dict[str, dict[str, Member]] = defaultdict(dict)
    for student_id, member in members.items():
        classes[member.class_id][student_id] = member
    return dict(sorted(classes.items()))


# -- exams --------------------------------------------------------------------


def _exam_groups(exams: Iterable[ExamScore]) -> dict[tuple[str, str], list[ExamScore]]:
    groups: dict[tuple[str, str], list[ExamScore]] = defaultdict(list)
    for exam in exams:
        groups[exam.exam_id, exam.subject].append(exam)
    return groups


def _exam_summaries(exams: Iterable[ExamScore]) -> list[ExamSummary]:
    return [
        ExamSummary(
            exam_id=exam_id,
            subject=subject,
            students=len({e.student_id for e in records}),
            average=round(statistics.fmean(e.score for e in records), DECIMALS),
            minimum=round(min(e.score for e in records), DECIMALS),
            maximum=round(max(e.score for e in records), DECIMALS),
        )
        for (exam_id, subject), records in sorted(_exam_groups(exams).items())
    ]


def _student_exams(student_id: str, exams: Sequence[ExamScore]) -> list[StudentExam]:
    classes = {(s.exam_id, s.subject): s for s in _exam_summaries(exams)}
    own = _exam_groups(e for e in exams if e.student_id == student_id)
    return [
        StudentExam(
            exam_id=exam_id,
            subject=subject,
            score=round(statistics.fmean(e.score for e in records), DECIMALS),
            class_average=classes[exam_id, subject].average,
            class_students=classes[exam_id, subject].students,
        )
        for (exam_id, subject), records in sorted(own.items())
    ]


# -- suggestions --------------------------------------------------------------


def _shortfall(key: IndicatorKey, value: float, reference: float | None) -> float:
    """How far `value` is below `reference`, in multiples of a notable gap (>= 1: notable)."""
    if reference is None:
        return 0.0
    notable = SUGGEST_SCORE_POINTS if key in SCORES else SUGGEST_SPEED_SHARE * abs(reference)
    return (reference - value) / notable if notable else 0.0


def suggestions(
    knowledge_points: Sequence[StudentKnowledgePoint], indicators: Sequence[Indicator]
) -> list[Suggestion]:
    """A short list of next steps, each resting on numbers the report shows.

    First the knowledge points the student errs on more often than the class
    (in at least two graded homework, so one slip is not a pattern), then the
    indicators notably below the class average or the previous period,
    furthest below first.
    """
    found: list[Suggestion] = []
    found += [
        PractiseKnowledgePoint(
            subject=point.subject,
            knowledge_point=point.knowledge_point,
            homework_with_errors=point.homework_with_errors,
            graded_homework=point.graded_homework,
            error_rate=point.error_rate,
            class_error_rate=point.class_error_rate,
            main_error_type=main_error_type(point),
        )
        for point in knowledge_points
        if point.error_rate is not None
        and point.homework_with_errors >= MIN_HOMEWORK_FOR_SUGGESTION
        and (point.class_error_rate is None or point.error_rate > point.class_error_rate)
    ][:MAX_KNOWLEDGE_POINT_SUGGESTIONS]
    weak = []
    for indicator in indicators:
        value = indicator.value
        if indicator.key not in _SUGGESTED or value is None:
            continue
        shortfall = max(
            _shortfall(indicator.key, value, indicator.class_average),
            _shortfall(indicator.key, value, indicator.previous),
        )
        if shortfall >= 1:
            weak.append((shortfall, indicator, value))
    weak.sort(key=lambda item: -item[0])
    found += [
        ImproveIndicator(
            indicator=indicator.key,
            value=value,
            class_average=indicator.class_average,
            previous=indicator.previous,
        )
        for _, indicator, value in weak
    ]
    return found[:MAX_SUGGESTIONS] or [KeepGoing()]


# -- reports ------------------------------------------------------------------


def _group_summary(data: GroupData, members: dict[str, Member]) -> GroupSummary:
    period = data.period
    active = [m for m in members.values() if m.active_days(period)]
    dates = period.dates()
    distributions = _distributions(members, period)
    attention = [
        student
        for class_members in _by_class(members).values()
        for student in class_attention(class_members, period)
    ]
    return GroupSummary(
        students_with_data=len(active),
        indicators=_group_indicators(list(members.values()), period),
        trend=_group_trend(active, dates),
        active_students=[sum(day in m.days for m in active) for day in dates],
        distributions=list(distributions.values()),
        knowledge_points=group_knowledge_points(
            data.knowledge_points, data.error_types, _graded_homework(data.daily, period)
        ),
        attention=sorted(attention, key=_urgency),
        exams=_exam_summaries(data.exams),
    )


def build_class_report(
    class_id: str, school_id: str, data: GroupData, generated_at: datetime
) -> ClassReport:
    members = members_of(data.daily)
    period = data.period
    return ClassReport(
        generated_at=generated_at,
        period=period,
        previous_period=period.previous(),
        class_id=class_id,
        school_id=school_id,
        summary=_group_summary(data, members),
        students=[
            StudentSummary(
                student_id=student_id,
                active_days=member.active_days(period),
                values={m.key: _round(member.over(period).value(m)) for m in MEASURES},
            )
            for student_id, member in sorted(members.items())
            if member.active_days(period)
        ],
        unavailable=UNAVAILABLE,
    )


def build_school_report(school_id: str, data: GroupData, generated_at: datetime) -> SchoolReport:
    members = members_of(data.daily)
    period = data.period
    summary = _group_summary(data, members)
    attention = Counter(student.class_id for student in summary.attention)
    classes = []
    for class_id, class_members in _by_class(members).items():
        current = [m.over(period) for m in class_members.values() if m.active_days(period)]
        if current:
            classes.append(
                ClassSummary(
                    class_id=class_id,
                    students_with_data=len(current),
                    values={m.key: _round(group_value(m, current)[0]) for m in MEASURES},
                    students_needing_attention=attention[class_id],
                )
            )
    return SchoolReport(
        generated_at=generated_at,
        period=period,
        previous_period=period.previous(),
        school_id=school_id,
        summary=summary,
        classes=classes,
        unavailable=UNAVAILABLE,
    )


def build_student_report(data: StudentData, generated_at: datetime) -> StudentReport:
    period = data.group.period
    student = members_of(data.daily).get(data.student_id, Member())
    current = student.over(period)
    previous = student.over(period.previous())
    classmates = [m for m in members_of(r for r in data.group.daily if r.date in period).values()]
    class_totals = [m.over(period) for m in classmates]
    indicators = []
    for measure in MEASURES:
        value = current.value(measure)
        before = previous.value(measure)
        class_value, _ = group_value(measure, class_totals)
        indicators.append(
            Indicator(
                key=measure.key,
                value=_round(value),
                count=current.counts[measure.key],
                previous=_round(before),
                change=_difference(value, before),
                class_average=_round(class_value),
                vs_class=_difference(value, class_value),
            )
        )
    knowledge_points = _student_knowledge_points(data)
    active_days = student.active_days(period)
    dates = period.dates()
    return StudentReport(
        generated_at=generated_at,
        period=period,
        previous_period=period.previous(),
        student_id=data.student_id,
        class_id=data.class_id,
        school_id=data.school_id,
        active_days=active_days,
        indicators=indicators,
        trend=_group_trend([student], dates),
        class_trend=_group_trend(classmates, dates),
        knowledge_points=knowledge_points,
        exams=_student_exams(data.student_id, data.group.exams),
        # nothing to suggest from no data (not even "keep going")
        suggestions=suggestions(knowledge_points, indicators) if active_days else [],
        unavailable=UNAVAILABLE,
    )


def _student_knowledge_points(data: StudentData) -> list[StudentKnowledgePoint]:
    """The student's knowledge points with the most wrong answers, beside the class's rate."""
    group = data.group
    class_rates = {
        (p.subject, p.knowledge_point): p.error_rate
        for p in group_knowledge_points(
            group.knowledge_points, group.error_types, _graded_homework(group.daily, group.period)
        )
    }
    graded = _graded_homework(data.daily, group.period)
    types = _error_types(data.error_types)
    points = [
        StudentKnowledgePoint(
            subject=count.subject,
            knowledge_point=count.knowledge_point,
            errors=count.errors,
            homework_with_errors=count.homework_with_errors,
            graded_homework=graded[data.student_id, count.subject],
            error_rate=_percent(count.homework_with_errors, graded[data.student_id, count.subject]),
            error_types=types.get((count.subject, count.knowledge_point), {}),
            class_error_rate=class_rates.get((count.subject, count.knowledge_point)),
        )
        for count in data.knowledge_points
    ]
    points.sort(key=lambda p: (-p.errors, -(p.error_rate or 0.0), p.subject, p.knowledge_point))
    return points[:STUDENT_KNOWLEDGE_POINTS]
