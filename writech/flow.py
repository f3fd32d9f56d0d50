"""The Bytewax dataflow: thin wiring of `writech`'s pure logic to sources and sinks.

    read ─ shard ─ aggregate ─ by_table ─ batch_rows ─┬─ write_stats
                                                      ├─ write_metrics
                                                      ├─ write_errors
                                                      └─ write_dead_letters (+ Kafka topic)

Items are batches, never single events: per-item overhead in Bytewax is
paid per batch. Students are hashed into `settings.shards` keys; each
key's state is a `writech.aggregate.Shard`. Messages travel to their
shard's worker still raw (`shard` reads only their student id) and are
decoded there: bytes cost next to nothing to send to another process,
decoded events a pickle each. Rows are then gathered per table
(`batch_rows`, keyed by table name) into few, large inserts.

Step ids are part of the recovery state: `read` keeps input positions,
`aggregate` the shards and `batch_rows` the rows not yet written.
Renaming any of them, or the flow id `writech`, makes a resume start
those steps from nothing. Do not rename them. A shard's snapshot records
the shard count it was made with: a resume under another `WRITECH_SHARDS`
would split students' state, so it is refused.
"""

from __future__ import annotations

import functools
import gc
import pickle
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic

from writech import counters, stores
from writech.aggregate import Shard, ShardOutput
from writech.events import Event, EventDecoder, RawBatch
from writech.schema import (
    ANALYTICS_METRICS,
    DEAD_LETTER,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    DailyStats,
    DeadLetter,
    ErrorRecord,
    HomeworkResult,
    Metric,
)
from writech.settings import Settings, SettingsError

FLOW_ID = "writech"
ERROR_RECORD = "error_record"
# Young-generation threshold of the garbage collector (CPython's default: 700).
GC_THRESHOLD = 100_000


@functools.lru_cache(maxsize=1 << 16)  # students recur: hashing each message's id shows in profiles
def shard_key(student_id: str, shards: int) -> str:
    """The state key of a student: stable across processes, runs and Python versions."""
    return f"{zlib.crc32(student_id.encode()) % shards:04d}"


def split_by_shard(
    shards: int, batch: RawBatch, student_of: Callable[[bytes], str]
) -> list[tuple[str, RawBatch]]:
    """A batch's messages grouped by their student's shard, still raw.

    Messages naming no readable student (all invalid) group under the
    shard of "", with the source's rejections.
    """
    groups: dict[str, list[int]] = {}
    for index, raw in enumerate(batch.messages):
        groups.setdefault(shard_key(student_of(raw), shards), []).append(index)
    nobody = shard_key("", shards)
    if batch.rejected and nobody not in groups:
        groups[nobody] = []
    offsets, messages, produced_at = batch.offsets, batch.messages, batch.produced_at
    return [
        (key, RawBatch(
            batch.origin, batch.partition,
            [offsets[i] for i in indexes], [messages[i] for i in indexes],
            batch.rejected if key == nobody else [],
            [produced_at[i] for i in indexes] if produced_at else [],
        ))
        for key, indexes in groups.items()
    ]  # fmt: skip


class ShardLogic(StatefulBatchLogic[RawBatch, ShardOutput, bytes]):
    """Bytewax glue around one `Shard`: decoding its messages, flush timing and snapshots."""

    def __init__(
        self, shard: Shard, decoder: EventDecoder, flush_interval: timedelta, shards: int
    ) -> None:
        self._shard = shard
        self._decoder = decoder
        self._shards = shards
        self._flush_interval = flush_interval
        self._next_flush = _now() + flush_interval
        # what this shard last added to the process-wide state gauges
        self._rows_reported = 0
        self._ids_reported = 0

    def on_batch(self, values: list[RawBatch]) -> tuple[Iterable[ShardOutput], bool]:
        events: list[Event] = []
        invalid: list[DeadLetter] = []
        for batch in values:
            decoded, rejected = self._decoder.decode_batch(batch)
            events += decoded
            invalid += rejected
        out = self._shard.apply(events)
        out.dead_letters[:0] = invalid
        counters.PROCESSED.inc(out.processed)
        counters.DUPLICATES.inc(out.duplicates)
        for reason, count in Counter(row.reason for row in out.dead_letters).items():
            counters.DEAD_LETTERED.labels(reason).inc(count)
        return [out], self.RETAIN

    def notify_at(self) -> datetime | None:
        return self._next_flush if self._shard.dirty else None

    def on_notify(self) -> tuple[Iterable[ShardOutput], bool]:
        self._next_flush = _now() + self._flush_interval
        return self._flush(), self.RETAIN

    def on_eof(self) -> tuple[Iterable[ShardOutput], bool]:
        return self._flush(), self.RETAIN

    def snapshot(self) -> bytes:
        # Pickled now: the shard keeps changing after this returns.
        return pickle.dumps((self._shards, self._shard), protocol=pickle.HIGHEST_PROTOCOL)

    def _flush(self) -> list[ShardOutput]:
        rows_retained, ids_retained = self._shard.retained_rows, self._shard.retained_event_ids
        counters.STATE_ROWS.inc(rows_retained - self._rows_reported)
        counters.STATE_EVENT_IDS.inc(ids_retained - self._ids_reported)
        self._rows_reported, self._ids_reported = rows_retained, ids_retained
        rows = self._shard.flush()
        return [ShardOutput(rows, [], [], [])] if rows else []


class TableRows:
    """Rows of one table on their way to its `batch_rows` worker.

    Pickled (to a worker in another process, or into a snapshot) as one
    msgpack document: pickling row objects one by one cost ~4 us a row
    and was most of what a second process added.
    """

    __slots__ = ("rows", "table")

    def __init__(self, table: str, rows: list[Any]) -> None:
        self.table = table
        self.rows = rows

    def __reduce__(self) -> tuple[Callable[[str, bytes], TableRows], tuple[str, bytes]]:
        return _unpack_rows, (self.table, _ROWS_ENCODER.encode(self.rows))


_ROWS_ENCODER = msgspec.msgpack.Encoder()
_ROWS_DECODERS: dict[str, msgspec.msgpack.Decoder[list[Any]]] = {
    STUDENT_DAILY_STATS.name: msgspec.msgpack.Decoder(list[DailyStats]),
    ANALYTICS_METRICS.name: msgspec.msgpack.Decoder(list[Metric]),
    ERROR_RECORD: msgspec.msgpack.Decoder(list[ErrorRecord]),
    HOMEWORK_RESULT.name: msgspec.msgpack.Decoder(list[HomeworkResult]),
    DEAD_LETTER.name: msgspec.msgpack.Decoder(list[DeadLetter]),
}


def _unpack_rows(table: str, packed: bytes) -> TableRows:
    return TableRows(table, _ROWS_DECODERS[table].decode(packed))


class RowBatcher(StatefulBatchLogic[TableRows, list[Any], bytes]):
    """Gathers one table's rows into few, large inserts.

    Every insert has a fixed cost (and makes a part for ClickHouse to merge),
    so rows are written at most once per `interval`, or as soon as
    `max_rows` are pending. Pending rows are part of the snapshot: they
    are not lost when the process dies before writing them.
    """

    def __init__(self, resume: bytes | None, interval: timedelta, max_rows: int) -> None:
        state = pickle.loads(resume) if resume is not None else []
        # snapshots hold TableRows, or a plain list when written by an older version
        self._table: str | None = state.table if isinstance(state, TableRows) else None
        self._pending: list[Any] = state.rows if isinstance(state, TableRows) else state
        self._interval = interval
        self._max_rows = max_rows
        self._due: datetime | None = _now() + interval if self._pending else None

    def on_batch(self, values: list[TableRows]) -> tuple[Iterable[list[Any]], bool]:
        for rows in values:
            self._table = rows.table
            self._pending += rows.rows
        if len(self._pending) >= self._max_rows:
            return self._emit(), self.RETAIN
        if self._due is None and self._pending:
            self._due = _now() + self._interval
        return [], self.RETAIN

    def notify_at(self) -> datetime | None:
        return self._due

    def on_notify(self) -> tuple[Iterable[list[Any]], bool]:
        return self._emit(), self.RETAIN

    def on_eof(self) -> tuple[Iterable[list[Any]], bool]:
        return self._emit(), self.RETAIN

    def snapshot(self) -> bytes:
        state = TableRows(self._table, self._pending) if self._table else self._pending
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def _emit(self) -> list[list[Any]]:
        rows, self._pending, self._due = self._pending, [], None
        return [rows] if rows else []


def restore_shard(snapshot: bytes, shards: int) -> Shard:
    """The `Shard` of an `aggregate` snapshot, refused if made under another shard count."""
    made_with: int
    shard: Shard
    made_with, shard = pickle.loads(snapshot)
    if made_with != shards:
        raise SettingsError(
            f"WRITECH_SHARDS is {shards}, but the recovery store holds state for {made_with} "
            f"shards: resume with WRITECH_SHARDS={made_with}, or start a new recovery store"
        )
    return shard


def _now() -> datetime:
    return datetime.now(UTC)


def _by_table(out: ShardOutput) -> list[tuple[str, TableRows]]:
    tables = (
        (STUDENT_DAILY_STATS.name, out.stats),
        (ANALYTICS_METRICS.name, out.metrics),
        (ERROR_RECORD, out.errors),
        (HOMEWORK_RESULT.name, out.homework),
        (DEAD_LETTER.name, out.dead_letters),
    )
    return [(table, TableRows(table, rows)) for table, rows in tables if rows]


def build_flow(settings: Settings, source: Source[RawBatch] | None = None) -> Dataflow:
    """The dataflow for `settings`; `source` overrides the configured input."""
    flow = Dataflow(FLOW_ID)
    raw = op.input("read", flow, source or stores.open_source(settings))
    decoder = EventDecoder(settings.tz, settings.future_skew, settings.max_message_bytes)
    # Decoding, the costliest step, happens in each shard's worker, so it is
    # spread over all workers even when one partition feeds them all.
    keyed = op.flat_map(
        "shard", raw, lambda batch: split_by_shard(settings.shards, batch, decoder.student_of)
    )
    flush_interval = timedelta(seconds=settings.flush_interval)

    def build_shard(resume: bytes | None) -> ShardLogic:
        shard = (
            restore_shard(resume, settings.shards)
            if resume is not None
            else Shard(settings.retention_days)
        )
        shard.retention_days = settings.retention_days
        return ShardLogic(shard, decoder, flush_interval, settings.shards)

    aggregated = op.stateful_batch("aggregate", keyed, build_shard)
    by_table = op.flat_map("by_table", aggregated, lambda pair: _by_table(pair[1]))

    def build_batcher(resume: bytes | None) -> RowBatcher:
        return RowBatcher(resume, flush_interval, settings.sink_batch_rows)

    batched = op.stateful_batch("batch_rows", by_table, build_batcher)

    def rows_of(table: str) -> Stream[list[Any]]:
        return op.filter_map(
            f"{table}_rows", batched, lambda pair: pair[1] if pair[0] == table else None
        )

    op.output(
        "write_stats",
        rows_of(STUDENT_DAILY_STATS.name),
        stores.clickhouse_sink(settings, STUDENT_DAILY_STATS),
    )
    op.output(
        "write_metrics",
        rows_of(ANALYTICS_METRICS.name),
        stores.clickhouse_sink(settings, ANALYTICS_METRICS),
    )
    op.output(
        "write_homework",
        rows_of(HOMEWORK_RESULT.name),
        stores.clickhouse_sink(settings, HOMEWORK_RESULT),
    )
    op.output("write_errors", rows_of(ERROR_RECORD), stores.error_record_sink(settings))
    dead = rows_of(DEAD_LETTER.name)
    op.output("write_dead_letters", dead, stores.clickhouse_sink(settings, DEAD_LETTER))
    for step_id, sink in stores.extra_dead_letter_sinks(settings):
        op.output(step_id, dead, sink)
    tune_gc()
    return flow


def tune_gc() -> None:
    """Make the garbage collector's full passes rare in a process that runs this flow.

    With the default thresholds the objects each batch allocates trigger
    collections so often that full ones (which walk all retained state)
    kept coming: up to a quarter of a Kafka run's CPU. The state holds no
    reference cycles, so rarer passes cost little memory; what was loaded
    before the run (modules, settings) is set aside for good.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
