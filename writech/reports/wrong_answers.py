"""The reports' reads from `error_record`: SQLite (embedded) or MySQL (PyMySQL).

Both speak the same SQL here; only the placeholder differs (`?` for
sqlite3, `%s` for PyMySQL). Every value is a bound parameter; the only
text put into SQL is a column name from the fixed `Scope` set. Dates are
compared as ISO strings, which both stores order correctly (SQLite holds
them as text, MySQL converts them to DATE).
"""

from __future__ import annotations

from typing import Any, Final, Protocol, get_args

from writech.reports.model import Period
from writech.reports.rows import ErrorTypeCount, KnowledgePointCount, Scope
from writech.settings import Settings

_KNOWLEDGE_POINTS: Final = """\
SELECT student_id, subject, knowledge_point, COUNT(*), COUNT(DISTINCT event_id)
FROM error_record
WHERE {column} = {p} AND date BETWEEN {p} AND {p}
GROUP BY student_id, subject, knowledge_point"""

_ERROR_TYPES: Final = """\
SELECT subject, knowledge_point, error_type, COUNT(*)
FROM error_record
WHERE {column} = {p} AND date BETWEEN {p} AND {p}
GROUP BY subject, knowledge_point, error_type"""


class _Cursor(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def fetchall(self) -> Any: ...


class _Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


class WrongAnswers:
    """Wrong-answer read-outs over one `error_record` connection."""

    def __init__(self, connection: _Connection, placeholder: str) -> None:
        self._connection = connection
        self._placeholder = placeholder

    def _fetch(self, template: str, scope: Scope, scope_id: str, period: Period) -> list[Any]:
        if scope not in get_args(Scope):
            raise ValueError(f"not a report scope: {scope!r}")
        sql = template.format(column=scope, p=self._placeholder)
        cursor: _Cursor = self._connection.cursor()
        cursor.execute(sql, (scope_id, period.start.isoformat(), period.end.isoformat()))
        return list(cursor.fetchall())

    def knowledge_points(
        self, scope: Scope, scope_id: str, period: Period
    ) -> list[KnowledgePointCount]:
        """Per student and knowledge point: wrong answers, and graded homework holding them."""
        return [
            KnowledgePointCount(*row)
            for row in self._fetch(_KNOWLEDGE_POINTS, scope, scope_id, period)
        ]

    def error_types(self, scope: Scope, scope_id: str, period: Period) -> list[ErrorTypeCount]:
        """Wrong answers per knowledge point and error type, over the whole scope."""
        return [ErrorTypeCount(*row) for row in self._fetch(_ERROR_TYPES, scope, scope_id, period)]

    def close(self) -> None:
        self._connection.close()


def open_wrong_answers(settings: Settings) -> WrongAnswers:
    """The configured `error_record` store; the caller closes it."""
    if settings.mysql_url:
        return WrongAnswers(_mysql_connection(settings.mysql_url), "%s")
    from writech.sinks.sqlite import connect

    return WrongAnswers(connect(settings.sqlite_path), "?")


def _mysql_connection(url: str) -> _Connection:
    """A PyMySQL connection from the URL the MySQL sink takes."""
    import pymysql

    from writech.sinks.mysql import connect_arguments

    connection: _Connection = pymysql.connect(**connect_arguments(url))
    return connection
