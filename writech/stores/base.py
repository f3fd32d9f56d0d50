"""What every store offers, and which stores a configuration means (SPEC §7).

Embedded by default (chDB for the ClickHouse tables, SQLite for
`error_record`); a ClickHouse URL or a MySQL URL switch to the servers.
Every store writes `TableRows` idempotently (writing a row twice changes
nothing), verifies that what it sent was stored, and raises `StoreError`
otherwise, so a failed write stops the run before its epoch commits.
Each store holds its reads too (the reports read through them). The
server modules are imported only when configured.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from writech.reports.model import Period
from writech.reports.rows import QuestionError, Scope
from writech.rows import TableRows
from writech.schema import (
    ANALYTICS_METRICS,
    CLASS_MINUTE_STATS,
    CLICKHOUSE_TABLES,
    DATABASE,
    DEAD_LETTER,
    DEAD_LETTER_REDRIVE,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    STUDENT_MINUTE_STATS,
    Layout,
)
from writech.settings import PREFIX, Settings, SettingsError

# Settings of every insert into a ClickHouse table. Rows of one insert that
# share a key (a daily row changed in two flushes that `batch_rows` sends at
# once) are not collapsed on insert: every read takes the upserted truth with
# FINAL, which collapses them as a merge later does. Collapsing each insert
# took half of the engine's insert time (chDB: 1.41 against 0.71 µs a row).
CLICKHOUSE_INSERT_SETTINGS: Final[dict[str, int]] = {"optimize_on_insert": 0}


class StoreError(RuntimeError):
    """A store could not do what was asked; the message names it, never a secret."""


class RowsWriter(Protocol):
    """Writes rows to the tables it holds, idempotently."""

    def insert(self, rows: TableRows) -> None: ...

    def close(self) -> None: ...


class ClickHouse(RowsWriter, Protocol):
    """A ClickHouse, embedded or server: what the pipeline and the reports need of it."""

    def command(self, sql: str) -> None: ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def delete(self, table: str, where: str, params: dict[str, Any]) -> None: ...


class ErrorStore(RowsWriter, Protocol):
    """The store of `error_record` (SQLite or MySQL): the dataflow's writes, the reports' reads."""

    def delete_students(self, student_ids: Sequence[str]) -> int: ...

    def question_errors(
        self, scope: Scope, scope_id: str, period: Period
    ) -> list[QuestionError]: ...

    def scope_schools(self, scope: Scope, scope_id: str, period: Period) -> set[str]: ...


def delete_counted(store: ClickHouse, table: str, where: str, params: dict[str, Any]) -> int:
    """Delete the rows of `table` matching `where`; how many there were (as read with FINAL).

    Raises `StoreError` when a matching row is still there afterwards (a
    server set to delete asynchronously, say): a deletion must be checked.
    """
    rows = f"`{DATABASE}`.`{table}`"
    found = int(store.query(f"SELECT count() AS n FROM {rows} FINAL WHERE {where}", params)[0]["n"])
    if found:
        store.delete(table, where, params)
    left = int(store.query(f"SELECT count() AS n FROM {rows} WHERE {where}", params)[0]["n"])
    if left:
        raise StoreError(
            f"{table}: {left} matching rows are still there after the delete; deletes must be "
            "synchronous (lightweight_deletes_sync = 2, the default)"
        )
    return found


def create_schema(store: ClickHouse, layout: Layout) -> None:
    """Create the database, every ClickHouse table and its views, where missing (idempotent)."""
    store.command(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`{layout.on_cluster}")
    for table in CLICKHOUSE_TABLES:
        store.command(table.ddl(layout=layout))
        for ddl in table.views(layout=layout).values():
            store.command(ddl)


def layout_of(settings: Settings) -> Layout:
    """The ClickHouse tables' layout the settings ask for (`writech migrate` applies a change)."""
    if settings.clickhouse_cluster and not settings.clickhouse_url:
        raise SettingsError(
            "WRITECH_CLICKHOUSE_CLUSTER: the embedded store has no cluster; "
            "set WRITECH_CLICKHOUSE_URL too, or leave the cluster empty"
        )
    days = {
        STUDENT_DAILY_STATS: settings.stats_ttl_days,
        ANALYTICS_METRICS: settings.stats_ttl_days,
        HOMEWORK_RESULT: settings.stats_ttl_days,
        STUDENT_MINUTE_STATS: settings.minute_stats_ttl_days,
        CLASS_MINUTE_STATS: settings.minute_stats_ttl_days,
        DEAD_LETTER: settings.dead_letter_ttl_days,
        DEAD_LETTER_REDRIVE: settings.dead_letter_ttl_days,
    }
    return Layout(settings.clickhouse_cluster, {table.name: n for table, n in days.items() if n})


def open_clickhouse(settings: Settings, *, existing: bool = False) -> ClickHouse:
    """The configured ClickHouse, at this release's schema version; the caller closes it.

    A fresh store is created; an older embedded one is upgraded, an older
    server refused (`writech.stores.migrations`). `existing`: an embedded
    store must be there already (`SettingsError` otherwise), for commands
    that read or delete: a mistyped --data-dir would get an empty store, and
    a `writech forget` there would forget nobody's data.
    """
    if settings.clickhouse_url:
        from writech.stores import clickhouse

        return clickhouse.open_store(settings)
    if existing and not settings.clickhouse_dir.is_dir():
        raise SettingsError(
            f"no store in {settings.data_dir}: nothing was replayed there (check --data-dir)"
        )
    from writech.stores import chdb

    return chdb.open_store(settings.clickhouse_dir, layout_of(settings))


def make_store_dir(path: Path, setting: str = "--data-dir (WRITECH_DATA_DIR)") -> None:
    """Make the directory of an embedded or recovery store, or say in one line why it
    cannot be, naming the `setting` that chose it.

    A `--data-dir` that names a file, or lies under one, ended the run in a
    traceback (`NotADirectoryError` from deep in the store's opening), and
    one on a read-only file system in chDB's "Error initializing
    EmbeddedServer". An embedded store writes even to be read (chDB's lock
    and status files), so the directory must be writable for every command.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        check_writable(path, setting)
    except OSError as exc:
        raise SettingsError(
            f"{path}: cannot hold a store ({exc.strerror or exc}); check {setting}"
        ) from None


def check_writable(path: Path, setting: str) -> None:
    """`SettingsError` naming `setting` unless this process may write to `path`."""
    if os.access(path, os.W_OK):
        return
    read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    raise SettingsError(
        f"{path}: cannot hold a store ("
        + ("its file system is mounted read-only" if read_only else "not writable by this user")
        + f"; a store is written even to be read: move it to a writable place); check {setting}"
    )


def open_error_store(
    settings: Settings, *, read_only: bool = False, existing: bool = False
) -> ErrorStore:
    """The configured store of `error_record`; the caller closes it.

    `read_only`: its connections cannot write (`writech serve`), and an
    embedded store must exist already. `existing`: an embedded store must be
    there already (`SettingsError` otherwise), as for `open_clickhouse`: a
    `writech forget` against a new, empty one would delete nothing and say so.
    """
    if existing and not settings.mysql_url and not settings.sqlite_path.is_file():
        raise SettingsError(
            f"no error_record store at {settings.sqlite_path}: check --data-dir, and "
            f"{PREFIX}MYSQL_URL if the dataflow writes error records to MySQL"
        )
    if settings.mysql_url:
        from writech.stores.mysql import MysqlErrorStore

        return MysqlErrorStore(settings, read_only=read_only)
    from writech.stores.sqlite import SqliteErrorStore

    return SqliteErrorStore(settings.sqlite_path, read_only=read_only)


def init_db(settings: Settings) -> None:
    """Open every store the configuration writes to, as the dataflow does (idempotent).

    Fresh stores are created, older embedded ones upgraded; a store the
    dataflow could not write to raises `SchemaError` before anything runs.
    """
    open_clickhouse(settings).close()
    open_error_store(settings).close()
