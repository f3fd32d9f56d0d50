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
from writech.reports.rows import QuestionError, Scope
from writech.settings import Settings

# One row per wrong question (a question listed twice in one submission
# comes once, with `listed` = 2); errors without a question id stay apart.
_QUESTION_ERRORS: Final = """\
SELECT event_id, student_id, homework_id, subject, question_id, knowledge_point, error_type,
       MIN(position), COUNT(*)
FROM error_record
WHERE {column} = {p} AND date BETWEEN {p} AND {p}
GROUP BY event_id, student_id, homework_id, subject, question_id, knowledge_point, error_type,
         CASE WHEN question_id = '' THEN position ELSE -1 END
ORDER BY event_id, question_id, knowledge_point, error_type, MIN(position)"""


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

    def question_errors(self, scope: Scope, scope_id: str, period: Period) -> list[QuestionError]:
        """The scope's wrong questions in the period, per submission, knowledge point and type."""
        return [
            QuestionError(*row) for row in self._fetch(_QUESTION_ERRORS, scope, scope_id, period)
        ]

    def close(self) -> None:
        self._connection.close()


def open_wrong_answers(settings: Settings) -> WrongAnswers:
    """The configured `error_record` store; the caller closes it."""
    if settings.mysql_url:
        return WrongAnswers(_mysql_connection(settings), "%s")
    from writech.stores.sqlite import connect

    return WrongAnswers(connect(settings.sqlite_path), "?")


def _mysql_connection(settings: Settings) -> _Connection:
    """A PyMySQL connection to the configured MySQL store."""
    import pymysql

    from writech.stores.mysql import connect_arguments

    connection: _Connection = pymysql.connect(**connect_arguments(settings))
    return connection
