"""Embedded ClickHouse: chDB on disk under `DATA_DIR/clickhouse` (SPEC §7, §10).

chDB runs one ClickHouse engine per process, so every worker thread of a
process shares one session per path, behind a lock.

Rows go in as Arrow: written to a file beside the store (an Arrow IPC
stream, one C call), then read by `INSERT ... SELECT FROM file(...)`, a
query that raises when the engine cannot store them. Two other ways were
tried and dropped: chDB's streaming insert (`send_insert`) returned
normally on a full disk, even reporting every row as written, while
nothing was stored; its `Python()` table function deadlocked with a second
worker thread converting rows at the same time. Each insert is checked
besides: rows written must equal rows sent, or the run stops before its
epoch commits. The batch file lives on the store's own disk, so a full
disk fails already when the batch is written.
"""

from __future__ import annotations

import atexit
import fcntl
import tempfile
import threading
from pathlib import Path
from typing import Any, Final

import msgspec
import pyarrow as pa
from chdb import ChdbError as EngineError
from chdb import session as chdb_session

from writech.rows import TableRows
from writech.schema import DATABASE, Layout
from writech.settings import Settings, SettingsError
from writech.stores.arrow import to_arrow
from writech.stores.base import (
    CLICKHOUSE_INSERT_SETTINGS,
    StoreError,
    layout_of,
    make_store_dir,
)
from writech.stores.migrations import ClickHouseSchema, open_schema


class ChdbError(StoreError):
    """The embedded ClickHouse could not do what was asked (disk full, a damaged part, ...)."""


class _Result(msgspec.Struct):
    data: list[dict[str, Any]] = []


_result_decoder = msgspec.json.Decoder(_Result)
_INSERT_SETTINGS: Final = ", ".join(
    f"{name} = {value}" for name, value in CLICKHOUSE_INSERT_SETTINGS.items()
)
_stores: dict[Path, ChdbStore] = {}
_stores_lock = threading.Lock()


def open_store(path: str | Path, layout: Layout | None = None) -> ChdbStore:
    """The process's store at `path`, at this release's schema; `close()` it when done.

    A fresh store is created with the tables laid out by `layout` (by
    default, as the default settings say); an older one is upgraded on the
    spot (`writech.stores.migrations`).
    """
    key = Path(path).resolve()
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ChdbStore(key, layout or layout_of(Settings()))
        store._users += 1
        return store


def _refuse_if_open_elsewhere(path: Path) -> None:
    """Refuse (`SettingsError`) the embedded store at `path` if another process has it open.

    chDB's engine holds an exclusive lock on the store's `status` file while
    it is open; a second process's engine then failed to start with a
    message that did not say why ("Error initializing EmbeddedServer"),
    ending a replay next to `writech serve` in a traceback.
    """
    try:
        with open(path / "status", "rb") as status:
            fcntl.flock(status, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released as it closes
    except BlockingIOError:
        raise SettingsError(
            f"embedded ClickHouse at {path} is open in another process (a replay, the "
            "dataflow or `writech serve`); one process at a time can use an embedded store: "
            "stop the other one, or use a ClickHouse server (WRITECH_CLICKHOUSE_URL) for both"
        ) from None
    except OSError:  # no status file: no engine has opened the store yet
        return


class ChdbStore:
    """A chDB session; implements `writech.stores.base.ClickHouse`."""

    def __init__(self, path: Path, layout: Layout) -> None:
        make_store_dir(path)
        self.path = path
        self.where = f"embedded ClickHouse at {path}"
        _refuse_if_open_elsewhere(path)  # before the engine, which would print its own error
        try:
            self._session = chdb_session.Session(str(path))
        except (EngineError, RuntimeError) as exc:
            _refuse_if_open_elsewhere(path)  # opened elsewhere meanwhile
            raise ChdbError(f"embedded ClickHouse at {path} cannot open: {exc}") from None
        self._lock = threading.Lock()
        self._users = 0
        self._batches = path / "batches"  # Arrow files on their way in
        self._batches.mkdir(exist_ok=True)
        self.command("SET output_format_json_quote_64bit_integers = 0")
        try:
            open_schema(ClickHouseSchema(self, layout, self.where), upgrade_older=True)
        except BaseException:
            self._session.close()
            raise

    def command(self, sql: str) -> None:
        with self._lock:
            self._run(sql)

    def insert(self, rows: TableRows) -> None:
        sent = len(rows)
        if not sent:
            return
        arrow = to_arrow(rows)
        with tempfile.NamedTemporaryFile(dir=self._batches, suffix=".arrow") as batch:
            try:
                with (
                    pa.OSFile(batch.name, "wb") as sink,
                    pa.ipc.new_stream(sink, arrow.schema) as stream,
                ):
                    stream.write_table(arrow)
            except OSError as exc:
                raise ChdbError(
                    f"embedded ClickHouse at {self.path}: cannot write a batch of "
                    f"{rows.table.name} beside the store: {exc}"
                ) from None
            source = batch.name.replace("\\", "\\\\").replace("'", "\\'")
            sql = (
                f"INSERT INTO `{DATABASE}`.`{rows.table.name}` SETTINGS {_INSERT_SETTINGS} "
                f"SELECT * FROM file('{source}', 'ArrowStream')"
            )
            with self._lock:
                written = self._run(sql).rows_written()
        if written != sent:
            raise ChdbError(
                f"embedded ClickHouse at {self.path}: {rows.table.name} stored {written} of "
                f"{sent} rows; nothing is committed, and a resume writes them again"
            )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            raw = self._run(sql, "JSON", params).bytes()
        return _result_decoder.decode(raw).data if raw else []

    def delete(self, table: str, where: str, params: dict[str, Any]) -> None:
        """A lightweight delete, finished when it returns (chDB waits for it)."""
        with self._lock:
            self._run(f"DELETE FROM `{DATABASE}`.`{table}` WHERE {where}", params=params)

    def _run(self, sql: str, output: str = "CSV", params: dict[str, Any] | None = None) -> Any:
        try:
            return self._session.query(sql, output, params=params and _escaped(params))
        except (EngineError, RuntimeError) as exc:
            raise ChdbError(f"embedded ClickHouse at {self.path}: {exc}") from None

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
                atexit.register(close_idle)
                return
            _stores.pop(self.path, None)
        with self._lock:
            self._session.close()


_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"})


def _escaped(params: dict[str, Any]) -> dict[str, Any]:
    """Text parameters as ClickHouse reads them: in the escaped format, as a server gets them.

    chDB hands values to the engine as they are, and the engine unescapes
    them: a backslash or a newline in an id would otherwise change it.
    """
    return {
        name: value.translate(_ESCAPES) if isinstance(value, str) else value
        for name, value in params.items()
    }


def close_idle() -> None:
    """Close every session no one holds (at exit, from the main thread)."""
    with _stores_lock:
        idle = [path for path, store in _stores.items() if store._users == 0]
        stores = [_stores.pop(path) for path in idle]
    for store in stores:
        with store._lock:
            store._session.close()
