"""Embedded `error_record` store: SQLite at `DATA_DIR/writech.db` (SPEC §4, §10).

Each worker opens its own connection (SQLite connections are per thread);
WAL and a busy timeout let them write side by side. `INSERT OR IGNORE` on
the unique key makes a re-inserted record a no-op.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from msgspec.structs import astuple

from writech.schema import (
    ERROR_RECORD_COLUMNS,
    ERROR_RECORD_SQLITE_DDL,
    ERROR_RECORD_SQLITE_INDEXES,
    ErrorRecord,
)

_INSERT = (
    f"INSERT OR IGNORE INTO error_record ({', '.join(ERROR_RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ERROR_RECORD_COLUMNS)})"
)


# Switching to WAL ignores the busy timeout, so workers opening their
# connections at the same moment take turns.
_setup_lock = threading.Lock()


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to the store at `path`, with the schema applied."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    with _setup_lock:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute(ERROR_RECORD_SQLITE_DDL)
        for ddl in ERROR_RECORD_SQLITE_INDEXES:
            connection.execute(ddl)
    return connection


class SqliteErrorWriter:
    """Writes `ErrorRecord`s to SQLite, one transaction per batch."""

    def __init__(self, path: str | Path) -> None:
        self._connection = connect(path)

    def write(self, rows: Sequence[ErrorRecord]) -> None:
        values = [
            tuple(v.isoformat() if isinstance(v, date) else v for v in astuple(row)) for row in rows
        ]
        with self._connection:
            self._connection.execute("BEGIN")
            self._connection.executemany(_INSERT, values)

    def close(self) -> None:
        self._connection.close()
