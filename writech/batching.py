"""The `batch_rows` step's logic: one table's rows gathered into few, large inserts.

Every insert has a fixed cost (and makes a part for ClickHouse to merge),
so rows are written at most once per flush interval, or as soon as
`max_rows` are pending (an insert holds its rows twice for a moment, as
lists and as Arrow, so `max_rows` bounds that too). Pending rows are part
of the snapshot: they are not lost when the process dies before writing
them.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from writech.rows import TableRows


def now() -> datetime:
    return datetime.now(UTC)


def due(at: datetime, interval: timedelta) -> datetime:
    """`at`, or `interval` from now if the wall clock went back since `at` was set.

    Bytewax times notifications by the wall clock: after the clock steps
    back (an NTP correction, a virtual machine resumed), a time set before
    would hold rows back for as long as the clock went back, an hour of a
    live board for a clock an hour fast.
    """
    return min(at, now() + interval)


class RowBatcher(StatefulBatchLogic[TableRows, TableRows, bytes]):
    """Gathers one table's `TableRows` and emits them at most once per `interval`."""

    def __init__(self, resume: bytes | None, interval: timedelta, max_rows: int) -> None:
        self._pending: TableRows | None = pickle.loads(resume) if resume is not None else None
        self._interval = interval
        self._max_rows = max_rows
        self._due: datetime | None = now() + interval if self._pending else None

    def on_batch(self, values: list[TableRows]) -> tuple[Iterable[TableRows], bool]:
        # Emitted as soon as `max_rows` are pending, within a batch too: every
        # shard's flush can arrive in one batch (a replay's first flush: about
        # 80,000 minute rows, where one insert of them all set its peak RSS).
        emitted: list[TableRows] = []
        for rows in values:
            if self._pending is None:
                self._pending = rows
            else:
                self._pending.extend(rows)
            if len(self._pending) >= self._max_rows:
                emitted += self._emit()
        if self._due is None and self._pending:
            self._due = now() + self._interval
        return emitted, self.RETAIN

    def notify_at(self) -> datetime | None:
        return None if self._due is None else due(self._due, self._interval)

    def on_notify(self) -> tuple[Iterable[TableRows], bool]:
        return self._emit(), self.RETAIN

    def on_eof(self) -> tuple[Iterable[TableRows], bool]:
        return self._emit(), self.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._pending, protocol=pickle.HIGHEST_PROTOCOL)

    def _emit(self) -> list[TableRows]:
        rows, self._pending, self._due = self._pending, None, None
        return [rows] if rows else []
