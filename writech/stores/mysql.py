"""The production `error_record` store: MySQL or MariaDB over PyMySQL (SPEC §4, §7).

The URL is `mysql://user:password@host:port/database` (the password may
come from `WRITECH_MYSQL_PASSWORD` instead); the database must exist (the
table is created if missing; a user without the CREATE grant works once
`writech init-db` has made it; an older schema is refused until `writech
migrate` upgrades it: `writech.stores.migrations`). Optional URL
parameters `ssl_ca`, `ssl_cert`, `ssl_key` turn on TLS.

Each write is one transaction of multi-row inserts (PyMySQL's
`executemany`), all parameterised. A record already stored (same
`record_key`) is left as it is, which makes writes idempotent. That is
`ON DUPLICATE KEY UPDATE record_key = record_key` rather than `INSERT
IGNORE`: IGNORE would also turn real errors (a value too long, a bad
date) into warnings and store mangled rows. For the same reason every
session runs in strict SQL mode, and at start-up the table must store its
text as utf8mb4: a table left in latin1 on a lenient server stored CJK and
emoji as `?` without an error, so it is refused with what to do instead.

A lost connection (server restart, network failure, a killed session) is
re-established and the whole batch retried within `WRITECH_STORE_DEADLINE`;
every network call is bounded by `WRITECH_STORE_TIMEOUT`; anything else
(bad credentials, a missing database) fails at once. Reads go the same way.

Opened `read_only` (the web app), every session is READ ONLY: the server
refuses any write, and nothing is checked or created at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from writech.rows import TableRows
from writech.schema import ERROR_RECORD_MYSQL_LONG_TEXT, error_record_mysql_ddl
from writech.settings import Settings, SettingsError
from writech.stores.base import StoreError
from writech.stores.migrations import SqlDialect, SqlSchema, migrate_schema, open_schema
from writech.stores.retry import Retrying
from writech.stores.sql import (
    ErrorRecordReads,
    day_of,
    delete_parameters,
    delete_statement,
    insert_statement,
    instant_of,
    parameters,
)
from writech.stores.urls import ServerUrl, parse_server_url

T = TypeVar("T")

_INSERT: Final = insert_statement(
    "INSERT", "%s", " ON DUPLICATE KEY UPDATE record_key = record_key"
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
# What an insert of one error record needs beyond its message's text: every
# text of a record comes from one message, and escaping only doubles characters
# that JSON already wrote as two (a quote, a backslash, a newline).
_STATEMENT_ROOM: Final = 64 * 1024
# Each names a file (a CA, a certificate, a key), checked as the URL is read.
_TLS_PARAMETERS: Final = frozenset({"ssl_ca", "ssl_cert", "ssl_key"})
_SHAPE: Final = "mysql://user:password@host:port/database"
# Strict mode on top of whatever the server has: a value that does not fit is
# an error, never a silently mangled row.
_STRICT: Final = "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')"
_READ_ONLY: Final = "SET SESSION TRANSACTION READ ONLY"
_TEXT_CHARSETS: Final = """\
SELECT column_name, character_set_name FROM information_schema.columns
WHERE table_schema = DATABASE() AND table_name = 'error_record'
AND character_set_name IS NOT NULL AND column_name != 'record_key'"""


class MysqlError(StoreError):
    """A MySQL request failed for good."""


# The DDL runs only when a table is missing: once `writech init-db` has run,
# the dataflow's user needs no CREATE grant.
MYSQL: Final = SqlDialect(
    name="MySQL",
    placeholder="%s",
    table_exists=(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %s"
    ),
    versions_ddl=(
        "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL PRIMARY KEY, "
        "applied_at DATETIME(6) NOT NULL, summary TEXT NOT NULL) "
        "ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
    ),
    record_version=(
        "INSERT INTO schema_version (version, applied_at, summary) VALUES (%s, %s, %s) "
        "ON DUPLICATE KEY UPDATE version = version"
    ),
    error_record_ddl=error_record_mysql_ddl,
    indexes=(),
    # one atomic RENAME; the replaced table is dropped after it (or, when a
    # migration stopped in between, by the next one)
    replace_error_record=lambda rebuilt: (
        "DROP TABLE IF EXISTS error_record__replaced",
        f"RENAME TABLE error_record TO error_record__replaced, {rebuilt} TO error_record",
        "DROP TABLE error_record__replaced",
    ),
    unbound_text="ALTER TABLE error_record "
    + ", ".join(f"MODIFY {column} LONGTEXT NOT NULL" for column in ERROR_RECORD_MYSQL_LONG_TEXT),
)


def mysql_url(settings: Settings) -> ServerUrl:
    """The configured MySQL URL, checked (`SettingsError` names the variable)."""
    url = parse_server_url(
        settings.mysql_url,
        "WRITECH_MYSQL_URL",
        _SHAPE,
        {"mysql": 3306},
        settings.mysql_password,
        _TLS_PARAMETERS,
        _TLS_PARAMETERS,
    )
    if not url.path:
        raise SettingsError(f"WRITECH_MYSQL_URL: expected {_SHAPE}, got {url.shown!r}")
    return url


def connect_arguments(settings: Settings, *, read_only: bool = False) -> dict[str, Any]:
    """PyMySQL's connection arguments for the configured server (TLS by the URL's parameters).

    Sessions write in strict mode, or with `read_only` cannot write at all.
    """
    url = mysql_url(settings)
    timeout = max(1, round(settings.store_timeout))
    return {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.path,
        "charset": "utf8mb4",
        "autocommit": False,
        "init_command": _READ_ONLY if read_only else _STRICT,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "write_timeout": timeout,
        **url.parameters,
    }


def is_transient(error: Exception) -> bool:
    """Whether the request may succeed on a new connection."""
    if isinstance(error, pymysql.InterfaceError):  # the connection is already closed
        return True
    code = error.args[0] if error.args else None
    return isinstance(error, pymysql.OperationalError) and code in TRANSIENT_CODES


class MysqlErrorStore(ErrorRecordReads):
    """Writes `error_record` rows to MySQL, and reads them."""

    placeholder = MYSQL.placeholder

    def __init__(
        self, settings: Settings, *, upgrade: bool = False, read_only: bool = False
    ) -> None:
        """Connect, and check the database's schema: a fresh one gets the table.

        An older schema is refused (`SchemaError`), or with `upgrade` (`writech
        migrate`) brought to this release's; `upgraded` says what was done.
        `read_only`: sessions that cannot write, and no check (the reads need none).
        """
        self._connect_arguments = connect_arguments(settings, read_only=read_only)
        self._retry = Retrying.for_url(
            "MySQL", mysql_url(settings), settings, MysqlError, pymysql.MySQLError, is_transient
        )
        self.where = self._retry.target
        self.upgraded: list[str] = []
        self._connection: Connection[Cursor] | None = None
        if read_only:
            return
        wrong = self._retrying("check character sets", _columns_not_utf8mb4)
        if wrong:
            columns = ", ".join(f"{name} ({charset})" for name, charset in wrong)
            raise MysqlError(
                f"{self._retry.target}: error_record stores text in a character set that cannot "
                f"hold every character of Chinese names or emoji: {columns}. Convert it "
                "(ALTER TABLE error_record CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) "
                "or drop it and let `writech init-db` create it; nothing was written"
            )
        packet = self._retrying("read max_allowed_packet", _max_allowed_packet)
        if packet < settings.max_message_bytes + _STATEMENT_ROOM:
            raise SettingsError(
                f"WRITECH_MAX_MESSAGE_BYTES is {settings.max_message_bytes:,}, but "
                f"{self._retry.target} takes statements of at most {packet:,} bytes "
                "(max_allowed_packet): the error records of a message that large could not be "
                "stored. Raise the server's max_allowed_packet or lower the limit; nothing was "
                "written"
            )
        if upgrade:
            self.upgraded = self._retrying(
                "migrate", lambda cursor: migrate_schema(SqlSchema(cursor, MYSQL, self.where))
            )
        else:
            self._retrying(
                "check the schema",
                lambda cursor: open_schema(
                    SqlSchema(cursor, MYSQL, self.where), upgrade_older=False
                ),
            )

    def insert(self, rows: TableRows) -> None:
        if not len(rows):
            return
        values = parameters(rows, day_of, lambda us: instant_of(us).replace(tzinfo=None))
        self._retrying(
            f"insert of {len(values)} error records",
            lambda cursor: cursor.executemany(_INSERT, values),
        )

    def delete_students(self, student_ids: Sequence[str]) -> int:
        """Delete every error record of these students, in one transaction; the records deleted."""
        statement, students = delete_statement("%s"), delete_parameters(student_ids)
        return self._retrying(
            "delete of error records", lambda cursor: cursor.executemany(statement, students) or 0
        )

    def select(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            cursor.execute(sql, tuple(parameters))
            return list(cursor.fetchall())

        return self._retrying("read of error records", read)

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

        return self._retry.run(what, transaction, self._abandon_connection)

    def _abandon_connection(self) -> None:
        """Drop the connection (the server rolls back what it had not committed)."""
        if self._connection is not None and self._connection.open:
            self._connection.close()  # swallows a failing goodbye on a dead socket
        self._connection = None


def _max_allowed_packet(cursor: Cursor) -> int:
    cursor.execute("SELECT @@SESSION.max_allowed_packet")
    return int(cursor.fetchall()[0][0])


def _columns_not_utf8mb4(cursor: Cursor) -> list[tuple[str, str]]:
    cursor.execute(_TEXT_CHARSETS)
    return [
        (str(name), str(charset)) for name, charset in cursor.fetchall() if charset != "utf8mb4"
    ]
