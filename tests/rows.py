"""Write-path row tuples (days and microseconds) as the read Structs a store gives back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from writech.schema import (
    ANALYTICS_METRICS,
    DEAD_LETTER,
    ERROR_RECORD,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    DailyStats,
    DeadLetter,
    ErrorRecord,
    HomeworkResult,
    Metric,
    Table,
)

S = TypeVar("S", bound=msgspec.Struct)


def _value(value: Any, clickhouse_type: str) -> Any:
    if clickhouse_type == "Date":
        return date(1970, 1, 1) + timedelta(days=value)
    if clickhouse_type.startswith("DateTime64"):
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
    return value


def as_read(table: Table, rows: Iterable[tuple[Any, ...]], kind: type[S]) -> list[S]:
    assert table.row is kind
    return [
        kind(*(_value(value, type_) for value, type_ in zip(row, table.column_types, strict=True)))
        for row in rows
    ]


def stats(rows: Iterable[tuple[Any, ...]]) -> list[DailyStats]:
    return as_read(STUDENT_DAILY_STATS, rows, DailyStats)


def metrics(rows: Iterable[tuple[Any, ...]]) -> list[Metric]:
    return as_read(ANALYTICS_METRICS, rows, Metric)


def homework(rows: Iterable[tuple[Any, ...]]) -> list[HomeworkResult]:
    return as_read(HOMEWORK_RESULT, rows, HomeworkResult)


def errors(rows: Iterable[tuple[Any, ...]]) -> list[ErrorRecord]:
    return as_read(ERROR_RECORD, rows, ErrorRecord)


def dead_letters(rows: Iterable[tuple[Any, ...]]) -> list[DeadLetter]:
    return as_read(DEAD_LETTER, rows, DeadLetter)
