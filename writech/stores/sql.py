"""`error_record` in a SQL database (SQLite embedded, MySQL in production): what both share.

Rows arrive as columns (`TableRows`) and leave as parameter tuples of one
`executemany`, in one transaction per batch. The temporal columns arrive
as integers (days since 1970-01-01, microseconds) and are stored as each
database keeps them: ISO 8601 text in SQLite, DATE and DATETIME(6) in
MySQL. Every value is a bound parameter.

The reads (`ErrorRecordReads`) are one implementation for both: the SQL
is the same, only the placeholder differs (`?` for sqlite3, `%s` for
PyMySQL), and dates are compared as ISO strings, which both order
correctly (SQLite holds them as text, MySQL converts them to DATE). The
only text put into SQL is a column name from the fixed `Scope` set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Final, get_args

from writech.reports.model import Period
from writech.reports.rows import QuestionError, Scope
from writech.rows import TableRows
from writech.schema import ERROR_RECORD

EPOCH_DATE: Final = date(1970, 1, 1)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS: Final = ERROR_RECORD.column_names
_DATE: Final = COLUMNS.index("date")
_CREATED_AT: Final = COLUMNS.index("created_at")


def _is(column: str, placeholder: str) -> str:
    """`column` equal to a parameter (given twice), exactly.

    MySQL's collations, `utf8mb4_bin` too, pad with spaces: `student_id =
    's1'` also matches "s1 ", another student, whose records a report then
    showed and `writech forget` deleted. Equal lengths as well make it exact
    (LENGTH counts bytes in MySQL, characters in SQLite, the same on both
    sides); SQLite compares exactly anyway. The equality keeps the index.
    """
    return f"{column} = {placeholder} AND LENGTH({column}) = LENGTH({placeholder})"


# One row per wrong question (a question listed twice in one submission
# comes once, with `listed` = 2); errors without a question id stay apart.
# Each text is grouped with its length, because MySQL's collations pad with
# spaces (see `_is`): "kp" and "kp " were one group there, and a question id
# " " equal to ''. Equal under padding and of equal length is identical
# (SQLite's LENGTH stops at a NUL, so it never decides alone).
_TEXTS: Final = (
    "event_id", "student_id", "homework_id", "subject", "question_id", "knowledge_point",
    "error_type",
)  # fmt: skip
_QUESTION_ERRORS: Final = f"""\
SELECT {", ".join(_TEXTS)}, MIN(position), COUNT(*)
FROM error_record
WHERE {{scope}} AND date BETWEEN {{p}} AND {{p}}
GROUP BY {", ".join(f"{text}, LENGTH({text})" for text in _TEXTS)},
         CASE WHEN question_id = '' AND LENGTH(question_id) = 0 THEN position ELSE -1 END"""


def _question_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """By submission, question, knowledge point, error type, first position, then the rest.

    Sorted here, not in SQL: Python compares strings by code point, which is
    SQLite's (and UTF-8's byte) order, where MySQL's padding puts "a\\t"
    before "a"; and the tail makes the order total (a class's students may
    share an event id).
    """
    event_id, student_id, homework_id, subject, question_id, point, error_type, first = row[:8]
    return (event_id, question_id, point, error_type, first, student_id, homework_id, subject)


def _checked(scope: Scope) -> Scope:
    if scope not in get_args(Scope):
        raise ValueError(f"not a report scope: {scope!r}")
    return scope


def _scope_parameters(scope_id: str, period: Period) -> tuple[str, str, str, str]:
    return (scope_id, scope_id, period.start.isoformat(), period.end.isoformat())


def day_of(days: int) -> date:
    return EPOCH_DATE + timedelta(days=days)


def instant_of(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def parameters(
    rows: TableRows, day: Callable[[int], Any], instant: Callable[[int], Any]
) -> list[tuple[Any, ...]]:
    """Each row as insert parameters, its date and time converted by `day` and `instant`.

    Column by column, each distinct value converted once: a batch holds a
    few dates, and the errors of one submission share its time.
    """
    columns = list(rows.columns)
    columns[_DATE] = _converted(columns[_DATE], day)
    columns[_CREATED_AT] = _converted(columns[_CREATED_AT], instant)
    return list(zip(*columns, strict=True))


def _converted(values: list[int], convert: Callable[[int], Any]) -> list[Any]:
    distinct = {value: convert(value) for value in set(values)}
    return [distinct[value] for value in values]


def delete_statement(placeholder: str) -> str:
    """Delete the error records of one student (the id given twice: `delete_parameters`)."""
    return f"DELETE FROM error_record WHERE {_is('student_id', placeholder)}"


def delete_parameters(student_ids: Sequence[str]) -> list[tuple[str, str]]:
    return [(student_id, student_id) for student_id in student_ids]


def insert_statement(verb: str, placeholder: str, suffix: str = "") -> str:
    return (
        f"{verb} INTO error_record ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(placeholder for _ in COLUMNS)}){suffix}"
    )


class ErrorRecordReads(ABC):
    """The reads of `error_record`, the same SQL for both databases.

    A store gives its `placeholder` style and `select`, which runs one
    parameterised query and returns its rows.
    """

    placeholder: ClassVar[str]

    @abstractmethod
    def select(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    def question_errors(self, scope: Scope, scope_id: str, period: Period) -> list[QuestionError]:
        """The scope's wrong questions in the period, per submission, knowledge point and type."""
        p = self.placeholder
        sql = _QUESTION_ERRORS.format(scope=_is(_checked(scope), p), p=p)
        rows = self.select(sql, _scope_parameters(scope_id, period))
        return [QuestionError(*row) for row in sorted(rows, key=_question_order)]

    def scope_schools(self, scope: Scope, scope_id: str, period: Period) -> set[str]:
        """Every school the scope's error records in the period name (to check who may
        read them: a report reads them by the scope's id alone)."""
        p = self.placeholder
        # with its length, as `_TEXTS`: "s1" and "s1 " are two schools, one under padding
        sql = (
            "SELECT DISTINCT school_id, LENGTH(school_id) FROM error_record "
            f"WHERE {_is(_checked(scope), p)} AND date BETWEEN {p} AND {p}"
        )
        return {str(row[0]) for row in self.select(sql, _scope_parameters(scope_id, period))}
