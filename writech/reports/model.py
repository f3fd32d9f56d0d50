"""The reports' data model: what the builder produces and every renderer reads.

These Structs are the JSON schema (docs/reports.md documents it; `writech
report schema` prints it as JSON Schema). HTML, Markdown and JSON are all
rendered from one instance, so they show the same numbers. Bump
`SCHEMA_VERSION` on any change a consumer could notice (a field removed,
renamed or changed in meaning); adding a field is not such a change.

Conventions: dates are ISO strings; every score, rate and share is a
percentage (0-100); `None` (JSON null) means "no data" and is never 0.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final, Literal

from msgspec import Struct

SCHEMA_VERSION: Final = 1
# The default report period: a week ending on the newest date stored.
DEFAULT_DAYS: Final = 7

IndicatorKey = Literal[
    "homework_score",
    "exam_score",
    "stroke_order_accuracy",
    "writing_quality",
    "writing_speed",
    "study_minutes",
    "strokes",
    "characters",
]

# Something the stored tables cannot tell, named so the reader knows it is
# missing rather than absent from the student's work.
Unavailable = Literal["character_detail"]


class Period(Struct, frozen=True):
    """Inclusive range of local dates."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]

    def previous(self) -> Period:
        """The period of equal length just before this one."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


class Indicator(Struct, kw_only=True):
    """One headline number for the period."""

    key: IndicatorKey
    value: float | None
    # What the value rests on: events (graded homework, exams, stroke-order or
    # writing-quality checks, homework submissions) for the averaged
    # indicators and study minutes; daily rows for strokes and characters.
    # In class and school reports, for study minutes, strokes and characters
    # (averages per student): the number of students with a value.
    count: int
    previous: float | None
    change: float | None  # value - previous
    # Student reports only: the class's value over the same period.
    class_average: float | None = None
    vs_class: float | None = None  # value - class_average


class Trend(Struct, kw_only=True):
    """Daily values over the period; `None` on a day without data."""

    dates: list[date]
    values: dict[IndicatorKey, list[float | None]]


class KnowledgePointErrors(Struct, kw_only=True):
    """Wrong answers on one knowledge point over the period."""

    subject: str
    knowledge_point: str
    errors: int  # wrong answers
    homework_with_errors: int  # graded homework with at least one of them
    graded_homework: int  # graded homework in the subject
    error_rate: float | None  # homework_with_errors / graded_homework, percent
    error_types: dict[str, int]  # wrong answers by error_type


class StudentKnowledgePoint(KnowledgePointErrors, kw_only=True):
    class_error_rate: float | None  # the same rate over the whole class


class GroupKnowledgePoint(KnowledgePointErrors, kw_only=True):
    students_affected: int  # students with at least one wrong answer on it
    students_graded: int  # students with graded homework in the subject


class HistogramBin(Struct, kw_only=True):
    start: float
    end: float  # exclusive, except for the last bin
    students: int


class Distribution(Struct, kw_only=True):
    """One indicator across the students who have a value for it."""

    indicator: IndicatorKey
    students: int
    minimum: float | None
    q1: float | None  # quartiles: linear interpolation ("inclusive" method)
    median: float | None
    q3: float | None
    maximum: float | None
    lower_fence: float | None  # q1 - 1.5 * (q3 - q1); below it is "far below"
    histogram: list[HistogramBin]


class Declining(Struct, kw_only=True, tag="declining", tag_field="kind"):
    """The indicator fell from the first half of the period to the second."""

    indicator: IndicatorKey
    first_half: float
    second_half: float
    drop: float


class FarBelowClass(Struct, kw_only=True, tag="far_below_class", tag_field="kind"):
    """The indicator is below the class's lower fence."""

    indicator: IndicatorKey
    value: float
    class_median: float
    lower_fence: float
    gap: float  # class_median - value


class NoActivity(Struct, kw_only=True, tag="no_activity", tag_field="kind"):
    """Active in the previous period, silent in this one."""

    previous_active_days: int


AttentionReason = Declining | FarBelowClass | NoActivity


class AttentionStudent(Struct, kw_only=True):
    student_id: str
    class_id: str
    reasons: list[AttentionReason]


class StudentExam(Struct, kw_only=True):
    exam_id: str
    subject: str
    score: float  # percent; the mean if the exam was recorded more than once
    class_average: float | None
    class_students: int


class ExamSummary(Struct, kw_only=True):
    exam_id: str
    subject: str
    students: int
    average: float
    minimum: float
    maximum: float


class PractiseKnowledgePoint(
    Struct, kw_only=True, tag="practise_knowledge_point", tag_field="kind"
):
    """The student errs on this point more often than the class."""

    subject: str
    knowledge_point: str
    homework_with_errors: int
    graded_homework: int
    error_rate: float
    class_error_rate: float | None
    main_error_type: str


class ImproveIndicator(Struct, kw_only=True, tag="improve_indicator", tag_field="kind"):
    """The indicator is notably below the class or fell since the previous period."""

    indicator: IndicatorKey
    value: float
    class_average: float | None
    previous: float | None


class KeepGoing(Struct, kw_only=True, tag="keep_going", tag_field="kind"):
    """Nothing stands out: no indicator notably low, no point above the class."""


Suggestion = PractiseKnowledgePoint | ImproveIndicator | KeepGoing


class StudentSummary(Struct, kw_only=True):
    student_id: str
    active_days: int
    values: dict[IndicatorKey, float | None]


class ClassSummary(Struct, kw_only=True):
    class_id: str
    students_with_data: int
    values: dict[IndicatorKey, float | None]
    students_needing_attention: int


class GroupSummary(Struct, kw_only=True):
    """What a class report and a school report both show, over their students."""

    students_with_data: int
    indicators: list[Indicator]
    trend: Trend
    active_students: list[int]  # per day of `trend.dates`
    distributions: list[Distribution]
    knowledge_points: list[GroupKnowledgePoint]  # by error rate, highest first
    attention: list[AttentionStudent]  # most urgent first
    exams: list[ExamSummary]


class StudentReport(Struct, kw_only=True, tag="student", tag_field="kind"):
    schema_version: int = SCHEMA_VERSION
    generated_at: datetime
    period: Period
    previous_period: Period
    student_id: str
    class_id: str
    school_id: str
    active_days: int  # 0: no data in the period
    indicators: list[Indicator]
    trend: Trend
    class_trend: Trend
    knowledge_points: list[StudentKnowledgePoint]  # most errors first
    exams: list[StudentExam]
    suggestions: list[Suggestion]
    unavailable: list[Unavailable]


class ClassReport(Struct, kw_only=True, tag="class", tag_field="kind"):
    schema_version: int = SCHEMA_VERSION
    generated_at: datetime
    period: Period
    previous_period: Period
    class_id: str
    school_id: str
    summary: GroupSummary
    students: list[StudentSummary]
    unavailable: list[Unavailable]


class SchoolReport(Struct, kw_only=True, tag="school", tag_field="kind"):
    schema_version: int = SCHEMA_VERSION
    generated_at: datetime
    period: Period
    previous_period: Period
    school_id: str
    summary: GroupSummary
    classes: list[ClassSummary]
    unavailable: list[Unavailable]


Report = StudentReport | ClassReport | SchoolReport
