"""The reports' data model: what the builder produces and every renderer reads.

These Structs are the JSON schema (docs/reports.md documents it; `writech
report schema` prints it as JSON Schema). HTML, Markdown and JSON are all
rendered from one instance, so they show the same numbers. Bump
`SCHEMA_VERSION` on any change a consumer could notice (a field removed,
renamed or changed in meaning); adding a field is not such a change.

Conventions: dates are ISO strings; every score, rate and share is a
percentage (0-100); `None` (JSON null) is never 0: it means no data, or too
little to say (a `Reading` tells which). "The class" is always the median
of its students' values.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final, Literal

from msgspec import Struct

SCHEMA_VERSION: Final = 2
# The default report period: at most a week ending on the newest date stored.
DEFAULT_DAYS: Final = 7

IndicatorKey = Literal[
    "homework_score",
    "exam_score",
    "stroke_order_accuracy",
    "legibility",
    "writing_quality",
    "writing_speed",
    "study_minutes",
    "strokes",
    "characters",
]
# "none": nothing recorded; "too_little": recorded, but under the evidence floor.
Evidence = Literal["enough", "too_little", "none"]
FlagReason = Literal["too_many_errors", "repeated_errors"]
# 需辅导 / 稳定 / 拔高, and students with too little data to place.
Tier = Literal["support", "steady", "stretch", "insufficient"]


class Thresholds(Struct, frozen=True, kw_only=True):
    """Every evidence floor and rule the reports apply, in one place (and in every report)."""

    # Evidence floors: below them a number is "too little data", not a value.
    min_events: int = 3  # an average (a score, speed, legibility) of one student
    min_students: int = 3  # a class value: the median of this many students at least
    min_homework: int = 3  # graded homework in the subject behind a knowledge point's rate
    # A knowledge point is a pattern, not a slip, with wrong questions in this many homework.
    min_homework_with_errors: int = 2
    min_attempts: int = 3  # attempts behind a character's mean score
    min_submitters: int = 5  # students who handed in a homework, behind a question's share
    min_exam_takers: int = 5  # takers behind an exam's class figures
    # Implausible submissions: shown, flagged, and kept out of every ranking.
    max_listed_errors: int = 50  # more errors than a primary-school homework has questions
    max_listings_per_question: int = 3  # errors listed per distinct wrong question, on average
    # Characters.
    weak_character_score: float = 60.0  # a mean stroke-order score below: needs practice
    mastered_character_score: float = 90.0  # at or above: mastered
    improving_points: float = 10.0  # second half of the period over the first, in points
    min_attempts_per_half: int = 2
    # Students needing attention (需辅导).
    decline_points: float = 10.0  # fall from the previous period to this one
    min_events_decline: int = 5  # events behind each of the two values compared
    far_below_points: float = 20.0  # under the class median by this much
    min_students_far_below: int = 5  # students with a value, for "below the class" to mean much
    # 拔高: homework score at least this, and no reason for attention.
    stretch_score: float = 95.0
    # Re-teaching next week: a knowledge point at least this many students err on
    # repeatedly, a character at least this many students are weak on.
    min_students_reteach: int = 3
    # A strength: practice on at least this share of the period's days.
    steady_practice_share: float = 0.7
    # A gap worth a suggestion or a strength: points for scores, a share for speed.
    notable_points: float = 5.0
    notable_speed_share: float = 0.10


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


class Reading(Struct, kw_only=True):
    """A number with what it rests on."""

    value: float | None  # None unless evidence is "enough"
    # Events behind a student's value (graded homework, exams, checks, OCR
    # results, homework submissions; daily rows for strokes and characters);
    # students behind a class's median.
    count: int
    evidence: Evidence


class Indicator(Struct, kw_only=True):
    """One headline number for the period."""

    key: IndicatorKey
    current: Reading
    previous: Reading  # the previous period of equal length
    change: float | None  # current - previous, when both have enough evidence
    # Student reports only: the class median over the same period.
    class_median: Reading | None = None
    vs_class: float | None = None  # current - class_median


class Trend(Struct, kw_only=True):
    """Daily values over the period; `None` on a day without data."""

    dates: list[date]
    values: dict[IndicatorKey, list[float | None]]


class QuestionRef(Struct, frozen=True, kw_only=True):
    homework_id: str
    date: date  # when the homework was handed in (the latest time, if more than once)
    question_id: str


class KnowledgePoint(Struct, kw_only=True):
    """Wrong questions on one knowledge point over the period (believed submissions only)."""

    subject: str
    knowledge_point: str
    # distinct (submission, question): an error listed twice for one question counts once
    wrong_questions: int
    homework_with_errors: int  # graded homework with at least one of them
    graded_homework: int  # graded homework in the subject
    error_rate: float | None  # homework_with_errors / graded_homework, percent
    error_types: dict[str, int]  # wrong questions by error type, most frequent first


class StudentKnowledgePoint(KnowledgePoint, kw_only=True):
    class_error_rate: float | None  # the same rate over the whole class
    questions: list[QuestionRef]  # the wrong questions, newest homework first


class GroupKnowledgePoint(KnowledgePoint, kw_only=True):
    students_affected: int  # students with at least one wrong question on it
    # of them, those with wrong questions on it in `min_homework_with_errors` homework
    students_repeated: int
    students_graded: int  # students with graded homework in the subject
    student_share: float | None  # students_affected / students_graded, percent
    students: list[str]  # the students affected: in most homework first


class UnassignedErrors(Struct, kw_only=True):
    """Listed errors without a knowledge point: in no ranking, but not forgotten."""

    listed_errors: int
    homework: int  # graded homework listing at least one


class CharacterScore(Struct, kw_only=True):
    """One student's stroke-order scores on one character over the period."""

    character: str
    attempts: int
    mean: float | None  # None under `min_attempts`
    first_half: float | None  # means over the first and last halves of the period,
    second_half: float | None  # each on at least `min_attempts_per_half` attempts
    change: float | None  # second_half - first_half


class ClassCharacter(Struct, kw_only=True):
    """One character across a class: how many students get its stroke order wrong."""

    character: str
    attempts: int
    students_attempted: int  # students with at least `min_attempts` attempts
    students_weak: int  # of them, those whose mean is under `weak_character_score`
    student_share: float | None  # students_weak / students_attempted, percent
    median: float | None  # the median of the students' means
    students: list[str]  # the weak students, weakest first


class PointQuestions(Struct, kw_only=True):
    """One homework's wrong questions on one knowledge point."""

    knowledge_point: str
    question_ids: list[str]
    error_types: dict[str, int]


class HomeworkEntry(Struct, kw_only=True):
    """A page of the wrong-answer book (错题本): one graded homework."""

    event_id: str
    homework_id: str
    subject: str
    date: date
    submitted_at: datetime  # in the school time zone
    score: float  # percent
    listed_errors: int  # as the grader listed them
    wrong_questions: int  # distinct questions with a knowledge point
    unassigned_errors: int  # listed errors without a knowledge point
    points: list[PointQuestions]  # empty for a flagged submission
    flags: list[FlagReason]  # non-empty: not believed, counted nowhere


class FlaggedSubmission(Struct, kw_only=True):
    """A graded homework too implausible to believe (the rule: `Thresholds`)."""

    event_id: str
    student_id: str
    homework_id: str
    subject: str
    date: date
    submitted_at: datetime  # in the school time zone
    score: float
    listed_errors: int
    questions_with_errors: int
    reasons: list[FlagReason]


class CommonQuestion(Struct, kw_only=True):
    """A question many students got wrong: material for the review lesson."""

    homework_id: str
    subject: str
    question_id: str
    knowledge_points: list[str]
    students_wrong: int
    students_submitted: int  # students who handed the homework in
    share: float | None  # students_wrong / students_submitted, percent
    students: list[str]


class HomeworkSummary(Struct, kw_only=True):
    """One homework across the class (believed submissions)."""

    homework_id: str
    subject: str
    first_date: date
    students: int  # students who handed it in
    median_score: float | None  # median of their scores (percent)
    flagged: int  # submissions flagged as implausible


class Declining(Struct, kw_only=True, tag="declining", tag_field="kind"):
    """The indicator fell from the previous period to this one."""

    indicator: IndicatorKey
    previous: float
    current: float
    drop: float


class FarBelowClass(Struct, kw_only=True, tag="far_below_class", tag_field="kind"):
    """The indicator is far under the class median."""

    indicator: IndicatorKey
    value: float
    class_median: float
    gap: float  # class_median - value


class NoActivity(Struct, kw_only=True, tag="no_activity", tag_field="kind"):
    """Active in the previous period, silent in this one."""

    previous_active_days: int


AttentionReason = Declining | FarBelowClass | NoActivity


class ContactFamily(Struct, kw_only=True, tag="contact_family", tag_field="kind"):
    """No data at all this period: ask why."""

    previous_active_days: int


class PractiseKnowledgePoint(
    Struct, kw_only=True, tag="practise_knowledge_point", tag_field="kind"
):
    """Go over the wrong questions on one knowledge point."""

    subject: str
    knowledge_point: str
    homework_with_errors: int
    graded_homework: int
    error_rate: float | None
    class_error_rate: float | None
    main_error_type: str
    questions: list[QuestionRef]


class PractiseCharacters(Struct, kw_only=True, tag="practise_characters", tag_field="kind"):
    """Practise the stroke order of these characters."""

    characters: list[CharacterScore]


class ImproveIndicator(Struct, kw_only=True, tag="improve_indicator", tag_field="kind"):
    """The indicator is notably under the class or the previous period."""

    indicator: IndicatorKey
    value: float
    class_median: float | None
    previous: float | None


Action = ContactFamily | PractiseKnowledgePoint | PractiseCharacters | ImproveIndicator
Suggestion = PractiseKnowledgePoint | PractiseCharacters | ImproveIndicator


class AttentionStudent(Struct, kw_only=True):
    student_id: str
    class_id: str
    reasons: list[AttentionReason]
    action: Action  # the one thing to do first, with the numbers behind it


class AboveClass(Struct, kw_only=True, tag="above_class", tag_field="kind"):
    indicator: IndicatorKey
    value: float
    class_median: float


class Improved(Struct, kw_only=True, tag="improved", tag_field="kind"):
    indicator: IndicatorKey
    value: float
    previous: float


class CharactersMastered(Struct, kw_only=True, tag="characters_mastered", tag_field="kind"):
    characters: list[CharacterScore]


class CharactersImproving(Struct, kw_only=True, tag="characters_improving", tag_field="kind"):
    characters: list[CharacterScore]


class PointMastered(Struct, kw_only=True):
    subject: str
    knowledge_point: str
    homework: int  # homework the student handed in where classmates erred on it
    class_error_rate: float | None


class PointsMastered(Struct, kw_only=True, tag="points_mastered", tag_field="kind"):
    """Knowledge points the student got right in every homework where classmates erred on them."""

    points: list[PointMastered]


class FullMarks(Struct, kw_only=True, tag="full_marks", tag_field="kind"):
    homework: int  # graded homework with 100 %
    graded_homework: int


class SteadyPractice(Struct, kw_only=True, tag="steady_practice", tag_field="kind"):
    active_days: int
    days: int


Strength = (
    AboveClass
    | Improved
    | CharactersMastered
    | CharactersImproving
    | PointsMastered
    | FullMarks
    | SteadyPractice
)


class TierGroup(Struct, kw_only=True):
    tier: Tier
    students: list[str]


class StudentExam(Struct, kw_only=True):
    exam_id: str
    subject: str
    score: float  # percent; the mean if the exam was recorded more than once
    class_median: float | None  # None under `min_exam_takers`
    class_takers: int


class ExamSummary(Struct, kw_only=True):
    exam_id: str
    subject: str
    students: int
    median: float | None  # None under `min_exam_takers`, as are the two below
    minimum: float | None
    maximum: float | None


class HistogramBin(Struct, kw_only=True):
    start: float
    end: float  # exclusive, except for the last bin
    students: int


class Distribution(Struct, kw_only=True):
    """One indicator across the students with enough evidence for a value."""

    indicator: IndicatorKey
    students: int
    minimum: float | None
    q1: float | None  # quartiles: linear interpolation ("inclusive" method)
    median: float | None
    q3: float | None
    maximum: float | None
    histogram: list[HistogramBin]


class StudentSummary(Struct, kw_only=True):
    student_id: str
    active_days: int
    tier: Tier
    values: dict[IndicatorKey, float | None]


class ClassSummary(Struct, kw_only=True):
    class_id: str
    students_with_data: int
    values: dict[IndicatorKey, float | None]  # the class medians
    students_needing_attention: int


class NextWeek(Struct, kw_only=True):
    """What to re-teach: the knowledge points and characters most students get wrong."""

    knowledge_points: list[GroupKnowledgePoint]
    characters: list[ClassCharacter]


class GroupSummary(Struct, kw_only=True):
    """What a class report and a school report both show, over their students."""

    students_with_data: int
    indicators: list[Indicator]
    trend: Trend  # class medians per day
    active_students: list[int]  # per day of `trend.dates`
    next_week: NextWeek
    attention: list[AttentionStudent]  # most urgent first
    tiers: list[TierGroup]
    knowledge_points: list[GroupKnowledgePoint]  # most students affected first
    unassigned_errors: UnassignedErrors
    characters: list[ClassCharacter]  # most students weak first
    common_questions: list[CommonQuestion]  # largest share first
    homework: list[HomeworkSummary]
    flagged: list[FlaggedSubmission]
    distributions: list[Distribution]
    exams: list[ExamSummary]


class _Report(Struct, kw_only=True):
    """What every report says about itself."""

    schema_version: int = SCHEMA_VERSION
    generated_at: datetime  # UTC
    timezone: str  # the school's: dates are local dates, times are shown in it
    period: Period
    previous_period: Period
    # whether the scope has any data in the previous period: without, no change is shown
    comparison: bool
    subject: str | None  # the one subject reported on; None: all
    thresholds: Thresholds
    # display names from a roster, for the students and classes the report names
    student_names: dict[str, str]
    class_names: dict[str, str]


class StudentReport(_Report, kw_only=True, tag="student", tag_field="kind"):
    student_id: str
    class_id: str
    school_id: str
    active_days: int  # 0: no data in the period
    indicators: list[Indicator]
    trend: Trend
    class_trend: Trend
    strengths: list[Strength]
    suggestions: list[Suggestion]
    characters: list[CharacterScore]  # every character written, lowest mean first
    characters_to_practise: list[CharacterScore]
    improving_characters: list[CharacterScore]
    wrong_answer_book: list[HomeworkEntry]  # oldest first
    knowledge_points: list[StudentKnowledgePoint]  # most wrong questions first
    unassigned_errors: UnassignedErrors
    exams: list[StudentExam]


class ClassReport(_Report, kw_only=True, tag="class", tag_field="kind"):
    class_id: str
    school_id: str
    summary: GroupSummary
    students: list[StudentSummary]


class SchoolReport(_Report, kw_only=True, tag="school", tag_field="kind"):
    school_id: str
    summary: GroupSummary
    classes: list[ClassSummary]


class ParentReport(_Report, kw_only=True, tag="parent", tag_field="kind"):
    """One page for a family: what went well, and two things to practise at home."""

    student_id: str
    class_id: str
    active_days: int
    homework_done: int  # graded homework (believed)
    homework_score: float | None  # mean score, percent; None under the floor
    characters_written: int  # stroke-order checks
    strengths: list[Strength]  # at most three
    practice: list[PractiseCharacters | PractiseKnowledgePoint]  # at most two


Report = StudentReport | ClassReport | SchoolReport | ParentReport
