"""A ClickHouse server over HTTP (clickhouse-connect): the production `ClickHouse` store (SPEC §7).

The URL is `http(s)://user:password@host:port[/writech]`; the database is
always `writech.schema.DATABASE`, created with the tables by
`create_schema` (the same DDL the embedded chDB store uses). With https,
URL parameters `ca_cert` (a private CA's certificate file), `client_cert`
and `client_cert_key` (mutual TLS) and `verify=false` tune TLS.

Inserts go in Native format with an `insert_deduplication_token` derived
from the batch's content: when an insert reaches the server but its answer
is lost, the retry is dropped server-side instead of duplicating rows (the
tables keep a `non_replicated_deduplication_window`). Transient failures
(connection refused or reset, timeouts, server errors) are retried a
bounded number of times with exponential backoff; permanent ones (bad
credentials, an unknown database or table, a malformed query) fail at once.
No message ever carries the password.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import clickhouse_connect
import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import (
    DataError,
    Error,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
)
from msgspec.structs import astuple

from writech.schema import CLICKHOUSE_TABLES, DATABASE, Table
from writech.settings import SettingsError, without_password
from writech.sinks import create_schema
from writech.sinks.retry import Retrying

T = TypeVar("T")

# Server error codes that no retry can fix: credentials, access, names, SQL.
PERMANENT_CODES: Final = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        16,  # NO_SUCH_COLUMN_IN_TABLE
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        36,  # BAD_ARGUMENTS
        43,  # ILLEGAL_TYPE_OF_ARGUMENT
        47,  # UNKNOWN_IDENTIFIER
        53,  # TYPE_MISMATCH
        60,  # UNKNOWN_TABLE
        62,  # SYNTAX_ERROR
        81,  # UNKNOWN_DATABASE
        115,  # UNKNOWN_SETTING
        164,  # READONLY
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        194,  # REQUIRED_PASSWORD
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)
# Errors raised by the client itself (bad arguments, unconvertible data).
_CLIENT_ERRORS: Final = (ProgrammingError, DataError, NotSupportedError, InterfaceError)
_DEFAULT_PORTS: Final = {"http": 8123, "https": 8443}
_TLS_PARAMETERS: Final = frozenset({"ca_cert", "client_cert", "client_cert_key", "verify"})
# 64-bit integers as JSON numbers, as the embedded store returns them.
_JSON_SETTINGS: Final = {"output_format_json_quote_64bit_integers": 0}


class ClickHouseError(RuntimeError):
    """A request to the ClickHouse server failed for good (the message names the server, never the password)."""


class _JsonResult(msgspec.Struct):
    data: list[dict[str, Any]] = []


_json_result = msgspec.json.Decoder(_JsonResult)


def open_store(url: str, attempts: int = 6, first_backoff: float = 0.5) -> ClickHouseServerStore:
    """A store on the server at `url`, connected, with the schema applied; `close()` it when done.

    The DDL runs only when a table is missing, so that once `writech
    init-db` has created them the dataflow's user needs no CREATE grant.
    """
    store = ClickHouseServerStore(url, attempts, first_backoff)
    try:
        if store.missing_tables():
            create_schema(store)
    except BaseException:
        store.close()
        raise
    return store


def is_transient(error: Error) -> bool:
    """Whether a failed request may succeed when tried again."""
    return not isinstance(error, _CLIENT_ERRORS) and error.code not in PERMANENT_CODES


class ClickHouseServerStore:
    """A clickhouse-connect client with bounded retries; implements `writech.sinks.ClickHouse`.

    A request is tried up to `attempts` times, waiting `first_backoff`
    seconds after the first failure and twice as long after each next one
    (at most 30 s).
    """

    def __init__(self, url: str, attempts: int = 6, first_backoff: float = 0.5) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise SettingsError(
                "WRITECH_CLICKHOUSE_URL: expected http(s)://user:password@host:port[/database], "
                f"got {without_password(url)!r}"
            )
        if parts.path.strip("/") not in ("", DATABASE):
            raise SettingsError(
                f"WRITECH_CLICKHOUSE_URL: the tables live in database {DATABASE!r}; "
                f"the URL names {parts.path.strip('/')!r}"
            )
        tls: dict[str, Any] = dict(parse_qsl(parts.query))
        unknown = sorted(set(tls) - _TLS_PARAMETERS)
        if unknown:
            raise SettingsError(
                f"WRITECH_CLICKHOUSE_URL: unknown parameter(s) {', '.join(unknown)}"
            )
        if "verify" in tls:
            tls["verify"] = str(tls["verify"]).lower() not in ("0", "false", "no")
        password = unquote(parts.password or "")
        self._retry = Retrying(
            target=f"ClickHouse at {without_password(url)}",
            error=ClickHouseError,
            redact=lambda text: text.replace(password, "***") if password else text,
            attempts=attempts,
            first_backoff=first_backoff,
        )
        self._client: Client = self._retrying(
            "connect",
            lambda: clickhouse_connect.get_client(
                interface=parts.scheme,
                host=parts.hostname,
                port=parts.port or _DEFAULT_PORTS[parts.scheme],
                username=unquote(parts.username or "default"),
                password=password,
                # No server session: every request stands alone, so a retry
                # may land on any replica behind a load balancer.
                autogenerate_session_id=False,
                **tls,
            ),
        )

    def command(self, sql: str) -> None:
        self._retrying("command", lambda: self._client.command(sql))

    def insert(self, table: Table, rows: Sequence[Any]) -> None:
        if not rows:
            return
        token = insert_token(table, rows)
        data = [astuple(row) for row in rows]
        self._retrying(
            f"insert into {table.name}",
            lambda: self._client.insert(
                table.name,
                data,
                column_names=table.column_names,
                column_type_names=[type_ for _, type_ in table.columns],
                database=DATABASE,
                settings={"insert_deduplication_token": token},
            ),
        )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raw = self._retrying(
            "query",
            lambda: self._client.raw_query(
                sql, parameters=params, settings=_JSON_SETTINGS, fmt="JSON"
            ),
        )
        return _json_result.decode(raw).data if raw else []

    def missing_tables(self) -> list[str]:
        """Names of the schema's tables the server does not have (or this user cannot see)."""
        present = {
            row["name"]
            for row in self.query(
                "SELECT name FROM system.tables WHERE database = {database:String}",
                {"database": DATABASE},
            )
        }
        return [table.name for table in CLICKHOUSE_TABLES if table.name not in present]

    def close(self) -> None:
        self._client.close()

    def _retrying(self, what: str, request: Callable[[], T]) -> T:
        return self._retry.run(what, request, Error, _is_transient_error)


def _is_transient_error(error: Exception) -> bool:
    return isinstance(error, Error) and is_transient(error)


def insert_token(table: Table, rows: Sequence[Any]) -> str:
    """The deduplication token of an insert: a hash of the table and the rows' content."""
    digest = hashlib.blake2b(msgspec.msgpack.encode(rows), digest_size=16)
    return f"{table.name}-{digest.hexdigest()}"
