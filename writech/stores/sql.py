"""`error_record` in a SQL database (SQLite embedded, MySQL in production): what both share.

Rows arrive as columns (`TableRows`) and leave as parameter tuples of one
`executemany`, in one transaction per batch. The temporal columns arrive
as integers (days since 1970-01-01, microseconds) and are stored as each
database keeps them: ISO 8601 text in SQLite, DATE and DATETIME(6) in
MySQL. Every value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from writech.rows import TableRows
from writech.schema import ERROR_RECORD

EPOCH_DATE: Final = date(1970, 1, 1)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS: Final = ERROR_RECORD.column_names
_DATE: Final = COLUMNS.index("date")
_CREATED_AT: Final = COLUMNS.index("created_at")


def day_of(days: int) -> date:
    return EPOCH_DATE + timedelta(days=days)


def instant_of(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def parameters(
    rows: TableRows, day: Callable[[int], Any], instant: Callable[[int], Any]
) -> Iterator[tuple[Any, ...]]:
    """Each row as insert parameters, its date and time converted by `day` and `instant`."""
    for row in rows.rows():
        values = list(row)
        values[_DATE] = day(row[_DATE])
        values[_CREATED_AT] = instant(row[_CREATED_AT])
        yield tuple(values)


def delete_statement(placeholder: str, students: int) -> str:
    """Delete the error records of `students` students (one placeholder each)."""
    return (
        "DELETE FROM error_record WHERE student_id IN "
        f"({', '.join(placeholder for _ in range(students))})"
    )


def insert_statement(verb: str, placeholder: str, suffix: str = "") -> str:
    return (
        f"{verb} INTO error_record ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(placeholder for _ in COLUMNS)}){suffix}"
    )
