"""What the queries hand the report builder: stored rows, typed, and nothing more.

Daily rows are `writech.schema.DailyStats` themselves; the rest are the
grouped read-outs of `error_record` and `analytics_metrics` a report needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from msgspec import Struct

from writech.reports.model import Period
from writech.schema import DailyStats

# The column a report selects its rows by, in every table.
Scope = Literal["student_id", "class_id", "school_id"]


class KnowledgePointCount(Struct, frozen=True):
    """One student's wrong answers on one knowledge point (error_record)."""

    student_id: str
    subject: str
    knowledge_point: str
    errors: int
    homework_with_errors: int  # distinct graded homework (grade_result events)


class ErrorTypeCount(Struct, frozen=True):
    """Wrong answers of one type on one knowledge point, over a whole scope."""

    subject: str
    knowledge_point: str
    error_type: str
    errors: int


class ExamScore(Struct, frozen=True):
    """One `exam_score` metric (analytics_metrics): a percentage."""

    student_id: str
    exam_id: str
    subject: str
    date: date
    score: float


@dataclass(frozen=True)
class GroupData:
    """Everything stored about a class or a school for a report.

    `daily` covers the report period and the previous one; the error and
    exam read-outs cover the report period only.
    """

    period: Period
    daily: list[DailyStats]
    knowledge_points: list[KnowledgePointCount]
    error_types: list[ErrorTypeCount]
    exams: list[ExamScore]


@dataclass(frozen=True)
class StudentData:
    """A student's own rows (report period and previous one) and their class's."""

    student_id: str
    class_id: str
    school_id: str
    daily: list[DailyStats]
    knowledge_points: list[KnowledgePointCount]  # report period
    error_types: list[ErrorTypeCount]  # report period
    group: GroupData  # the class
