"""The production `error_record` store: MySQL or MariaDB over PyMySQL (SPEC §4, §7).

The URL is `mysql://user:password@host:port/database`; the database must
exist (the table is created if missing, from `ERROR_RECORD_MYSQL_DDL`; a
user without the CREATE grant works once `writech init-db` has made it).
Optional URL parameters `ssl_ca`, `ssl_cert`, `ssl_key` turn on TLS.

Each `write` is one transaction of multi-row inserts (PyMySQL's
`executemany`), all parameterised. A record already stored (same
`record_key`) is left as it is, which makes writes idempotent. That is
`ON DUPLICATE KEY UPDATE record_key = record_key` rather than `INSERT
IGNORE`: IGNORE would also turn real errors (a value too long, a bad
date) into warnings and store mangled rows.

A lost connection (server restart, network failure, a killed session) is
re-established and the whole batch retried, a bounded number of times with
exponential backoff; anything else (bad credentials, a missing database)
fails at once. No message ever carries the password.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql
from msgspec.structs import astuple
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from writech.schema import ERROR_RECORD_COLUMNS, ERROR_RECORD_MYSQL_DDL, ErrorRecord
from writech.settings import SettingsError, without_password
from writech.sinks.retry import Retrying

T = TypeVar("T")

_INSERT: Final = (
    f"INSERT INTO error_record ({', '.join(ERROR_RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('%s' for _ in ERROR_RECORD_COLUMNS)}) "
    "ON DUPLICATE KEY UPDATE record_key = record_key"
)
# Errors after which a new connection (or a second try) may succeed.
TRANSIENT_CODES: Final = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN
        1205,  # ER_LOCK_WAIT_TIMEOUT
        1213,  # ER_LOCK_DEADLOCK
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        2003,  # CR_CONN_HOST_ERROR: cannot connect
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
        2055,  # CR_SERVER_LOST_EXTENDED
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL)
    }
)
_TLS_PARAMETERS: Final = ("ssl_ca", "ssl_cert", "ssl_key")


def _create_table_if_missing(cursor: Cursor) -> None:
    """The DDL only when needed: once `writech init-db` has run, no CREATE grant is needed."""
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'error_record'"
    )
    found = cursor.fetchone()
    if not found or not found[0]:
        cursor.execute(ERROR_RECORD_MYSQL_DDL)


def connect_arguments(url: str) -> dict[str, Any]:
    """PyMySQL's connection arguments for `mysql://user:password@host:port/database`
    (TLS by the optional parameters `ssl_ca`, `ssl_cert`, `ssl_key`)."""
    parts = urlsplit(url)
    database = unquote(parts.path.strip("/"))
    if parts.scheme != "mysql" or not parts.hostname or not database:
        raise SettingsError(
            "WRITECH_MYSQL_URL: expected mysql://user:password@host:port/database, "
            f"got {without_password(url)!r}"
        )
    options = dict(parse_qsl(parts.query))
    unknown = sorted(set(options) - set(_TLS_PARAMETERS))
    if unknown:
        raise SettingsError(f"WRITECH_MYSQL_URL: unknown parameter(s) {', '.join(unknown)}")
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": database,
        "charset": "utf8mb4",
        "autocommit": False,
        "connect_timeout": 10,
        "read_timeout": 300,
        "write_timeout": 300,
        **options,
    }


def _is_transient_error(error: Exception) -> bool:
    return isinstance(error, pymysql.MySQLError) and is_transient(error)


class MysqlError(RuntimeError):
    """A MySQL request failed for good (the message names the server, never the password)."""


def is_transient(error: pymysql.MySQLError) -> bool:
    """Whether the request may succeed on a new connection."""
    if isinstance(error, pymysql.InterfaceError):  # the connection is already closed
        return True
    code = error.args[0] if error.args else None
    return isinstance(error, pymysql.OperationalError) and code in TRANSIENT_CODES


class MysqlErrorWriter:
    """Writes `ErrorRecord`s to MySQL; implements `writech.sinks.Writer`.

    A request is tried up to `attempts` times, waiting `first_backoff`
    seconds after the first failure and twice as long after each next one
    (at most 30 s).
    """

    def __init__(self, url: str, attempts: int = 6, first_backoff: float = 0.5) -> None:
        self._connect_arguments = connect_arguments(url)
        password = self._connect_arguments["password"]
        self._retry = Retrying(
            target=f"MySQL at {without_password(url)}",
            error=MysqlError,
            redact=lambda text: text.replace(password, "***") if password else text,
            attempts=attempts,
            first_backoff=first_backoff,
        )
        self._connection: Connection[Cursor] | None = None
        self._retrying("create table", _create_table_if_missing)

    def write(self, rows: Sequence[ErrorRecord]) -> None:
        if not rows:
            return
        values = [astuple(row) for row in rows]
        self._retrying(
            f"insert of {len(values)} error records",
            lambda cursor: cursor.executemany(_INSERT, values),
        )

    def close(self) -> None:
        self._abandon_connection()

    def _retrying(self, what: str, request: Callable[[Cursor], T]) -> T:
        """Run `request` in one transaction, on a new connection after a transient failure."""

        def transaction() -> T:
            if self._connection is None:
                self._connection = pymysql.connect(**self._connect_arguments)
            with self._connection.cursor() as cursor:
                result = request(cursor)
            self._connection.commit()
            return result

        return self._retry.run(
            what, transaction, pymysql.MySQLError, _is_transient_error, self._abandon_connection
        )

    def _abandon_connection(self) -> None:
        """Drop the connection (the server rolls back what it had not committed)."""
        if self._connection is not None and self._connection.open:
            self._connection.close()  # swallows a failing goodbye on a dead socket
        self._connection = None
