"""A ClickHouse server over HTTP (clickhouse-connect): the production `ClickHouse` store (SPEC §7).

The URL is `http(s)://user:password@host:port[/writech]` (the password may
come from `WRITECH_CLICKHOUSE_PASSWORD` instead); the database is always
`writech.schema.DATABASE`, created with the tables by `create_schema`
(the same DDL the embedded chDB store uses) and versioned by
`writech.stores.migrations`. With https, URL parameters
`ca_cert` (a private CA's certificate file), `client_cert` and
`client_cert_key` (mutual TLS) and `verify=false` tune TLS.

Inserts go as Arrow with an `insert_deduplication_token` derived from the
batch's content: when an insert reaches the server but its answer is lost,
the retry is dropped server-side instead of duplicating rows (the tables
keep a `non_replicated_deduplication_window`). Every request is bounded by
`WRITECH_STORE_TIMEOUT` (connect, send, receive) and retried by
`writech.stores.retry.Retrying` within `WRITECH_STORE_DEADLINE`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

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

from writech.rows import TableRows
from writech.schema import DATABASE, Layout
from writech.settings import Settings, SettingsError
from writech.stores.arrow import to_arrow
from writech.stores.base import CLICKHOUSE_INSERT_SETTINGS, StoreError, layout_of
from writech.stores.migrations import ClickHouseSchema, open_schema
from writech.stores.retry import Retrying
from writech.stores.urls import parse_server_url

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
_TLS_FILES: Final = frozenset({"ca_cert", "client_cert", "client_cert_key"})
# 64-bit integers as JSON numbers, as the embedded store returns them.
_JSON_SETTINGS: Final = {"output_format_json_quote_64bit_integers": 0}


class ClickHouseError(StoreError):
    """A request to the ClickHouse server failed for good."""


class _JsonResult(msgspec.Struct):
    data: list[dict[str, Any]] = []


_json_result = msgspec.json.Decoder(_JsonResult)


def open_store(settings: Settings) -> ClickHouseServerStore:
    """A store on the configured server, connected, at this release's schema; `close()` it.

    A fresh server gets the tables; one holding an older schema version is
    refused (`SchemaError`: `writech migrate` upgrades it, never the
    dataflow). The DDL runs only when a table or view is missing, so that
    once `writech init-db` has created them the dataflow's user needs no
    CREATE grant.
    """
    store = ClickHouseServerStore(settings)
    try:
        open_schema(store.schema(layout_of(settings)), upgrade_older=False)
    except BaseException:
        store.close()
        raise
    return store


def is_transient(error: Exception) -> bool:
    """Whether a failed request may succeed when tried again."""
    return (
        isinstance(error, Error)
        and not isinstance(error, _CLIENT_ERRORS)
        and getattr(error, "code", None) not in PERMANENT_CODES
    )


class ClickHouseServerStore:
    """A clickhouse-connect client with bounded, retried requests; implements `ClickHouse`."""

    def __init__(self, settings: Settings) -> None:
        url = parse_server_url(
            settings.clickhouse_url,
            "WRITECH_CLICKHOUSE_URL",
            "http(s)://user:password@host:port[/database]",
            _DEFAULT_PORTS,
            settings.clickhouse_password,
            _TLS_PARAMETERS,
            _TLS_FILES,
            frozenset({"certifi"}),  # ca_cert: the certifi package's bundle
        )
        if url.path not in ("", DATABASE):
            raise SettingsError(
                f"WRITECH_CLICKHOUSE_URL: the tables live in database {DATABASE!r}; "
                f"the URL names {url.path!r}"
            )
        tls: dict[str, Any] = dict(url.parameters)
        if "verify" in tls:
            tls["verify"] = str(tls["verify"]).lower() not in ("0", "false", "no")
        self._retry = Retrying.for_url(
            "ClickHouse", url, settings, ClickHouseError, Error, is_transient
        )
        timeout = max(1, round(settings.store_timeout))
        self._client: Client = self._retry.run(
            "connect",
            lambda: clickhouse_connect.get_client(
                interface=url.scheme,
                host=url.host,
                port=url.port,
                username=url.username or "default",
                password=url.password,
                connect_timeout=timeout,
                send_receive_timeout=timeout,
                # No server session: every request stands alone, so a retry
                # may land on any replica behind a load balancer.
                autogenerate_session_id=False,
                **tls,
            ),
        )

    def command(self, sql: str) -> None:
        self._retry.run("command", lambda: self._client.command(sql))

    def insert(self, rows: TableRows) -> None:
        if not len(rows):
            return
        arrow = to_arrow(rows)
        settings = {**CLICKHOUSE_INSERT_SETTINGS, "insert_deduplication_token": insert_token(rows)}
        # acknowledged by the server, or raised: a server reports a full disk
        # or a lost part as an error (a retry deduplicated by the token
        # reports 0 rows written, so the count is not compared here)
        self._retry.run(
            f"insert into {rows.table.name}",
            lambda: self._client.insert_arrow(
                rows.table.name, arrow, database=DATABASE, settings=settings
            ),
        )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raw = self._retry.run(
            "query",
            lambda: self._client.raw_query(
                sql, parameters=params, settings=_JSON_SETTINGS, fmt="JSON"
            ),
        )
        return _json_result.decode(raw).data if raw else []

    def delete(self, table: str, where: str, params: dict[str, Any]) -> None:
        """A lightweight delete; the server waits for it (`lightweight_deletes_sync`, 2 by default).

        Retried like any request: deleting twice removes nothing more.
        """
        sql = f"DELETE FROM `{DATABASE}`.`{table}` WHERE {where}"
        self._retry.run(
            f"delete from {table}", lambda: self._client.command(sql, parameters=params)
        )

    def schema(self, layout: Layout) -> ClickHouseSchema:
        """The server's tables, as versioned and migrated (`writech.stores.migrations`)."""
        return ClickHouseSchema(self, layout, self._retry.target)

    def missing_tables(self) -> list[str]:
        """Names of the schema's tables and views the server does not have (or this user cannot see)."""
        return self.schema(Layout()).missing()

    def close(self) -> None:
        self._client.close()


def insert_token(rows: TableRows) -> str:
    """The deduplication token of an insert: a hash of the table and the rows' content."""
    digest = hashlib.blake2b(msgspec.msgpack.encode(rows.columns), digest_size=16)
    return f"{rows.table.name}-{digest.hexdigest()}"
