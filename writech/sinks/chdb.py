"""Embedded ClickHouse: chDB on disk under `DATA_DIR/clickhouse` (SPEC §7, §10).

chDB runs one ClickHouse engine per process, so every worker thread of a
process shares one session per path, behind a lock. Rows are streamed
in as `JSONEachRow` bytes, apart from the statement: no value is ever
parsed as SQL.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from chdb import session as chdb_session

from writech.schema import DATABASE, Table
from writech.sinks import create_schema

_INSERT_SETTINGS = "SETTINGS date_time_input_format = 'best_effort'"


class _Result(msgspec.Struct):
    data: list[dict[str, Any]] = []


_result_decoder = msgspec.json.Decoder(_Result)
_stores: dict[Path, ChdbStore] = {}
_stores_lock = threading.Lock()


def open_store(path: str | Path) -> ChdbStore:
    """The process's store at `path`, with the schema applied; `close()` it when done."""
    key = Path(path).resolve()
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ChdbStore(key)
        store._users += 1
        return store


class ChdbStore:
    """A chDB session; implements `writech.sinks.ClickHouse`."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._session = chdb_session.Session(str(path))
        self._lock = threading.Lock()
        self._users = 0
        self.command("SET output_format_json_quote_64bit_integers = 0")
        create_schema(self)

    def command(self, sql: str) -> None:
        with self._lock:
            self._session.query(sql)

    def insert(self, table: Table, rows: Sequence[Any]) -> None:
        if not rows:
            return
        # Streamed as bytes: no SQL text holding the data to build, copy and parse.
        body = msgspec.json.encode(rows)
        sql = f"INSERT INTO `{DATABASE}`.`{table.name}` {_INSERT_SETTINGS}"
        with self._lock, self._session.send_insert(sql, "JSONEachRow") as inserter:
            inserter.append(body)
            inserter.finish()  # leaving without it (an error) cancels the insert

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            result = self._session.query(sql, "JSON", params=params)
        raw = result.bytes()
        return _result_decoder.decode(raw).data if raw else []

    def close(self) -> None:
        """Release this user's hold; the last one closes the session.

        Closing a chDB session from a Bytewax worker thread while another
        worker is still live has been seen to deadlock, so a worker thread
        leaves the session open for the process to close at exit.
        """
        with _stores_lock:
            self._users -= 1
            if self._users > 0:
                return
            if threading.current_thread() is not threading.main_thread():
                atexit.register(_close_idle)
                return
            _stores.pop(self.path, None)
        with self._lock:
            self._session.close()


def _close_idle() -> None:
    """Close every session no one holds (at exit, from the main thread)."""
    with _stores_lock:
        idle = [path for path, store in _stores.items() if store._users == 0]
        stores = [_stores.pop(path) for path in idle]
    for store in stores:
        with store._lock:
            store._session.close()
