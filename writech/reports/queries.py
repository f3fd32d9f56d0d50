"""The reports' reads from ClickHouse, embedded (chDB) or server alike.

One query layer: `writech.stores.open_clickhouse(settings)`'s `.query`,
with ClickHouse `{name:Type}` parameters for every value. The only text put
into SQL is a column name from the fixed `Scope` set. Tables are read with
`FINAL` (rows are upserts).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final, get_args

import msgspec

from writech.reports.model import Period
from writech.reports.rows import ExamScore, GroupData, Scope, StudentData
from writech.reports.wrong_answers import WrongAnswers
from writech.schema import ANALYTICS_METRICS, DATABASE, STUDENT_DAILY_STATS, DailyStats
from writech.sinks import ClickHouse

_DAILY: Final = f"`{DATABASE}`.`{STUDENT_DAILY_STATS.name}`"
_METRICS: Final = f"`{DATABASE}`.`{ANALYTICS_METRICS.name}`"
_DAILY_COLUMNS: Final = ", ".join(f"`{name}`" for name in STUDENT_DAILY_STATS.column_names)


class Membership(msgspec.Struct, frozen=True):
    """Where a student, class or school was last seen."""

    student_id: str
    class_id: str
    school_id: str


def _column(scope: Scope) -> str:
    if scope not in get_args(Scope):
        raise ValueError(f"not a report scope: {scope!r}")
    return scope


def _range(scope_id: str, period: Period) -> dict[str, Any]:
    return {"id": scope_id, "start": period.start, "end": period.end}


def newest_date(store: ClickHouse) -> date | None:
    """The newest date with daily statistics, None when there are none."""
    rows = store.query(f"SELECT max(date) AS newest, count() AS n FROM {_DAILY}")
    return date.fromisoformat(str(rows[0]["newest"])) if rows and rows[0]["n"] else None


def membership(store: ClickHouse, scope: Scope, scope_id: str, until: date) -> Membership | None:
    """The latest row of the scope on or before `until` (else the earliest after); None if unknown."""
    rows = store.query(
        f"SELECT student_id, class_id, school_id FROM {_DAILY} FINAL "
        f"WHERE {_column(scope)} = {{id:String}} "
        "ORDER BY date <= {until:Date} DESC, "
        "if(date <= {until:Date}, -toInt32(date), toInt32(date)), student_id, subject LIMIT 1",
        {"id": scope_id, "until": until},
    )
    return msgspec.convert(rows[0], Membership) if rows else None


def class_ids(store: ClickHouse, period: Period) -> list[str]:
    """Every class with daily statistics in the period."""
    rows = store.query(
        f"SELECT DISTINCT class_id FROM {_DAILY} FINAL "
        "WHERE date BETWEEN {start:Date} AND {end:Date} AND class_id != '' ORDER BY class_id",
        {"start": period.start, "end": period.end},
    )
    return [str(row["class_id"]) for row in rows]


def daily_rows(store: ClickHouse, scope: Scope, scope_id: str, period: Period) -> list[DailyStats]:
    rows = store.query(
        f"SELECT {_DAILY_COLUMNS} FROM {_DAILY} FINAL "
        f"WHERE {_column(scope)} = {{id:String}} AND date BETWEEN {{start:Date}} AND {{end:Date}} "
        # a fixed order: sums add up the same, to the last bit, on every store
        "ORDER BY student_id, date, subject",
        _range(scope_id, period),
    )
    return msgspec.convert(rows, list[DailyStats])


def exam_scores(store: ClickHouse, scope: Scope, scope_id: str, period: Period) -> list[ExamScore]:
    rows = store.query(
        "SELECT student_id, dimension AS exam_id, subject, period_start AS date, "
        f"metric_value AS score FROM {_METRICS} FINAL "
        f"WHERE {_column(scope)} = {{id:String}} AND metric_type = {{type:String}} "
        "AND period_start BETWEEN {start:Date} AND {end:Date} ORDER BY metric_id",
        {**_range(scope_id, period), "type": "exam_score"},
    )
    return msgspec.convert(rows, list[ExamScore])


def group_data(
    store: ClickHouse, wrong_answers: WrongAnswers, scope: Scope, scope_id: str, period: Period
) -> GroupData:
    """A class's or school's rows: daily over this and the previous period, the rest over this."""
    return GroupData(
        period=period,
        daily=daily_rows(store, scope, scope_id, Period(period.previous().start, period.end)),
        knowledge_points=wrong_answers.knowledge_points(scope, scope_id, period),
        error_types=wrong_answers.error_types(scope, scope_id, period),
        exams=exam_scores(store, scope, scope_id, period),
    )


def student_data(
    store: ClickHouse, wrong_answers: WrongAnswers, member: Membership, period: Period
) -> StudentData:
    """A student's own rows and their class's (the class they were last seen in)."""
    both = Period(period.previous().start, period.end)
    # A student seen without a class has no class to compare with.
    classmates = (
        group_data(store, wrong_answers, "class_id", member.class_id, period)
        if member.class_id
        else GroupData(period=period, daily=[], knowledge_points=[], error_types=[], exams=[])
    )
    return StudentData(
        student_id=member.student_id,
        class_id=member.class_id,
        school_id=member.school_id,
        daily=daily_rows(store, "student_id", member.student_id, both),
        knowledge_points=wrong_answers.knowledge_points("student_id", member.student_id, period),
        error_types=wrong_answers.error_types("student_id", member.student_id, period),
        group=classmates,
    )
