"""The one Bytewax sink every table uses: rows in, verified writes out.

Each upstream item is a `TableRows`, and each `write_batch` call writes
every item it receives, one insert each, keeping nothing between calls:
Bytewax may commit an epoch once `write_batch` returns, so buffered rows
would be lost on a crash, and a write that fails must raise here, before
the commit. Batching happens upstream (`writech.batching`), which makes
an item as large as an insert should be; joining items here would make
inserts larger than `WRITECH_SINK_BATCH_ROWS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from writech import counters
from writech.failures import advice
from writech.rows import TableRows
from writech.stores.base import RowsWriter

log = logging.getLogger(__name__)


class _RowsPartition(StatelessSinkPartition[TableRows]):
    def __init__(self, name: str, writer: RowsWriter) -> None:
        self._name = name
        self._writer = writer
        self._rows_written = counters.ROWS_WRITTEN.labels(name)
        self._latency = counters.SINK_BATCH_SECONDS.labels(name)

    def write_batch(self, items: list[TableRows]) -> None:
        # an insert per item: `batch_rows` makes them as large as an insert should be
        for rows in items:
            if len(rows):
                self._insert(rows)

    def _insert(self, rows: TableRows) -> None:
        started = time.perf_counter()
        try:
            self._writer.insert(rows)
        except Exception as exc:
            # said here, before Bytewax stops the workers (and may print a backtrace)
            log.critical("writing %d rows to %s failed: %s", len(rows), self._name, exc)
            if line := advice(exc):
                log.critical("%s", line)
            raise
        self._latency.observe(time.perf_counter() - started)
        self._rows_written.inc(len(rows))

    def close(self) -> None:
        self._writer.close()


class RowsSink(DynamicSink[TableRows]):
    """Writes `TableRows` with a `RowsWriter` opened on each worker; `name` labels its metrics."""

    def __init__(self, name: str, open_writer: Callable[[], RowsWriter]) -> None:
        self.name = name
        self.open_writer = open_writer

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RowsPartition:
        return _RowsPartition(self.name, self.open_writer())
