"""What the queries hand the report builder: stored rows, typed, and nothing more.

Daily rows are `writech.schema.DailyStats` and graded homework
`writech.schema.HomeworkResult` themselves; the rest are the grouped
read-outs of `error_record` and `analytics_metrics` a report needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from msgspec import Struct

from writech.reports.model import Period
from writech.schema import DailyStats, HomeworkResult

# The column a report selects its rows by, in every table.
Scope = Literal["student_id", "class_id", "school_id"]


class QuestionError(Struct, frozen=True):
    """A wrong question of one submission on one knowledge point and error type (error_record).

    Rows listing the same (submission, question, knowledge point, error type)
    come grouped as one, with how many there were; errors without a question
    id stay apart, each named by its position in the submission's list.
    """

    event_id: str
    student_id: str
    homework_id: str
    subject: str
    question_id: str
    knowledge_point: str
    error_type: str
    first_position: int
    listed: int

    @property
    def question(self) -> str:
        """What identifies the question within its submission."""
        return self.question_id or f"#{self.first_position}"


class CharacterDay(Struct, frozen=True):
    """One student's stroke-order checks of one character on one day (analytics_metrics)."""

    student_id: str
    character: str
    date: date
    attempts: int
    score_micro: int  # sum of the scores (0-100), in millionths


class LegibilityDay(Struct, frozen=True):
    """One student's OCR results on one day (analytics_metrics `ocr_confidence`)."""

    student_id: str
    date: date
    count: int
    confidence_micro: int  # sum of the confidences (0-1), in millionths


class ExamScore(Struct, frozen=True):
    """One `exam_score` metric (analytics_metrics): a percentage."""

    student_id: str
    exam_id: str
    subject: str
    date: date
    score: float


@dataclass(frozen=True)
class Rows:
    """Everything stored about some students for a report.

    `daily`, `homework` and `legibility` cover the report period and the
    previous one; the rest cover the report period only.
    """

    daily: list[DailyStats]
    homework: list[HomeworkResult]
    errors: list[QuestionError]
    characters: list[CharacterDay]
    legibility: list[LegibilityDay]
    exams: list[ExamScore]


EMPTY = Rows(daily=[], homework=[], errors=[], characters=[], legibility=[], exams=[])


@dataclass(frozen=True)
class GroupData:
    """A class's or a school's rows over a period."""

    period: Period
    rows: Rows


@dataclass(frozen=True)
class StudentData:
    """A student's own rows and their class's (the class they were last seen in)."""

    student_id: str
    class_id: str
    school_id: str
    own: Rows
    group: GroupData  # the class
