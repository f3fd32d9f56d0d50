"""Embedded `error_record` store: SQLite at `DATA_DIR/writech.db` (SPEC §4, §10).

Each worker opens its own connection (SQLite connections are per thread);
WAL and a busy timeout let them write side by side. `INSERT OR IGNORE` on
the unique key makes a re-inserted record a no-op. SQLite raises on a full
disk or a damaged file (`sqlite3.OperationalError`, `DatabaseError`); the
error reaches the dataflow before its epoch commits.

Opened `read_only` (the web app), the file is opened in SQLite's `mode=ro`:
the connection cannot write, and the file must already exist.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from writech.rows import TableRows
from writech.schema import ERROR_RECORD_SQLITE_INDEXES, error_record_sqlite_ddl
from writech.stores.base import StoreError, make_store_dir
from writech.stores.migrations import SqlDialect, SqlSchema, open_schema
from writech.stores.sql import (
    ErrorRecordReads,
    day_of,
    delete_parameters,
    delete_statement,
    insert_statement,
    instant_of,
    parameters,
)

_INSERT: Final = insert_statement("INSERT OR IGNORE", "?")
# Page cache per connection (SQLite's default is 2 MB): inserts into the
# unique indexes land at random pages, which then stay cached.
_CACHE_KIB: Final = 16 * 1024

# Switching to WAL ignores the busy timeout, so workers opening their
# connections at the same moment take turns.
_setup_lock = threading.Lock()


class SqliteError(StoreError):
    """The embedded error_record store could not write (disk full, a damaged file, ...)."""


SQLITE: Final = SqlDialect(
    name="SQLite",
    placeholder="?",
    table_exists="SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
    versions_ddl=(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, summary TEXT NOT NULL)"
    ),
    record_version=(
        "INSERT OR IGNORE INTO schema_version (version, applied_at, summary) VALUES (?, ?, ?)"
    ),
    error_record_ddl=error_record_sqlite_ddl,
    indexes=ERROR_RECORD_SQLITE_INDEXES,
    # index names are the database's: the rebuilt table gets them once renamed
    replace_error_record=lambda rebuilt: (
        "DROP TABLE error_record",
        f"ALTER TABLE {rebuilt} RENAME TO error_record",
        *ERROR_RECORD_SQLITE_INDEXES,
    ),
    # a migration is one transaction: it happens whole or not at all
    begin="BEGIN IMMEDIATE",
    commit="COMMIT",
    rollback="ROLLBACK",
)


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to the store at `path`, at this release's schema (an older one upgraded)."""
    make_store_dir(Path(path).parent)
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        with _setup_lock:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            open_schema(
                SqlSchema(connection.cursor(), SQLITE, f"SQLite store at {path}"),
                upgrade_older=True,
            )
    except BaseException:
        connection.close()
        raise
    return connection


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """A connection to the existing store at `path` that cannot write (`mode=ro`)."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)


class SqliteErrorStore(ErrorRecordReads):
    """Writes `error_record` rows to SQLite, one transaction per batch, and reads them."""

    placeholder = SQLITE.placeholder

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        try:
            self._connection = connect_read_only(path) if read_only else connect(path)
        except sqlite3.Error as exc:
            raise SqliteError(f"SQLite store at {path} cannot open: {exc}") from None

    def insert(self, rows: TableRows) -> None:
        values = parameters(
            rows, lambda days: day_of(days).isoformat(), lambda us: instant_of(us).isoformat()
        )
        try:
            with self._connection:
                self._connection.execute("BEGIN")
                self._connection.executemany(_INSERT, values)
        except sqlite3.Error as exc:
            raise SqliteError(
                f"SQLite store at {self.path}: insert into error_record failed: {exc}"
            ) from None

    def delete_students(self, student_ids: Sequence[str]) -> int:
        """Delete every error record of these students; the records deleted."""
        try:
            with self._connection:
                self._connection.execute("BEGIN")
                deleted = self._connection.executemany(
                    delete_statement("?"), delete_parameters(student_ids)
                )
        except sqlite3.Error as exc:
            raise SqliteError(
                f"SQLite store at {self.path}: delete from error_record failed: {exc}"
            ) from None
        return deleted.rowcount

    def select(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise SqliteError(
                f"SQLite store at {self.path}: read of error_record failed: {exc}"
            ) from None

    def close(self) -> None:
        self._connection.close()
