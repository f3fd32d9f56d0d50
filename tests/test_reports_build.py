"""The report builder and renderers on hand-made rows: no database, every number by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from writech.reports import build
from writech.reports.model import (
    Declining,
    FarBelowClass,
    ImproveIndicator,
    KeepGoing,
    NoActivity,
    Period,
    PractiseKnowledgePoint,
    Report,
    StudentReport,
)
from writech.reports.render import render, to_json
from writech.reports.rows import (
    ErrorTypeCount,
    ExamScore,
    GroupData,
    KnowledgePointCount,
    StudentData,
)
from writech.schema import DailyStats

DAY1 = date(2026, 3, 2)
PERIOD = Period(DAY1, DAY1 + timedelta(days=3))  # 4 days; previous: the 4 days before
NOW = datetime(2026, 3, 10, tzinfo=UTC)


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


def group(rows: list[DailyStats], **extra: Any) -> GroupData:
    return GroupData(
        period=PERIOD,
        daily=rows,
        knowledge_points=extra.get("knowledge_points", []),
        error_types=extra.get("error_types", []),
        exams=extra.get("exams", []),
    )


def indicator(report: StudentReport, key: str) -> Any:
    return next(i for i in report.indicators if i.key == key)


def student_report(
    rows: list[DailyStats], class_rows: list[DailyStats], **extra: Any
) -> StudentReport:
    data = StudentData(
        student_id="a",
        class_id="c1",
        school_id="s1",
        daily=rows,
        knowledge_points=extra.pop("own_points", []),
        error_types=extra.pop("own_types", []),
        group=group(class_rows, **extra),
    )
    return build.build_student_report(data, NOW)


def test_averages_over_days_are_weighted_by_their_counts() -> None:
    rows = [
        row("a", day(0), homework_completed=1, homework_avg_score=90.0),
        row("a", day(1), homework_completed=3, homework_avg_score=60.0),
    ]
    report = student_report(rows, rows)
    # (90*1 + 60*3) / 4, not the mean of daily means (75)
    assert indicator(report, "homework_score").value == 67.5
    assert indicator(report, "homework_score").count == 4


def test_count_zero_is_no_data_never_zero() -> None:
    rows = [row("a", day(0), practice_count=2, stroke_order_accuracy=80.0)]
    report = student_report(rows, rows)
    assert indicator(report, "homework_score").value is None
    assert indicator(report, "exam_score").value is None
    assert indicator(report, "study_minutes").value is None  # no homework submitted
    assert indicator(report, "stroke_order_accuracy").value == 80.0
    # the student has a row that day: 0 strokes is what they wrote
    assert indicator(report, "strokes").value == 0
    assert report.trend.values["homework_score"] == [None, None, None, None]
    assert report.trend.values["stroke_order_accuracy"] == [80.0, None, None, None]


def test_change_against_the_previous_period_of_equal_length() -> None:
    previous_day = PERIOD.start - timedelta(days=4)  # first day of the previous period
    rows = [
        row(
            "a",
            previous_day,
            exam_count=2,
            exam_avg_score=70.0,
            study_duration_minutes=30,
            homework_count=1,
        ),
        row("a", PERIOD.start - timedelta(days=5), exam_count=5, exam_avg_score=10.0),  # before it
        row(
            "a",
            day(2),
            exam_count=1,
            exam_avg_score=85.0,
            study_duration_minutes=50,
            homework_count=2,
        ),
    ]
    report = student_report(rows, rows)
    assert report.previous_period == Period(day(-4), day(-1))
    exam = indicator(report, "exam_score")
    assert (exam.value, exam.previous, exam.change) == (85.0, 70.0, 15.0)
    minutes = indicator(report, "study_minutes")
    assert (minutes.value, minutes.previous, minutes.change) == (50, 30, 20)


def test_class_average_pools_events_and_averages_totals_per_student() -> None:
    own = [
        row("a", day(0), writing_quality_count=1, writing_quality_avg=50.0, stroke_count_total=100)
    ]
    classmates = [
        *own,
        row("b", day(0), writing_quality_count=3, writing_quality_avg=90.0, stroke_count_total=300),
        row("b", day(1), stroke_count_total=200),
    ]
    report = student_report(own, classmates)
    quality = indicator(report, "writing_quality")
    assert quality.class_average == 80.0  # (50 + 3*90) / 4
    assert quality.vs_class == -30.0
    strokes = indicator(report, "strokes")
    assert strokes.class_average == 300.0  # (100 + 500) / 2 students
    assert strokes.vs_class == -200.0
    assert report.class_trend.values["strokes"] == [200.0, 200.0, None, None]


def test_knowledge_point_rates_against_the_class() -> None:
    own = [row("a", day(0), subject="math", homework_completed=4)]
    classmates = [*own, row("b", day(1), subject="math", homework_completed=6)]
    report = student_report(
        own,
        classmates,
        own_points=[KnowledgePointCount("a", "math", "分数", errors=5, homework_with_errors=2)],
        own_types=[
            ErrorTypeCount("math", "分数", "careless", 2),
            ErrorTypeCount("math", "分数", "concept", 3),
        ],
        knowledge_points=[
            KnowledgePointCount("a", "math", "分数", errors=5, homework_with_errors=2),
            KnowledgePointCount("b", "math", "分数", errors=1, homework_with_errors=1),
        ],
    )
    [point] = report.knowledge_points
    assert (point.graded_homework, point.error_rate) == (4, 50.0)
    assert point.class_error_rate == 30.0  # (2 + 1) / (4 + 6)
    assert list(point.error_types) == ["concept", "careless"]  # most frequent first
    assert isinstance(report.suggestions[0], PractiseKnowledgePoint)
    assert report.suggestions[0].main_error_type == "concept"


def test_suggestions_for_weak_indicators_or_none_needed() -> None:
    weak = [row("a", day(0), practice_count=3, stroke_order_accuracy=60.0)]
    strong = [row("b", day(0), practice_count=3, stroke_order_accuracy=90.0)]
    report = student_report(weak, weak + strong)
    assert report.suggestions == [
        ImproveIndicator(
            indicator="stroke_order_accuracy", value=60.0, class_average=75.0, previous=None
        )
    ]
    # 4 points below the class: not notable
    close = [row("a", day(0), practice_count=3, stroke_order_accuracy=86.0)]
    assert student_report(close, close + strong).suggestions == [KeepGoing()]
    # no data, nothing to suggest
    assert student_report([], strong).suggestions == []


def test_suggestions_are_a_short_list_furthest_below_first() -> None:
    values: dict[str, Any] = {
        "homework_completed": 2,
        "exam_count": 2,
        "practice_count": 2,
        "writing_quality_count": 2,
    }
    weak = [
        row("a", day(0), **values, homework_avg_score=60.0, exam_avg_score=40.0,
            stroke_order_accuracy=70.0, writing_quality_avg=75.0, writing_speed_avg=11.0),
    ]  # fmt: skip
    strong = [
        row("b", day(0), **values, homework_avg_score=90.0, exam_avg_score=90.0,
            stroke_order_accuracy=90.0, writing_quality_avg=90.0, writing_speed_avg=30.0),
    ]  # fmt: skip
    points = [
        KnowledgePointCount("a", "chinese", name, errors=2, homework_with_errors=count)
        for name, count in (("拼音", 2), ("笔顺", 1))
    ]
    report = student_report(weak, weak + strong, own_points=points, knowledge_points=points)
    kinds = [type(s).__name__ for s in report.suggestions]
    # one slip (笔顺, in 1 homework) is not a pattern; 5 suggestions at most, so
    # writing quality (7.5 points below the class: 1.5 notable gaps) is left out
    assert kinds == ["PractiseKnowledgePoint"] + ["ImproveIndicator"] * 4
    assert [s.indicator for s in report.suggestions[1:]] == [  # type: ignore[union-attr]
        "exam_score",  # 25 points below the class: 5 notable gaps of 5 points
        "writing_speed",  # 11 against 20.5: 4.6 gaps of 10%
        "homework_score",  # 15 points: 3 gaps
        "stroke_order_accuracy",  # 10 points: 2 gaps
    ]


def test_quartiles_fence_and_histogram() -> None:
    spread = build.distribution("homework_score", [10.0, 20.0, 30.0, 40.0, 100.0])
    assert (spread.q1, spread.median, spread.q3) == (20.0, 30.0, 40.0)
    assert spread.lower_fence == -10.0
    assert len(spread.histogram) == 10
    assert spread.histogram[9].students == 1  # 100 falls in the last bin
    assert sum(b.students for b in spread.histogram) == 5
    empty = build.distribution("strokes", [])
    assert (empty.students, empty.median, empty.histogram) == (0, None, [])
    strokes = build.distribution("strokes", [120.0, 480.0, 950.0])
    assert strokes.histogram[0].start <= 120
    assert strokes.histogram[-1].end > 950
    assert sum(b.students for b in strokes.histogram) == 3


def class_rows() -> list[DailyStats]:
    rows = [
        # five steady students around 80
        *(
            row(f"s{n}", day(d), homework_completed=2, homework_avg_score=78.0 + n)
            for n in range(5)
            for d in range(4)
        ),
        # declines: 90 in the first half, 70 in the second (2 events per half)
        row("down", day(0), homework_completed=1, homework_avg_score=90.0),
        row("down", day(1), homework_completed=1, homework_avg_score=90.0),
        row("down", day(2), homework_completed=1, homework_avg_score=70.0),
        row("down", day(3), homework_completed=1, homework_avg_score=70.0),
        # far below everyone, on 4 events
        row("low", day(0), homework_completed=4, homework_avg_score=20.0),
        # active in the previous period only
        row("gone", day(-2), homework_completed=1, homework_avg_score=80.0),
        row("gone", day(-3), homework_completed=1, homework_avg_score=80.0),
    ]
    return rows


def test_students_needing_attention_with_reasons_most_urgent_first() -> None:
    report = build.build_class_report("c1", "s1", group(class_rows()), NOW)
    attention = report.summary.attention
    assert [s.student_id for s in attention] == ["gone", "low", "down"]
    assert attention[0].reasons == [NoActivity(previous_active_days=2)]
    [low] = attention[1].reasons
    assert isinstance(low, FarBelowClass)
    assert (low.indicator, low.value) == ("homework_score", 20.0)
    assert low.value < low.lower_fence
    assert low.gap == low.class_median - 20.0
    assert attention[2].reasons == [
        Declining(indicator="homework_score", first_half=90.0, second_half=70.0, drop=20.0)
    ]
    assert report.summary.students_with_data == 7
    assert [s.student_id for s in report.students] == sorted(
        ["s0", "s1", "s2", "s3", "s4", "down", "low"]
    )


def test_a_class_without_data_in_the_period_reports_none_not_zero() -> None:
    rows = [
        row("gone", day(-2), homework_completed=1, homework_avg_score=80.0, stroke_count_total=5)
    ]
    report = build.build_class_report("c1", "s1", group(rows), NOW)
    summary = report.summary
    assert summary.students_with_data == 0
    assert all(i.value is None for i in summary.indicators)
    assert next(i for i in summary.indicators if i.key == "homework_score").previous == 80.0
    assert summary.active_students == [0, 0, 0, 0]
    assert report.students == []
    encoded = msgspec.json.decode(to_json(report))
    assert encoded["summary"]["indicators"][0]["value"] is None


def test_school_report_compares_classes() -> None:
    rows = [
        *class_rows(),
        row("x", day(0), class_id="c2", homework_completed=1, homework_avg_score=40.0),
    ]
    report = build.build_school_report("s1", group(rows), NOW)
    assert [c.class_id for c in report.classes] == ["c1", "c2"]
    assert report.classes[1].values["homework_score"] == 40.0
    assert report.classes[0].students_needing_attention == 3
    assert report.summary.students_with_data == 8


def test_exams_beside_the_class() -> None:
    exams = [
        ExamScore("a", "e1", "math", day(0), 80.0),
        ExamScore("b", "e1", "math", day(1), 60.0),
        ExamScore("b", "e2", "math", day(1), 50.0),
    ]
    own = [row("a", day(0), exam_count=1, exam_avg_score=80.0)]
    report = student_report(own, own, exams=exams)
    [exam] = report.exams
    assert (exam.exam_id, exam.score, exam.class_average, exam.class_students) == (
        "e1",
        80.0,
        70.0,
        2,
    )


# -- rendering --------------------------------------------------------------


def sample_reports() -> list[Report]:
    rows = class_rows()
    points = [KnowledgePointCount("low", "math", "<script>alert('kp')</script>", 3, 2)]
    data = group(rows, knowledge_points=points)
    return [
        build.build_class_report("c1", "s1", data, NOW),
        build.build_school_report("s1", data, NOW),
        student_report(
            [r for r in rows if r.student_id == "low"],
            rows,
            own_points=points,
            knowledge_points=points,
        ),
    ]


@pytest.mark.parametrize("report", sample_reports(), ids=["class", "school", "student"])
def test_json_round_trips_through_the_schema(report: Report) -> None:
    text = to_json(report)
    assert msgspec.json.decode(text, type=Report) == report
    assert msgspec.json.decode(text)["schema_version"] == 1


@pytest.mark.parametrize("report", sample_reports(), ids=["class", "school", "student"])
def test_html_is_self_contained_and_escapes_data(report: Report) -> None:
    html = render(report, "html", "zh")
    assert "<script>alert(" not in html  # a knowledge point named like a script stays text
    assert "&lt;script&gt;alert(" in html
    for external in ('src="http', "src='http", 'href="http', "<link", "@import", "url(http"):
        assert external not in html
    assert "pygal-tooltips" not in html  # pygal's CDN script is off
    assert '<html lang="zh-CN">' in html


def test_labels_in_chinese_by_default_and_english_on_request() -> None:
    report = sample_reports()[0]
    chinese = render(report, "markdown", "zh")
    english = render(report, "markdown", "en")
    assert "需要关注的学生" in chinese
    assert "作业得分率" in chinese
    assert "Students needing attention" in english
    assert "Homework score" in english
    assert "作业得分率" not in english


def test_no_data_reads_no_data_in_every_format() -> None:
    rows = [row("a", day(0), practice_count=1, stroke_order_accuracy=70.0)]
    report = student_report(rows, rows)
    markdown = render(report, "markdown", "zh")
    homework_line = next(line for line in markdown.splitlines() if line.startswith("| 作业得分率"))
    assert "无数据" in homework_line
    assert "0.0" not in homework_line
    html = render(report, "html", "en")
    assert "no data" in html
    assert msgspec.json.decode(to_json(report))["indicators"][0]["value"] is None
