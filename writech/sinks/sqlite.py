"""Embedded `error_record` store: SQLite at `DATA_DIR/writech.db` (SPEC §4, §10).

Each worker opens its own connection (SQLite connections are per thread);
WAL and a busy timeout let them write side by side. `INSERT OR IGNORE` on
the unique key makes a re-inserted record a no-op.
"""

from __future__ import annotations

import operator
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from writech.schema import (
    ERROR_RECORD_COLUMNS,
    ERROR_RECORD_SQLITE_DDL,
    ERROR_RECORD_SQLITE_INDEXES,
    ErrorRecord,
)

# The two temporal columns are stored as ISO 8601 text; the others as they are,
# read in one C call per row.
_TEMPORAL: Final = ("date", "created_at")
_PLAIN: Final = tuple(name for name in ERROR_RECORD_COLUMNS if name not in _TEMPORAL)
_plain_values = operator.attrgetter(*_PLAIN)
_INSERT: Final = (
    f"INSERT OR IGNORE INTO error_record ({', '.join(_PLAIN + _TEMPORAL)}) "
    f"VALUES ({', '.join('?' for _ in ERROR_RECORD_COLUMNS)})"
)
# Page cache per connection (SQLite's default is 2 MB): inserts into the
# unique indexes land at random pages, which then stay cached.
_CACHE_KIB: Final = 16 * 1024


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
        connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
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
            (*_plain_values(row), row.date.isoformat(), row.created_at.isoformat()) for row in rows
        ]
        with self._connection:
            self._connection.execute("BEGIN")
            self._connection.executemany(_INSERT, values)

    def close(self) -> None:
        self._connection.close()
