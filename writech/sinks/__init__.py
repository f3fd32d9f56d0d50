"""Outputs. One module per external system; this module holds what they share.

`RowsSink` is the one Bytewax sink every table uses: each upstream item
is a list of rows, and each `write_batch` call writes all the rows it
receives in one insert, keeping nothing between calls (an epoch may
commit once `write_batch` returns, so buffered rows would be lost on a
crash). Batching happens upstream, where a step emits lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from writech import counters
from writech.schema import CLICKHOUSE_TABLES, DATABASE, Table

Row = TypeVar("Row")


class Writer(Protocol[Row]):  # type: ignore[misc]
    """Writes rows to one table, idempotently: writing a row twice is a no-op."""

    def write(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


class ClickHouse(Protocol):
    """What the pipeline and the reports need of a ClickHouse, embedded or server."""

    def command(self, sql: str) -> None: ...

    def insert(self, table: Table, rows: Sequence[Any]) -> None: ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def create_schema(store: ClickHouse) -> None:
    """Create the database and every ClickHouse table if missing (idempotent)."""
    store.command(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
    for table in CLICKHOUSE_TABLES:
        store.command(table.ddl())


class ClickHouseWriter:
    """A `Writer` for one ClickHouse table."""

    def __init__(self, store: ClickHouse, table: Table) -> None:
        self.store = store
        self.table = table

    def write(self, rows: Sequence[Any]) -> None:
        self.store.insert(self.table, rows)

    def close(self) -> None:
        self.store.close()


class _RowsPartition(StatelessSinkPartition[list[Row]]):
    def __init__(self, name: str, writer: Writer[Row]) -> None:
        self._name = name
        self._writer = writer
        self._rows_written = counters.ROWS_WRITTEN.labels(name)
        self._latency = counters.SINK_BATCH_SECONDS.labels(name)

    def write_batch(self, items: list[list[Row]]) -> None:
        rows = [row for item in items for row in item]
        if not rows:
            return
        started = time.perf_counter()
        self._writer.write(rows)
        self._latency.observe(time.perf_counter() - started)
        self._rows_written.inc(len(rows))

    def close(self) -> None:
        self._writer.close()


class RowsSink(DynamicSink[list[Row]]):
    """Writes lists of rows with a `Writer` opened on each worker."""

    def __init__(self, name: str, open_writer: Callable[[], Writer[Row]]) -> None:
        self.name = name
        self.open_writer = open_writer

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RowsPartition[Row]:
        return _RowsPartition(self.name, self.open_writer())
