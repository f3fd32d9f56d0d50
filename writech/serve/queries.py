"""The web app's reads from ClickHouse (embedded chDB or a server alike).

Every value is a bound `{name:Type}` parameter; the only text put into
SQL is a table name from the schema or a column name from the fixed
`Scope` set. Tables are read with `FINAL` (rows are upserts). Every read
the app shows is filtered by the signed-in user's school as well as by
class or student, so that a class id used by two schools shows each only
its own rows; the reads that decide access (`*_schools`) are the only
ones across schools, and they return school ids only.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final, get_args

import msgspec

from writech.reports.model import Period
from writech.reports.rows import Scope
from writech.schema import (
    ANALYTICS_METRICS,
    CLASS_MINUTE_STATS,
    DATABASE,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    STUDENT_MINUTE_STATS,
)
from writech.serve.board import CharacterPractice, ClassWindow, StudentDay
from writech.stores.base import ClickHouse

_DAILY: Final = f"`{DATABASE}`.`{STUDENT_DAILY_STATS.name}`"
_HOMEWORK: Final = f"`{DATABASE}`.`{HOMEWORK_RESULT.name}`"
_METRICS: Final = f"`{DATABASE}`.`{ANALYTICS_METRICS.name}`"
_CLASS_MINUTES: Final = f"`{DATABASE}`.`{CLASS_MINUTE_STATS.name}`"
_STUDENT_MINUTES: Final = f"`{DATABASE}`.`{STUDENT_MINUTE_STATS.name}`"
# Instants travel as seconds since the epoch and meet DateTime('UTC') columns here.
_AT: Final = "toDateTime({%s:UInt32}, 'UTC')"


def _column(scope: Scope) -> str:
    if scope not in get_args(Scope):
        raise ValueError(f"not a scope: {scope!r}")
    return scope


class ClassCount(msgspec.Struct, frozen=True):
    class_id: str
    students: int


# -- browsing ------------------------------------------------------------------


def school_span(store: ClickHouse, school_id: str) -> Period | None:
    """The oldest and newest dates of the school's daily statistics; None if it has none."""
    rows = store.query(
        f"SELECT min(date) AS oldest, max(date) AS newest, count() AS n FROM {_DAILY} "
        "WHERE school_id = {school:String}",
        {"school": school_id},
    )
    if not rows or not rows[0]["n"]:
        return None
    return Period(
        date.fromisoformat(str(rows[0]["oldest"])), date.fromisoformat(str(rows[0]["newest"]))
    )


def school_classes(store: ClickHouse, school_id: str, period: Period) -> list[ClassCount]:
    """The school's classes with daily statistics in the period, with their students."""
    rows = store.query(
        f"SELECT class_id, uniqExact(student_id) AS students FROM {_DAILY} FINAL "
        "WHERE school_id = {school:String} AND class_id != '' "
        "AND date BETWEEN {start:Date} AND {end:Date} GROUP BY class_id ORDER BY class_id",
        {"school": school_id, "start": period.start, "end": period.end},
    )
    return msgspec.convert(rows, list[ClassCount])


def class_students(store: ClickHouse, school_id: str, class_id: str, period: Period) -> list[str]:
    """The students with daily statistics in the class (of this school) in the period."""
    rows = store.query(
        f"SELECT DISTINCT student_id FROM {_DAILY} FINAL "
        "WHERE school_id = {school:String} AND class_id = {class:String} "
        "AND date BETWEEN {start:Date} AND {end:Date} ORDER BY student_id",
        {"school": school_id, "class": class_id, "start": period.start, "end": period.end},
    )
    return [str(row["student_id"]) for row in rows]


# -- access --------------------------------------------------------------------


def class_schools(store: ClickHouse, class_id: str) -> set[str]:
    """Every school a class id appears in, in the daily or the minute statistics."""
    rows = store.query(
        f"SELECT DISTINCT school_id FROM ("
        f"SELECT school_id FROM {_DAILY} FINAL WHERE class_id = {{class:String}} "
        f"UNION ALL SELECT school_id FROM {_CLASS_MINUTES} FINAL WHERE class_id = {{class:String}})",
        {"class": class_id},
    )
    return {str(row["school_id"]) for row in rows}


def scope_schools(store: ClickHouse, scope: Scope, scope_id: str, period: Period) -> set[str]:
    """Every school named by the rows a report of the scope reads in the period."""
    column = _column(scope)
    rows = store.query(
        f"SELECT DISTINCT school_id FROM ("
        f"SELECT school_id FROM {_DAILY} FINAL WHERE {column} = {{id:String}} "
        "AND date BETWEEN {start:Date} AND {end:Date} "
        f"UNION ALL SELECT school_id FROM {_HOMEWORK} FINAL WHERE {column} = {{id:String}} "
        "AND date BETWEEN {start:Date} AND {end:Date} "
        f"UNION ALL SELECT school_id FROM {_METRICS} FINAL WHERE {column} = {{id:String}} "
        "AND period_start BETWEEN {start:Date} AND {end:Date})",
        {"id": scope_id, "start": period.start, "end": period.end},
    )
    return {str(row["school_id"]) for row in rows}


# -- the live board ------------------------------------------------------------


def _board_parameters(school_id: str, class_id: str, **instants: int) -> dict[str, Any]:
    return {"school": school_id, "class": class_id, **instants}


def class_windows(
    store: ClickHouse, school_id: str, class_id: str, start: int, end: int
) -> list[ClassWindow]:
    """The class's windows starting in [start, end)."""
    rows = store.query(
        "SELECT toUnixTimestamp(window_start) AS start, window_seconds AS seconds, "
        "active_students, events, strokes, stroke_order_count, stroke_order_avg "
        f"FROM {_CLASS_MINUTES} FINAL "
        "WHERE class_id = {class:String} AND school_id = {school:String} "
        f"AND window_start >= {_AT % 'start'} AND window_start < {_AT % 'end'} "
        "ORDER BY window_start",
        _board_parameters(school_id, class_id, start=start, end=end),
    )
    return msgspec.convert(rows, list[ClassWindow])


def student_days(
    store: ClickHouse, school_id: str, class_id: str, start: int, end: int, recent: int
) -> list[StudentDay]:
    """Each student's windows in the class starting in [start, end), summed; `recent`
    sums only the windows ending after that instant."""
    rows = store.query(
        "SELECT student_id, toUnixTimestamp(max(window_start)) AS last_window, "
        "any(window_seconds) AS window_length, sum(events) AS events_today, "
        "sum(stroke_order_count) AS checks_today, "
        "sum(stroke_order_avg * stroke_order_count) / nullIf(checks_today, 0) "
        "AS accuracy_today, "
        f"sumIf(events, window_start + window_seconds > {_AT % 'recent'}) AS recent_events, "
        f"sumIf(strokes, window_start + window_seconds > {_AT % 'recent'}) AS recent_strokes "
        f"FROM {_STUDENT_MINUTES} FINAL "
        "WHERE class_id = {class:String} AND school_id = {school:String} "
        f"AND window_start >= {_AT % 'start'} AND window_start < {_AT % 'end'} "
        "GROUP BY student_id ORDER BY student_id",
        _board_parameters(school_id, class_id, start=start, end=end, recent=recent),
    )
    return msgspec.convert(rows, list[StudentDay])


def recent_practice(
    store: ClickHouse, school_id: str, class_id: str, recent: int, end: int
) -> list[CharacterPractice]:
    """The characters the class's students practised in windows ending after `recent`
    (and starting before `end`)."""
    rows = store.query(
        "SELECT student_id, characters, character_attempts, character_scores "
        f"FROM {_STUDENT_MINUTES} FINAL "
        "WHERE class_id = {class:String} AND school_id = {school:String} "
        f"AND window_start + window_seconds > {_AT % 'recent'} "
        f"AND window_start < {_AT % 'end'} AND notEmpty(characters) "
        "ORDER BY student_id, window_start",
        _board_parameters(school_id, class_id, recent=recent, end=end),
    )
    return msgspec.convert(rows, list[CharacterPractice])
