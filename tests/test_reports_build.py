"""The report builder and renderers on hand-made rows: no database, every number by hand."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import msgspec
import pytest
from markdown_it import MarkdownIt

from writech.reports import build
from writech.reports.build import Options
from writech.reports.labels import FLAGS, TEXT, TIERS
from writech.reports.model import (
    ContactFamily,
    Declining,
    FarBelowClass,
    ImproveIndicator,
    NoActivity,
    ParentReport,
    Period,
    PractiseCharacters,
    PractiseKnowledgePoint,
    Reading,
    Report,
    StudentReport,
    Thresholds,
)
from writech.reports.render import render, to_json
from writech.reports.roster import Roster, RosterError, parse_roster, read_roster
from writech.reports.rows import (
    EMPTY,
    CharacterDay,
    ExamScore,
    GroupData,
    LegibilityDay,
    QuestionError,
    Rows,
    StudentData,
)
from writech.reports.service import PeriodError, checked_period, default_period
from writech.schema import DailyStats, HomeworkResult

DAY1 = date(2026, 3, 2)
PERIOD = Period(DAY1, DAY1 + timedelta(days=3))  # 4 days; previous: the 4 days before
NOW = datetime(2026, 3, 10, tzinfo=UTC)
LIMITS = Thresholds()


def day(offset: int) -> date:
    return DAY1 + timedelta(days=offset)


def row(
    student: str, when: date, subject: str = "chinese", class_id: str = "c1", **values: Any
) -> DailyStats:
    fields: dict[str, Any] = dict.fromkeys(
        (
            name
            for name in DailyStats.__struct_fields__
            if name not in ("student_id", "date", "subject")
        ),
        0,
    )
    fields |= {"class_id": class_id, "school_id": "s1", "error_knowledge_points": [], "version": 1}
    return DailyStats(student_id=student, date=when, subject=subject, **(fields | values))


_numbers = iter(range(1, 1_000_000))


def homework(
    student: str,
    when: date,
    score: float,
    subject: str = "math",
    homework_id: str = "hw-1",
    listed: int = 0,
    errors: int | None = None,
    questions: int | None = None,
    event_id: str | None = None,
) -> HomeworkResult:
    return HomeworkResult(
        event_id=event_id or f"e{next(_numbers)}",
        student_id=student,
        class_id="c1",
        school_id="s1",
        homework_id=homework_id,
        subject=subject,
        score_percent=score,
        listed_errors=listed,
        errors=listed if errors is None else errors,
        questions_with_errors=listed if questions is None else questions,
        date=when,
        created_at=datetime(when.year, when.month, when.day, 2, 30, tzinfo=UTC),
    )


def wrong(
    submission: HomeworkResult,
    question: str,
    point: str = "分数",
    error_type: str = "concept",
    position: int = 0,
    listed: int = 1,
) -> QuestionError:
    return QuestionError(
        event_id=submission.event_id,
        student_id=submission.student_id,
        homework_id=submission.homework_id,
        subject=submission.subject,
        question_id=question,
        knowledge_point=point,
        error_type=error_type,
        first_position=position,
        listed=listed,
    )


def rows(**parts: Any) -> Rows:
    return dataclasses.replace(EMPTY, **parts)


def graded_days(student: str, submissions: list[HomeworkResult], **values: Any) -> list[DailyStats]:
    """The daily rows that homework makes (one per day and subject)."""
    days = sorted({(s.date, s.subject) for s in submissions})
    return [row(student, when, subject, **values) for when, subject in days]


def student_report(own: Rows, classmates: Rows, **options: Any) -> StudentReport:
    data = StudentData(
        student_id="a", class_id="c1", school_id="s1", own=own, group=GroupData(PERIOD, classmates)
    )
    return build.build_student_report(data, NOW, Options(**options))


def indicator(report: StudentReport, key: str) -> Any:
    return next(i for i in report.indicators if i.key == key)


# -- indicators -----------------------------------------------------------------


def test_averages_are_weighted_by_their_counts_and_need_enough_events() -> None:
    daily = [
        row("a", day(0), practice_count=1, stroke_order_accuracy=90.0),
        row("a", day(1), practice_count=3, stroke_order_accuracy=60.0),
    ]
    report = student_report(rows(daily=daily), rows(daily=daily))
    # (90*1 + 60*3) / 4, not the mean of daily means (75)
    assert indicator(report, "stroke_order_accuracy").current == Reading(
        value=67.5, count=4, evidence="enough"
    )
    few = [row("a", day(0), practice_count=2, stroke_order_accuracy=90.0)]
    reading = indicator(student_report(rows(daily=few), rows(daily=few)), "stroke_order_accuracy")
    assert reading.current == Reading(value=None, count=2, evidence="too_little")
    assert reading.class_median == Reading(value=None, count=0, evidence="too_little")
    assert indicator(student_report(rows(daily=few), rows(daily=few)), "exam_score").current == (
        Reading(value=None, count=0, evidence="none")
    )


def test_totals_are_sums_and_zero_on_an_active_day_is_zero() -> None:
    daily = [row("a", day(0), practice_count=3, stroke_order_accuracy=80.0)]
    report = student_report(rows(daily=daily), rows(daily=daily))
    assert indicator(report, "strokes").current == Reading(value=0, count=1, evidence="enough")
    assert indicator(report, "study_minutes").current.evidence == "none"  # nothing submitted
    assert report.trend.values["stroke_order_accuracy"] == [80.0, None, None, None]


def test_the_class_is_the_median_of_students_with_enough_evidence() -> None:
    classmates = [
        row(s, day(0), writing_quality_count=count, writing_quality_avg=value)
        for s, count, value in (("a", 3, 50.0), ("b", 3, 70.0), ("c", 5, 90.0), ("d", 2, 10.0))
    ]
    own = [classmates[0]]
    report = student_report(rows(daily=own), rows(daily=classmates))
    quality = indicator(report, "writing_quality")
    # d has too few checks: the median of 50, 70, 90
    assert quality.class_median == Reading(value=70.0, count=3, evidence="enough")
    assert quality.vs_class == -20.0
    # two students are not a class
    two = student_report(rows(daily=own), rows(daily=classmates[:2]))
    assert indicator(two, "writing_quality").class_median == Reading(
        value=None, count=2, evidence="too_little"
    )
    # the class report says the same
    class_report = build.build_class_report(
        "c1", "s1", GroupData(PERIOD, rows(daily=classmates)), NOW
    )
    summary = next(i for i in class_report.summary.indicators if i.key == "writing_quality")
    assert summary.current == quality.class_median


def test_legibility_is_the_mean_ocr_confidence_in_percent() -> None:
    daily = [row("a", day(0)), row("a", day(1))]
    ocr = [
        LegibilityDay("a", day(0), count=2, confidence_micro=1_700_000),  # 0.8 and 0.9
        LegibilityDay("a", day(1), count=2, confidence_micro=1_000_000),
    ]
    report = student_report(rows(daily=daily, legibility=ocr), rows(daily=daily, legibility=ocr))
    assert indicator(report, "legibility").current == Reading(
        value=67.5, count=4, evidence="enough"
    )
    assert report.trend.values["legibility"] == [85.0, 50.0, None, None]


def test_change_against_the_previous_period_of_equal_length() -> None:
    before = [row("a", day(-4), exam_count=3, exam_avg_score=70.0)]
    now = [row("a", day(2), exam_count=3, exam_avg_score=85.0)]
    report = student_report(rows(daily=before + now), rows(daily=before + now))
    assert report.previous_period == Period(day(-4), day(-1))
    assert report.comparison
    exam = indicator(report, "exam_score")
    assert (exam.current.value, exam.previous.value, exam.change) == (85.0, 70.0, 15.0)
    alone = student_report(rows(daily=now), rows(daily=now))
    assert not alone.comparison
    assert indicator(alone, "exam_score").change is None


# -- homework -----------------------------------------------------------------


def test_implausible_submissions_are_flagged_and_left_out() -> None:
    broken = homework("a", day(0), 0.0, listed=1000, questions=25)
    repeated = homework("a", day(0), 40.0, listed=13, questions=4)
    at_the_limits = [
        homework("a", day(1), 80.0, listed=50, questions=50),
        homework("a", day(1), 70.0, listed=9, questions=3),
        homework("a", day(2), 90.0),
    ]
    submissions = [broken, repeated, *at_the_limits]
    errors = [wrong(broken, f"q{n}", position=n, listed=40) for n in range(1, 26)]
    errors += [wrong(at_the_limits[1], "q1", "加减法")]
    own = rows(daily=graded_days("a", submissions), homework=submissions, errors=errors)
    report = student_report(own, own)
    assert indicator(report, "homework_score").current == Reading(
        value=80.0, count=3, evidence="enough"
    )
    flags = {e.event_id: e.flags for e in report.wrong_answer_book}
    assert flags[broken.event_id] == ["too_many_errors", "repeated_errors"]
    assert flags[repeated.event_id] == ["repeated_errors"]
    assert all(not flags[s.event_id] for s in at_the_limits)
    assert [(p.knowledge_point, p.wrong_questions) for p in report.knowledge_points] == [
        ("加减法", 1)
    ]
    entry = next(e for e in report.wrong_answer_book if e.event_id == broken.event_id)
    assert (entry.points, entry.listed_errors) == ([], 1000)

    group = build.build_class_report("c1", "s1", GroupData(PERIOD, own), NOW)
    assert [(f.event_id, f.reasons) for f in group.summary.flagged] == [
        (broken.event_id, ["too_many_errors", "repeated_errors"]),
        (repeated.event_id, ["repeated_errors"]),
    ]
    assert group.summary.flagged[0].submitted_at.isoformat() == "2026-03-02T10:30:00+08:00"
    [summary] = group.summary.homework
    assert (summary.students, summary.flagged) == (1, 2)


def test_a_question_listed_twice_counts_once() -> None:
    submissions = [homework("a", day(d), 80.0, homework_id=f"hw-{d}") for d in range(3)]
    errors = [
        wrong(submissions[0], "q1", listed=2),
        wrong(submissions[0], "q1", error_type="careless"),  # the same question, another type
        wrong(submissions[0], "", position=3),
        wrong(submissions[0], "", position=4),  # no question id: each its own question
        wrong(submissions[1], "q2"),
    ]
    own = rows(daily=graded_days("a", submissions), homework=submissions, errors=errors)
    [point] = student_report(own, own).knowledge_points
    assert (point.wrong_questions, point.homework_with_errors, point.graded_homework) == (4, 2, 3)
    assert point.error_rate == pytest.approx(66.67)
    assert point.error_types == {"concept": 4, "careless": 1}
    assert [(q.homework_id, q.question_id) for q in point.questions] == [
        ("hw-1", "q2"),
        ("hw-0", "#3"),
        ("hw-0", "#4"),
        ("hw-0", "q1"),
    ]


def test_knowledge_points_rank_by_students_erring_repeatedly() -> None:
    submissions = {
        s: [homework(s, day(d), 70.0, homework_id=f"hw-{d}") for d in range(2)] for s in "abcd"
    }
    errors = [
        # 分数: a, b, c wrong in both homework; 加减法: all four once
        *(wrong(h, "q1") for s in "abc" for h in submissions[s]),
        *(wrong(submissions[s][0], "q2", "加减法") for s in "abcd"),
    ]
    everyone = [h for hs in submissions.values() for h in hs]
    daily = [r for s, hs in submissions.items() for r in graded_days(s, hs)]
    report = build.build_class_report(
        "c1", "s1", GroupData(PERIOD, rows(daily=daily, homework=everyone, errors=errors)), NOW
    )
    points = report.summary.knowledge_points
    assert [(p.knowledge_point, p.students_repeated, p.students_affected) for p in points] == [
        ("分数", 3, 3),
        ("加减法", 0, 4),
    ]
    assert (points[0].student_share, points[1].student_share) == (75.0, 100.0)
    assert [p.knowledge_point for p in report.summary.next_week.knowledge_points] == ["分数"]
    # the common questions: q2 of hw-0 missed by all four who handed it in
    questions = report.summary.common_questions
    assert [
        (q.homework_id, q.question_id, q.students_wrong, q.students_submitted) for q in questions
    ] == [
        ("hw-0", "q2", 4, 4),
        ("hw-0", "q1", 3, 4),
        ("hw-1", "q1", 3, 4),
    ]
    assert all(q.share is None for q in questions)  # fewer than 5 handed it in
    stricter = Options(limits=Thresholds(min_submitters=4))
    data = GroupData(PERIOD, rows(daily=daily, homework=everyone, errors=errors))
    shares = [
        q.share
        for q in build.build_class_report("c1", "s1", data, NOW, stricter).summary.common_questions
    ]
    assert shares == [100.0, 75.0, 75.0]


def test_errors_without_a_knowledge_point_are_counted_apart() -> None:
    submissions = [homework("a", day(0), 80.0, listed=3, errors=1, questions=3)]
    own = rows(daily=graded_days("a", submissions), homework=submissions)
    report = student_report(own, own)
    assert (report.unassigned_errors.listed_errors, report.unassigned_errors.homework) == (2, 1)
    assert report.wrong_answer_book[0].unassigned_errors == 2


# -- characters ---------------------------------------------------------------


def checks(
    student: str, character: str, *scores_by_day: tuple[int, list[float]]
) -> list[CharacterDay]:
    return [
        CharacterDay(student, character, day(d), len(scores), round(sum(scores) * 1_000_000))
        for d, scores in scores_by_day
    ]


def test_characters_to_practise_and_improving() -> None:
    days = [
        *checks("a", "火", (0, [30.0, 40.0]), (3, [50.0])),  # mean 40 on 3
        *checks("a", "必", (0, [40.0, 50.0]), (3, [70.0, 80.0])),  # 45 -> 75
        *checks("a", "人", (1, [95.0, 90.0]), (2, [100.0])),  # mastered
        *checks("a", "九", (0, [10.0, 20.0])),  # too few attempts
    ]
    daily = [row("a", day(d)) for d in range(4)]
    report = student_report(rows(daily=daily, characters=days), rows(daily=daily, characters=days))
    assert [(c.character, c.attempts, c.mean) for c in report.characters] == [
        ("火", 3, 40.0),
        ("必", 4, 60.0),
        ("人", 3, 95.0),
        ("九", 2, None),
    ]
    assert [c.character for c in report.characters_to_practise] == ["火"]
    [rising] = report.improving_characters
    assert (rising.character, rising.first_half, rising.second_half, rising.change) == (
        "必",
        45.0,
        75.0,
        30.0,
    )
    assert isinstance(report.suggestions[0], PractiseCharacters)
    kinds = {type(s).__name__ for s in report.strengths}
    assert {"CharactersMastered", "CharactersImproving", "SteadyPractice"} <= kinds


def test_characters_most_students_get_wrong() -> None:
    days = [
        *(d for s, score in zip("abcde", (30, 40, 50, 70, 80), strict=True)
          for d in checks(s, "成", (0, [score] * 3))),
        *(d for s in "ab" for d in checks(s, "天", (0, [50.0] * 3))),
    ]  # fmt: skip
    daily = [row(s, day(0)) for s in "abcde"]
    report = build.build_class_report(
        "c1", "s1", GroupData(PERIOD, rows(daily=daily, characters=days)), NOW
    )
    first, second = report.summary.characters
    assert (first.character, first.students_weak, first.students_attempted) == ("成", 3, 5)
    assert (first.student_share, first.median, first.students) == (60.0, 50.0, ["a", "b", "c"])
    assert (second.character, second.students_weak, second.student_share) == ("天", 2, None)
    assert [c.character for c in report.summary.next_week.characters] == ["成"]


# -- attention, actions, tiers --------------------------------------------------


def class_rows() -> list[DailyStats]:
    steady = [
        row(f"s{n}", day(d), homework_completed=0, exam_count=2, exam_avg_score=78.0 + n)
        for n in range(5)
        for d in (-4, -3, 0, 1)
    ]
    return [
        *steady,
        # exams: 80 before, 65 now, 6 in each period
        row("down", day(-4), exam_count=6, exam_avg_score=80.0),
        row("down", day(0), exam_count=6, exam_avg_score=65.0),
        # far below everyone, on 4 events
        row("low", day(0), exam_count=4, exam_avg_score=40.0),
        # active in the previous period only
        row("gone", day(-2), exam_count=1, exam_avg_score=80.0),
        row("gone", day(-3), exam_count=1, exam_avg_score=80.0),
    ]


def test_students_needing_support_each_with_one_action() -> None:
    report = build.build_class_report("c1", "s1", GroupData(PERIOD, rows(daily=class_rows())), NOW)
    attention = report.summary.attention
    assert [s.student_id for s in attention] == ["gone", "low", "down"]
    assert attention[0].reasons == [NoActivity(previous_active_days=2)]
    assert attention[0].action == ContactFamily(previous_active_days=2)
    # the class median of exams: 80 (s0..s4 at 78..82, down 65, low 40)
    assert attention[1].reasons == [
        FarBelowClass(indicator="exam_score", value=40.0, class_median=79.0, gap=39.0)
    ]
    assert attention[1].action == ImproveIndicator(
        indicator="exam_score", value=40.0, class_median=79.0, previous=None
    )
    assert attention[2].reasons == [
        Declining(indicator="exam_score", previous=80.0, current=65.0, drop=15.0)
    ]
    tiers = {t.tier: t.students for t in report.summary.tiers}
    assert tiers["support"] == ["down", "gone", "low"]
    assert tiers["insufficient"] == ["s0", "s1", "s2", "s3", "s4"]  # no homework graded


def test_an_action_names_the_knowledge_point_and_its_questions() -> None:
    submissions = [homework("low", day(d), 50.0, homework_id=f"hw-{d}") for d in range(3)]
    errors = [wrong(h, "q3", "单位换算") for h in submissions[:2]]
    # a classmate without errors: the class errs less often than "low"
    clean = [homework("s0", day(d), 90.0, homework_id=f"hw-{d}") for d in range(3)]
    daily = [*class_rows(), *graded_days("low", submissions), *graded_days("s0", clean)]
    data = GroupData(PERIOD, rows(daily=daily, homework=submissions + clean, errors=errors))
    [*_, low, _] = build.build_class_report("c1", "s1", data, NOW).summary.attention
    action = low.action
    assert isinstance(action, PractiseKnowledgePoint)
    assert (action.knowledge_point, action.homework_with_errors, action.graded_homework) == (
        "单位换算",
        2,
        3,
    )
    assert [(q.homework_id, q.question_id) for q in action.questions] == [
        ("hw-1", "q3"),
        ("hw-0", "q3"),
    ]


def test_tiers_by_homework_score() -> None:
    daily, submissions = [], []
    for student, score in (("top", 95.0), ("mid", 80.0), ("few", 99.0)):
        count = 2 if student == "few" else 3
        own = [homework(student, day(d), score) for d in range(count)]
        submissions += own
        daily += graded_days(student, own)
    data = GroupData(PERIOD, rows(daily=daily, homework=submissions))
    report = build.build_class_report("c1", "s1", data, NOW)
    assert {t.tier: t.students for t in report.summary.tiers} == {
        "support": [],
        "steady": ["mid"],
        "stretch": ["top"],
        "insufficient": ["few"],
    }


# -- suggestions, strengths, the parent page ----------------------------------------


def test_a_strong_student_gets_strengths_named() -> None:
    counts: dict[str, Any] = {"exam_count": 3, "writing_quality_count": 3}
    own = [
        row("a", day(d), **counts, exam_avg_score=95.0, writing_quality_avg=90.0) for d in range(4)
    ]
    others = [
        row(s, day(0), **counts, exam_avg_score=70.0, writing_quality_avg=70.0) for s in "bcd"
    ]
    full = [homework("a", day(d), 100.0) for d in range(3)]
    data = rows(daily=own + graded_days("a", full), homework=full)
    report = student_report(data, rows(daily=[*own, *others], homework=full))
    kinds = [type(s).__name__ for s in report.strengths]
    assert kinds[:3] == ["AboveClass", "FullMarks", "SteadyPractice"]
    assert report.suggestions == []
    parent = build.build_parent_report(report)
    assert parent.strengths == report.strengths[:3]
    assert (parent.homework_done, parent.homework_score, parent.practice) == (3, 100.0, [])


def test_parent_practice_is_characters_then_knowledge_points() -> None:
    characters = PractiseCharacters(characters=[])
    point = PractiseKnowledgePoint(
        subject="math",
        knowledge_point="分数",
        homework_with_errors=2,
        graded_homework=3,
        error_rate=66.7,
        class_error_rate=20.0,
        main_error_type="concept",
        questions=[],
    )
    indicator_ = ImproveIndicator(
        indicator="exam_score", value=50.0, class_median=80.0, previous=None
    )
    from writech.reports.advice import parent_practice

    assert parent_practice([point, indicator_, characters, point]) == [characters, point]
    assert parent_practice([point, point, point]) == [point, point]
    assert parent_practice([indicator_]) == []


# -- subjects, exams, periods, rosters --------------------------------------------


def test_one_subject_only() -> None:
    math = [homework("a", day(d), 60.0, subject="math") for d in range(3)]
    chinese = [homework("a", day(d), 90.0, subject="chinese") for d in range(3)]
    daily = graded_days("a", math + chinese)
    strokes = checks("a", "火", (0, [30.0] * 3))
    own = rows(daily=daily, homework=math + chinese, characters=strokes)
    both = student_report(own, own)
    assert indicator(both, "homework_score").current.value == 75.0
    only_math = student_report(own, own, subject="math")
    assert indicator(only_math, "homework_score").current.value == 60.0
    assert only_math.characters == []
    assert only_math.subject == "math"
    assert student_report(own, own, subject="chinese").characters[0].character == "火"


def test_exam_comparisons_need_enough_takers() -> None:
    exams = [ExamScore(s, "e1", "math", day(0), 60.0 + 5 * n) for n, s in enumerate("abcde")]
    exams += [
        ExamScore("a", "e2", "math", day(1), 50.0),
        ExamScore("b", "e2", "math", day(1), 90.0),
    ]
    report = student_report(
        rows(daily=[row("a", day(0))], exams=[e for e in exams if e.student_id == "a"]),
        rows(daily=[row("a", day(0))], exams=exams),
    )
    assert [(e.exam_id, e.score, e.class_median, e.class_takers) for e in report.exams] == [
        ("e1", 60.0, 70.0, 5),
        ("e2", 50.0, None, 2),  # two takers: no class figure
    ]


@pytest.mark.parametrize(
    ("oldest", "newest", "expected"),
    [
        (date(2026, 9, 1), date(2026, 9, 30), Period(date(2026, 9, 24), date(2026, 9, 30))),
        (date(2026, 9, 1), date(2026, 9, 10), Period(date(2026, 9, 6), date(2026, 9, 10))),
        (date(2026, 9, 1), date(2026, 9, 5), Period(date(2026, 9, 3), date(2026, 9, 5))),
        (date(2026, 9, 1), date(2026, 9, 1), Period(date(2026, 9, 1), date(2026, 9, 1))),
    ],
)
def test_default_period_leaves_days_to_compare_with(
    oldest: date, newest: date, expected: Period
) -> None:
    assert default_period(Period(oldest, newest), newest) == expected


def test_a_period_needs_a_previous_period_and_the_web_app_a_year_at_most() -> None:
    assert checked_period(date(1900, 1, 1), date(2100, 12, 31)).days == 73_414  # as asked
    assert checked_period(date(2024, 9, 1), date(2025, 9, 1), longest=366).days == 366
    assert checked_period(date(1, 1, 3), date(1, 1, 4)).previous().start == date(1, 1, 1)
    refusals = {
        (date(2024, 9, 1), date(2025, 9, 2), 366): "is 367 days; a report covers 366 at most",
        (date(2026, 9, 2), date(2026, 9, 1), None): "from 2026-09-02 is after to 2026-09-01",
        (date(1, 1, 1), date(1, 1, 2), None): "the period before it, as long, would begin before",
        (date(1, 1, 2), date(1, 1, 3), None): "would begin before year 1",
    }
    for (start, end, longest), said in refusals.items():
        with pytest.raises(PeriodError, match=said):
            checked_period(start, end, longest=longest)


def test_roster_names_students_and_classes() -> None:
    roster = parse_roster(
        "\ufeffstudent_id,student_name,class_id,class_name,extra\n"
        "a,张三,c1,一年级（1）班,x\n"
        "b,李四,c1,一年级（1）班,y\n"
        ",,c2,一年级（2）班,\n"
    )
    assert roster.students == {"a": "张三", "b": "李四"}
    assert roster.classes == {"c1": "一年级（1）班", "c2": "一年级（2）班"}
    with pytest.raises(RosterError, match="line 3: a is named both"):
        parse_roster("student_id,student_name\na,张三\na,王五\n")
    with pytest.raises(RosterError, match="header"):
        parse_roster("id,name\na,张三\n")
    report = student_report(rows(daily=[row("a", day(0))]), EMPTY, roster=roster)
    assert (report.student_names, report.class_names) == ({"a": "张三"}, {"c1": "一年级（1）班"})
    assert "张三" in render(report, "html", "zh")


def test_a_roster_file_is_read_as_utf8_or_as_excel_saves_it_on_chinese_windows(
    tmp_path: Path,
) -> None:
    text = "student_id,student_name,class_id,class_name\na,张三,c1,一年级（1）班\nb,欧阳𫖮,c1,\n"
    expected = parse_roster(text)
    files = {
        "utf8.csv": text.encode(),
        "excel-utf8.csv": "\ufeff".encode() + text.encode(),
        "excel-gbk.csv": text.replace("𫖮", "娜").encode("gbk"),  # GBK has no 𫖮
        "gb18030.csv": text.encode("gb18030"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        roster = read_roster(tmp_path / name)
        assert roster.classes == expected.classes
        assert roster.students["a"] == "张三"
    assert read_roster(tmp_path / "gb18030.csv") == expected
    (tmp_path / "neither.csv").write_bytes(b"student_id,student_name\na,\xff\xfe\n")
    with pytest.raises(RosterError, match="is neither UTF-8 nor GBK/GB18030 text"):
        read_roster(tmp_path / "neither.csv")


# -- rendering ------------------------------------------------------------------


def sample_reports() -> list[Report]:
    submissions = [homework("low", day(d), 50.0, homework_id=f"hw-{d}") for d in range(3)]
    errors = [wrong(h, "q3", "<script>alert('kp')</script>") for h in submissions]
    daily = [*class_rows(), *graded_days("low", submissions)]
    data = GroupData(PERIOD, rows(daily=daily, homework=submissions, errors=errors))
    own = StudentData(
        "low",
        "c1",
        "s1",
        rows(
            daily=[r for r in daily if r.student_id == "low"], homework=submissions, errors=errors
        ),
        data,
    )
    student = build.build_student_report(own, NOW)
    return [
        build.build_class_report("c1", "s1", data, NOW),
        build.build_school_report("s1", data, NOW),
        student,
        build.build_parent_report(student),
    ]


KINDS = ["class", "school", "student", "parent"]


@pytest.mark.parametrize("report", sample_reports(), ids=KINDS)
def test_json_round_trips_through_the_schema(report: Report) -> None:
    text = to_json(report)
    assert msgspec.json.decode(text, type=Report) == report
    decoded = msgspec.json.decode(text)
    assert decoded["schema_version"] == 2
    assert decoded["thresholds"] == msgspec.structs.asdict(Thresholds())


@pytest.mark.parametrize("report", sample_reports(), ids=KINDS)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_html_is_self_contained_and_escapes_data(report: Report, lang: str) -> None:
    html = render(report, "html", lang)  # type: ignore[arg-type]
    assert "<script>alert(" not in html  # a knowledge point named like a script stays text
    for external in ('src="http', "src='http", 'href="http', "<link", "@import", "url(http"):
        assert external not in html
    assert "pygal-tooltips" not in html  # pygal's CDN script is off
    assert f'<html lang="{TEXT[lang]["html_lang"]}">' in html  # type: ignore[index]
    if not isinstance(report, ParentReport):
        assert "&lt;script&gt;alert(" in html


@pytest.mark.parametrize("report", sample_reports(), ids=KINDS)
def test_markdown_in_both_languages(report: Report) -> None:
    chinese = render(report, "markdown", "zh")
    english = render(report, "markdown", "en")
    assert chinese.startswith("# ")
    assert english.startswith("# ")
    for label in ("作业", "班级", "学生", "北京时间"):
        assert label not in english


def test_times_are_shown_in_the_school_time_zone() -> None:
    [class_report, *_] = sample_reports()
    html = render(class_report, "html", "zh")
    assert "2026-03-10 08:00 北京时间" in html  # generated 00:00 UTC
    elsewhere = build.build_class_report(
        "c1",
        "s1",
        GroupData(PERIOD, rows(daily=class_rows())),
        NOW,
        Options(timezone="Europe/Berlin"),
    )
    assert "2026-03-10 01:00 Europe/Berlin" in render(elsewhere, "html", "zh")


def test_no_statistics_words_on_the_parent_page() -> None:
    parent = sample_reports()[3]
    for lang, words in (
        ("zh", ("中位", "四分位", "置信", "样本", "标准差")),
        ("en", ("median", "quartile", "confidence", "sample")),
    ):
        text = render(parent, "html", lang)  # type: ignore[arg-type]
        assert not [w for w in words if w in text], lang


def test_too_little_data_reads_so_in_every_format() -> None:
    few = [row("a", day(0), practice_count=2, stroke_order_accuracy=70.0)]
    report = student_report(rows(daily=few), rows(daily=few))
    markdown = render(report, "markdown", "zh")
    line = next(line for line in markdown.splitlines() if line.startswith("| 笔顺正确率"))
    assert "数据不足（2 次）" in line
    assert "70.0" not in line
    assert "too little data (2)" in render(report, "html", "en")
    encoded = msgspec.json.decode(to_json(report))
    stroke_order = next(i for i in encoded["indicators"] if i["key"] == "stroke_order_accuracy")
    assert stroke_order["current"] == {"value": None, "count": 2, "evidence": "too_little"}


def test_every_label_exists_in_both_languages() -> None:
    assert TEXT["zh"].keys() == TEXT["en"].keys()
    assert TIERS["zh"].keys() == TIERS["en"].keys()
    assert FLAGS["zh"].keys() == FLAGS["en"].keys()
    # every sentence's fields are filled by the renderer: same fields in both languages
    from string import Formatter

    for key, text in TEXT["zh"].items():
        fields = {f for _, f, _, _ in Formatter().parse(text) if f}
        english = {f for _, f, _, _ in Formatter().parse(TEXT["en"][key]) if f}
        # these two say it differently: "10月26日" / "Oct 26", "等 13 人" / "and 1 more"
        assert fields == english or key in ("month_day", "and_more"), key


# Markdown that a device or a roster could send as an id, a name or a knowledge point.
def hostile(tag: str) -> str:
    return (
        f"<img src=x onerror=alert('{tag}')> [{tag}](javascript:alert(1)) *{tag}* _{tag}_ "
        f"`{tag}` ~~{tag}~~ |{tag}| &amp; \\* {tag}\nend"
    )


TAGS = (
    "student", "classmate", "name", "subject", "hw0", "hw1", "hw2", "question", "point",
    "type", "class", "school", "character", "exam",
)  # fmt: skip


def hostile_reports() -> list[Report]:
    """Every kind of report, every text in it from `hostile`; the roster names hostile too."""
    student, classmate, subject = hostile("student"), hostile("classmate"), hostile("subject")
    submissions = [
        homework(s, day(d), score, subject=subject, homework_id=hostile(f"hw{d}"))
        for s, score in ((student, 40.0), (classmate, 95.0))
        for d in range(3)
    ]
    errors = [
        wrong(h, hostile("question"), hostile("point"), error_type=hostile("type"))
        for h in submissions
        if h.student_id == student
    ]
    daily = [
        day_row
        for s in (student, classmate)
        for day_row in graded_days(
            s, [h for h in submissions if h.student_id == s], class_id=hostile("class")
        )
    ]
    characters = [*checks(student, hostile("character"), (0, [30.0] * 3), (2, [40.0] * 3))]
    exams = [ExamScore(s, hostile("exam"), subject, day(0), 60.0) for s in (student, classmate)]
    parts = rows(
        daily=daily, homework=submissions, errors=errors, characters=characters, exams=exams
    )
    roster = Roster(students={classmate: hostile("name")})
    group = GroupData(PERIOD, parts)
    own = StudentData(student, hostile("class"), hostile("school"), parts, group)
    options = Options(roster=roster)
    report = build.build_student_report(own, NOW, options)
    return [
        build.build_class_report(hostile("class"), hostile("school"), group, NOW, options),
        build.build_school_report(hostile("school"), group, NOW, options),
        report,
        build.build_parent_report(report),
    ]


# The texts each kind of report shows (the school's names no student; the parent's is short).
SHOWN = {
    "class": {*TAGS} - {"classmate", "type"},  # the roster names the classmate
    "school": {"subject", "hw0", "hw1", "hw2", "question", "point", "class", "school", "character"},
    "student": {*TAGS} - {"classmate", "name", "school"},
    "parent": {"student", "subject", "question", "point", "class", "character"},
}


@pytest.mark.parametrize(
    ("kind", "report"), list(zip(KINDS, hostile_reports(), strict=True)), ids=KINDS
)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_markdown_shows_data_as_text(kind: str, report: Report, lang: str) -> None:
    markdown = render(report, "markdown", lang)  # type: ignore[arg-type]
    # as a CommonMark renderer that passes HTML through shows it, with GitHub's tables
    page = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    html = page.render(markdown)
    for markup in ("<img", "<a ", "<code>", "<s>", "<del>"):
        assert markup not in html  # nothing in the data became markup
    # every text is shown whole, as it was sent (a line break as a space)
    text = unescape(re.sub(r"<[^>]*>", "", html))
    assert {tag for tag in TAGS if hostile(tag).replace("\n", " ") in text} == SHOWN[kind]
