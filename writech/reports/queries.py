"""The reports' reads from ClickHouse, embedded (chDB) or server alike.

One query layer: `writech.stores.base.open_clickhouse(settings)`'s `.query`,
with ClickHouse `{name:Type}` parameters for every value. The only text put
into SQL is a column name from the fixed `Scope` set. Tables are read
through their views (`writech.schema.Table.read_from`): the upserted truth,
found by class or school through the tables' indexes (docs/operations.md,
"ClickHouse at scale"). Sums of scores are taken in whole millionths,
so they are exact and do not depend on the order a store adds them in.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final, get_args

import msgspec

from writech.reports.model import Period
from writech.reports.rows import (
    EMPTY,
    CharacterDay,
    ExamScore,
    GroupData,
    LegibilityDay,
    Rows,
    Scope,
    StudentData,
)
from writech.schema import (
    ANALYTICS_METRICS,
    DATABASE,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    DailyStats,
    HomeworkResult,
)
from writech.stores.base import ClickHouse, ErrorStore

_DAILY: Final = f"`{DATABASE}`.`{STUDENT_DAILY_STATS.name}`"
_DAILY_COLUMNS: Final = ", ".join(f"`{name}`" for name in STUDENT_DAILY_STATS.column_names)
# created_at as an ISO string with its offset: a datetime in UTC, whatever the store's zone
_HOMEWORK_COLUMNS: Final = ", ".join(
    f"`{name}`"
    if name != "created_at"
    else "formatDateTime(created_at, '%FT%T.%fZ', 'UTC') AS created_at"
    for name in HOMEWORK_RESULT.column_names
)
_MICRO: Final = "toInt64(round(metric_value * 1000000))"


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


def date_span(store: ClickHouse) -> Period | None:
    """The oldest and newest dates with daily statistics, None when there are none."""
    rows = store.query(
        f"SELECT min(date) AS oldest, max(date) AS newest, count() AS n FROM {_DAILY}"
    )
    if not rows or not rows[0]["n"]:
        return None
    return Period(
        date.fromisoformat(str(rows[0]["oldest"])), date.fromisoformat(str(rows[0]["newest"]))
    )


def membership(store: ClickHouse, scope: Scope, scope_id: str, until: date) -> Membership | None:
    """The latest row of the scope on or before `until` (else the earliest after); None if unknown."""
    rows = store.query(
        f"SELECT student_id, class_id, school_id FROM {STUDENT_DAILY_STATS.read_from(scope)} "
        f"WHERE {_column(scope)} = {{id:String}} "
        "ORDER BY date <= {until:Date} DESC, "
        "if(date <= {until:Date}, -toInt32(date), toInt32(date)), student_id, subject LIMIT 1",
        {"id": scope_id, "until": until},
    )
    return msgspec.convert(rows[0], Membership) if rows else None


def class_ids(store: ClickHouse, period: Period) -> list[str]:
    """Every class with daily statistics in the period."""
    rows = store.query(
        f"SELECT DISTINCT class_id FROM {STUDENT_DAILY_STATS.read_from()} "
        "WHERE date BETWEEN {start:Date} AND {end:Date} AND class_id != '' ORDER BY class_id",
        {"start": period.start, "end": period.end},
    )
    return [str(row["class_id"]) for row in rows]


def daily_rows(store: ClickHouse, scope: Scope, scope_id: str, period: Period) -> list[DailyStats]:
    rows = store.query(
        f"SELECT {_DAILY_COLUMNS} FROM {STUDENT_DAILY_STATS.read_from(scope)} "
        f"WHERE {_column(scope)} = {{id:String}} AND date BETWEEN {{start:Date}} AND {{end:Date}} "
        # a fixed order: sums add up the same, to the last bit, on every store
        "ORDER BY student_id, date, subject",
        _range(scope_id, period),
    )
    return msgspec.convert(rows, list[DailyStats])


def homework_rows(
    store: ClickHouse, scope: Scope, scope_id: str, period: Period
) -> list[HomeworkResult]:
    """Every graded homework (one row per grade_result event) of the scope in the period."""
    rows = store.query(
        f"SELECT {_HOMEWORK_COLUMNS} FROM {HOMEWORK_RESULT.read_from(scope)} "
        f"WHERE {_column(scope)} = {{id:String}} AND date BETWEEN {{start:Date}} AND {{end:Date}} "
        "ORDER BY student_id, created_at, event_id",
        _range(scope_id, period),
    )
    return msgspec.convert(rows, list[HomeworkResult])


def character_days(
    store: ClickHouse, scope: Scope, scope_id: str, period: Period
) -> list[CharacterDay]:
    """Stroke-order checks per student, character and day (events without a character left out)."""
    rows = store.query(
        f"SELECT student_id, dimension AS character, period_start AS date, "
        f"count() AS attempts, sum({_MICRO}) AS score_micro "
        f"FROM {ANALYTICS_METRICS.read_from(scope)} "
        f"WHERE {_column(scope)} = {{id:String}} AND metric_type = {{type:String}} "
        "AND dimension != '' AND period_start BETWEEN {start:Date} AND {end:Date} "
        "GROUP BY student_id, character, date ORDER BY student_id, character, date",
        {**_range(scope_id, period), "type": "stroke_order_score"},
    )
    return msgspec.convert(rows, list[CharacterDay])


def legibility_days(
    store: ClickHouse, scope: Scope, scope_id: str, period: Period
) -> list[LegibilityDay]:
    """OCR confidence per student and day: how legible the handwriting is to a reader."""
    rows = store.query(
        f"SELECT student_id, period_start AS date, count() AS count, "
        f"sum({_MICRO}) AS confidence_micro FROM {ANALYTICS_METRICS.read_from(scope)} "
        f"WHERE {_column(scope)} = {{id:String}} AND metric_type = {{type:String}} "
        "AND period_start BETWEEN {start:Date} AND {end:Date} "
        "GROUP BY student_id, date ORDER BY student_id, date",
        {**_range(scope_id, period), "type": "ocr_confidence"},
    )
    return msgspec.convert(rows, list[LegibilityDay])


def exam_scores(store: ClickHouse, scope: Scope, scope_id: str, period: Period) -> list[ExamScore]:
    rows = store.query(
        "SELECT student_id, dimension AS exam_id, subject, period_start AS date, "
        f"metric_value AS score FROM {ANALYTICS_METRICS.read_from(scope)} "
        f"WHERE {_column(scope)} = {{id:String}} AND metric_type = {{type:String}} "
        "AND period_start BETWEEN {start:Date} AND {end:Date} ORDER BY metric_id",
        {**_range(scope_id, period), "type": "exam_score"},
    )
    return msgspec.convert(rows, list[ExamScore])


def scope_rows(
    store: ClickHouse, error_store: ErrorStore, scope: Scope, scope_id: str, period: Period
) -> Rows:
    """Everything a report reads about a scope: this period, and the previous one where compared."""
    both = Period(period.previous().start, period.end)
    return Rows(
        daily=daily_rows(store, scope, scope_id, both),
        homework=homework_rows(store, scope, scope_id, both),
        errors=error_store.question_errors(scope, scope_id, period),
        characters=character_days(store, scope, scope_id, period),
        legibility=legibility_days(store, scope, scope_id, both),
        exams=exam_scores(store, scope, scope_id, period),
    )


def group_data(
    store: ClickHouse, error_store: ErrorStore, scope: Scope, scope_id: str, period: Period
) -> GroupData:
    """A class's or school's rows."""
    return GroupData(period, scope_rows(store, error_store, scope, scope_id, period))


def student_data(
    store: ClickHouse, error_store: ErrorStore, member: Membership, period: Period
) -> StudentData:
    """A student's own rows and their class's (the class they were last seen in)."""
    # A student seen without a class has no class to compare with.
    classmates = (
        group_data(store, error_store, "class_id", member.class_id, period)
        if member.class_id
        else GroupData(period, EMPTY)
    )
    return StudentData(
        student_id=member.student_id,
        class_id=member.class_id,
        school_id=member.school_id,
        own=scope_rows(store, error_store, "student_id", member.student_id, period),
        group=classmates,
    )
