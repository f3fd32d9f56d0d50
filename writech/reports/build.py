"""Report models from stored rows: the pure logic, no I/O (SPEC §8).

indicators.py  per-student totals, evidence floors, class medians, trends
homework.py    flagged submissions, knowledge points, common wrong questions, 错题本
characters.py  stroke order per character, for a student and a class
advice.py      attention and one action each, tiers, suggestions, strengths, next week

This module puts them together into the four reports. Every threshold is a
field of `Thresholds` (model.py), and every report carries the ones it used.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from writech.reports import advice
from writech.reports.characters import (
    character_scores,
    class_characters,
    improving,
    mastered,
    to_practise,
)
from writech.reports.homework import Homework, class_rates, flags
from writech.reports.indicators import (
    KEYS,
    Member,
    distributions,
    group_indicators,
    group_readings,
    group_trend,
    indicator,
    members_of,
    rounded,
    student_trend,
)
from writech.reports.model import (
    AttentionStudent,
    ClassReport,
    ClassSummary,
    ExamSummary,
    GroupSummary,
    ParentReport,
    Period,
    SchoolReport,
    StudentExam,
    StudentReport,
    StudentSummary,
    Thresholds,
    Tier,
)
from writech.reports.roster import Roster
from writech.reports.rows import ExamScore, GroupData, Rows, StudentData
from writech.schema import HomeworkResult

CHINESE: Final = "chinese"  # the subject of stroke-order, OCR and writing-quality events
THRESHOLDS: Final = Thresholds()


@dataclass(frozen=True)
class Options:
    """How a report is made, besides its rows."""

    timezone: str = "Asia/Shanghai"  # the school's: times are shown in it
    subject: str | None = None  # report on this subject only
    roster: Roster = field(default_factory=Roster)  # display names
    limits: Thresholds = THRESHOLDS

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


DEFAULT_OPTIONS: Final = Options()


def for_subject(rows: Rows, subject: str | None) -> Rows:
    """The rows of one subject; stroke order and legibility belong to Chinese."""
    if subject is None:
        return rows
    chinese = subject == CHINESE
    return Rows(
        daily=[r for r in rows.daily if r.subject == subject],
        homework=[r for r in rows.homework if r.subject == subject],
        errors=[r for r in rows.errors if r.subject == subject],
        characters=rows.characters if chinese else [],
        legibility=rows.legibility if chinese else [],
        exams=[r for r in rows.exams if r.subject == subject],
    )


def _believed(rows: Iterable[HomeworkResult], limits: Thresholds) -> list[HomeworkResult]:
    return [row for row in rows if not flags(row, limits)]


def _members(rows: Rows, limits: Thresholds) -> dict[str, Member]:
    return members_of(rows.daily, _believed(rows.homework, limits), rows.legibility)


def _names(roster: Roster, students: Iterable[str], classes: Iterable[str]) -> dict[str, Any]:
    """The roster's names for the students and classes a report names."""
    return {
        "student_names": {
            s: roster.students[s] for s in sorted(set(students)) if s in roster.students
        },
        "class_names": {c: roster.classes[c] for c in sorted(set(classes)) if c in roster.classes},
    }


def _header(
    period: Period, generated_at: datetime, options: Options, compared: bool
) -> dict[str, Any]:
    """The fields every report starts with."""
    return {
        "generated_at": generated_at,
        "timezone": options.timezone,
        "period": period,
        "previous_period": period.previous(),
        "comparison": compared,
        "subject": options.subject,
        "thresholds": options.limits,
    }


def _has_data(members: Iterable[Member], period: Period) -> bool:
    return any(m.active_days(period) for m in members)


# -- exams --------------------------------------------------------------------


def _per_student(exams: Iterable[ExamScore]) -> dict[tuple[str, str], dict[str, float]]:
    """Each student's score per (exam, subject); a resit is averaged in."""
    scores: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for exam in exams:
        scores[exam.exam_id, exam.subject][exam.student_id].append(exam.score)
    return {
        exam: {student: statistics.fmean(s) for student, s in students.items()}
        for exam, students in scores.items()
    }


def exam_summaries(exams: Iterable[ExamScore], limits: Thresholds) -> list[ExamSummary]:
    summaries = []
    for (exam_id, subject), students in sorted(_per_student(exams).items()):
        enough = len(students) >= limits.min_exam_takers
        scores = list(students.values())
        summaries.append(
            ExamSummary(
                exam_id=exam_id,
                subject=subject,
                students=len(students),
                median=rounded(statistics.median(scores)) if enough else None,
                minimum=rounded(min(scores)) if enough else None,
                maximum=rounded(max(scores)) if enough else None,
            )
        )
    return summaries


def _student_exams(
    student_id: str, own: Iterable[ExamScore], classmates: Iterable[ExamScore], limits: Thresholds
) -> list[StudentExam]:
    by_class = {(s.exam_id, s.subject): s for s in exam_summaries(classmates, limits)}
    found = []
    for (exam_id, subject), students in sorted(_per_student(own).items()):
        summary = by_class.get((exam_id, subject))
        found.append(
            StudentExam(
                exam_id=exam_id,
                subject=subject,
                score=round(students[student_id], 2),
                class_median=summary.median if summary else None,
                class_takers=summary.students if summary else 0,
            )
        )
    return found


# -- groups ---------------------------------------------------------------------


Row = TypeVar("Row")


def _grouped(rows: Iterable[Row], key: Callable[[Row], str | None]) -> dict[str, list[Row]]:
    """The rows by key; a row whose key is None is left out."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if (name := key(row)) is not None:
            groups[name].append(row)
    return groups


def _split(rows: Rows, class_of: Mapping[str, str]) -> dict[str, Rows]:
    """The rows of each class, by the class its students were last seen in."""

    def by_class(part: Iterable[Any]) -> dict[str, list[Any]]:
        return _grouped(part, lambda row: class_of.get(row.student_id))

    daily, homework, errors = by_class(rows.daily), by_class(rows.homework), by_class(rows.errors)
    characters, legibility = by_class(rows.characters), by_class(rows.legibility)
    exams = by_class(rows.exams)
    return {
        class_id: Rows(
            daily=daily[class_id],
            homework=homework[class_id],
            errors=errors[class_id],
            characters=characters[class_id],
            legibility=legibility[class_id],
            exams=exams[class_id],
        )
        for class_id in sorted(set(class_of.values()))
    }


@dataclass(frozen=True)
class _ClassAdvice:
    attention: list[AttentionStudent]
    tiers: dict[str, Tier]


def _class_advice(
    class_id: str, rows: Rows, members: Mapping[str, Member], period: Period, limits: Thresholds
) -> _ClassAdvice:
    """Attention and tiers within one class, against its own median."""
    readings = group_readings(members.values(), period, limits)
    homework = Homework(rows.homework, rows.errors, period, limits)
    rates = class_rates(homework.group_points())
    characters = _grouped(rows.characters, lambda day: day.student_id)
    pupils = [
        advice.Pupil(
            student_id=student_id,
            member=member,
            points=homework.student_points(student_id, rates),
            characters=to_practise(
                character_scores(characters.get(student_id, []), period, limits), limits
            ),
        )
        for student_id, member in sorted(members.items())
    ]
    attention = advice.attention(pupils, class_id, period, readings, limits)
    supported = {student.student_id for student in attention}
    tiers = {
        student_id: advice.tier(member, period, student_id in supported, limits)
        for student_id, member in sorted(members.items())
        if member.active_days(period) or student_id in supported
    }
    return _ClassAdvice(attention, tiers)


def _group_summary(
    rows: Rows, members: dict[str, Member], period: Period, options: Options
) -> tuple[GroupSummary, dict[str, _ClassAdvice]]:
    limits = options.limits
    classes: dict[str, dict[str, Member]] = defaultdict(dict)
    for student_id, member in members.items():
        classes[member.class_id][student_id] = member
    parts = _split(rows, {s: m.class_id for s, m in members.items()})
    per_class = {
        class_id: _class_advice(class_id, parts[class_id], classes[class_id], period, limits)
        for class_id in sorted(classes)
    }
    homework = Homework(rows.homework, rows.errors, period, limits)
    points = homework.group_points()
    characters = class_characters(rows.characters, period, limits)
    active = [m for m in members.values() if m.active_days(period)]
    dates = period.dates()
    tiers = {s: t for part in per_class.values() for s, t in part.tiers.items()}
    summary = GroupSummary(
        students_with_data=len(active),
        indicators=group_indicators(list(members.values()), period, limits),
        trend=group_trend(active, dates),
        active_students=[sum(day in m.days for m in active) for day in dates],
        next_week=advice.next_week(points, characters, limits),
        attention=sorted(
            (s for part in per_class.values() for s in part.attention), key=advice.urgency
        ),
        tiers=advice.tier_groups(tiers),
        knowledge_points=points,
        unassigned_errors=homework.unassigned(),
        characters=characters,
        common_questions=homework.common_questions(),
        homework=homework.summaries(),
        flagged=homework.flagged(options.zone),
        distributions=distributions(members.values(), period, limits),
        exams=exam_summaries(rows.exams, limits),
    )
    return summary, per_class


def build_class_report(
    class_id: str,
    school_id: str,
    data: GroupData,
    generated_at: datetime,
    options: Options = DEFAULT_OPTIONS,
) -> ClassReport:
    period, limits = data.period, options.limits
    rows = for_subject(data.rows, options.subject)
    members = _members(rows, limits)
    summary, per_class = _group_summary(rows, members, period, options)
    tiers = {s: t for part in per_class.values() for s, t in part.tiers.items()}
    return ClassReport(
        **_header(period, generated_at, options, _has_data(members.values(), period.previous())),
        **_names(options.roster, members, [class_id]),
        class_id=class_id,
        school_id=school_id,
        summary=summary,
        students=[
            StudentSummary(
                student_id=student_id,
                active_days=member.active_days(period),
                tier=tiers[student_id],
                values={key: member.over(period).reading(key, limits).value for key in KEYS},
            )
            for student_id, member in sorted(members.items())
            if member.active_days(period)
        ],
    )


def build_school_report(
    school_id: str, data: GroupData, generated_at: datetime, options: Options = DEFAULT_OPTIONS
) -> SchoolReport:
    period, limits = data.period, options.limits
    rows = for_subject(data.rows, options.subject)
    members = _members(rows, limits)
    summary, per_class = _group_summary(rows, members, period, options)
    classes = []
    for class_id, part in per_class.items():
        class_members = [m for m in members.values() if m.class_id == class_id]
        readings = group_readings(class_members, period, limits)
        with_data = sum(1 for m in class_members if m.active_days(period))
        if with_data:
            classes.append(
                ClassSummary(
                    class_id=class_id,
                    students_with_data=with_data,
                    values={key: readings[key].value for key in KEYS},
                    students_needing_attention=len(part.attention),
                )
            )
    return SchoolReport(
        **_header(period, generated_at, options, _has_data(members.values(), period.previous())),
        **_names(options.roster, members, per_class),
        school_id=school_id,
        summary=summary,
        classes=classes,
    )


def build_student_report(
    data: StudentData, generated_at: datetime, options: Options = DEFAULT_OPTIONS
) -> StudentReport:
    period, limits = data.group.period, options.limits
    own = for_subject(data.own, options.subject)
    classmates_rows = for_subject(data.group.rows, options.subject)
    student = _members(own, limits).get(data.student_id, Member())
    classmates = _members(classmates_rows, limits)
    class_readings = group_readings(classmates.values(), period, limits)
    current, previous = student.over(period), student.over(period.previous())
    indicators = [
        indicator(
            key, current.reading(key, limits), previous.reading(key, limits), class_readings[key]
        )
        for key in KEYS
    ]
    homework = Homework(own.homework, own.errors, period, limits)
    class_homework = Homework(classmates_rows.homework, classmates_rows.errors, period, limits)
    points = homework.student_points(data.student_id, class_rates(class_homework.group_points()))
    scores = character_scores(own.characters, period, limits)
    weak, rising = to_practise(scores, limits), improving(scores, limits)
    active_days = student.active_days(period)
    book = homework.book(data.student_id, options.zone)
    believed = [entry for entry in book if not entry.flags]
    return StudentReport(
        **_header(period, generated_at, options, bool(student.active_days(period.previous()))),
        **_names(options.roster, [data.student_id], [data.class_id]),
        student_id=data.student_id,
        class_id=data.class_id,
        school_id=data.school_id,
        active_days=active_days,
        indicators=indicators,
        trend=student_trend(student, period.dates()),
        class_trend=group_trend(
            [m for m in classmates.values() if m.active_days(period)], period.dates()
        ),
        # nothing to say from no data
        strengths=advice.strengths(
            indicators,
            mastered(scores, limits),
            rising,
            homework.mastered(data.student_id, class_homework),
            full_marks=sum(entry.score >= 100 for entry in believed),
            graded_homework=len(believed),
            active_days=active_days,
            period=period,
            limits=limits,
        )
        if active_days
        else [],
        suggestions=advice.suggestions(points, weak, indicators, limits) if active_days else [],
        characters=scores,
        characters_to_practise=weak,
        improving_characters=rising,
        wrong_answer_book=book,
        knowledge_points=points,
        unassigned_errors=homework.unassigned(data.student_id),
        exams=_student_exams(data.student_id, own.exams, classmates_rows.exams, limits),
    )


def build_parent_report(report: StudentReport) -> ParentReport:
    """The family's page, from the student's report: its strengths and two things to practise."""
    homework = next(i for i in report.indicators if i.key == "homework_score")
    return ParentReport(
        generated_at=report.generated_at,
        timezone=report.timezone,
        period=report.period,
        previous_period=report.previous_period,
        comparison=report.comparison,
        subject=report.subject,
        thresholds=report.thresholds,
        student_names=report.student_names,
        class_names=report.class_names,
        student_id=report.student_id,
        class_id=report.class_id,
        active_days=report.active_days,
        homework_done=sum(not entry.flags for entry in report.wrong_answer_book),
        homework_score=homework.current.value,
        characters_written=sum(score.attempts for score in report.characters),
        strengths=report.strengths[:3],
        practice=advice.parent_practice(report.suggestions),
    )
