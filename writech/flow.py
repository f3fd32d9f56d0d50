"""The Bytewax dataflow: wiring of `writech`'s logic to sources and stores, nothing more.

    read ─ shard ─ aggregate ─┬─ by_table ──────────────────┬─ batch_rows ─┬─ write_stats
                              └─ by_class ─ class_windows ─┘              ├─ write_metrics
                                                                          ├─ write_homework
                                                                          ├─ write_errors
                                                                          ├─ write_minutes
                                                                          ├─ write_class_minutes
                                                                          └─ write_dead_letters
                                                                             (+ Kafka topic)

Items are batches, never single events: Bytewax's cost is per item.
`shard` routes raw messages to their student's shard (`writech.shards`),
`aggregate` decodes and counts them there (daily rows and students'
minute windows), `by_table` turns each output into columns per table,
`class_windows` counts the shards' contributions per class (`writech.windows`),
and `batch_rows` (`writech.batching`) gathers a table's rows into few,
large inserts through `writech.stores.sink`.

Step ids are part of the recovery state: `read` keeps input positions,
`aggregate` the shards and their windows, `class_windows` the classes'
windows and `batch_rows` the rows not yet written.
Renaming any of them, or the flow id `writech`, makes a resume start
those steps from nothing. Do not rename them.
"""

from __future__ import annotations

import gc
import pickle
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, Source

from writech.aggregate import Shard
from writech.batching import RowBatcher
from writech.events import EventDecoder, RawBatch
from writech.frozen import WithoutSnapshots
from writech.privacy import ForgetRequests, read_forget_requests, without_forgotten
from writech.rows import TableRows
from writech.schema import (
    ANALYTICS_METRICS,
    CLASS_MINUTE_STATS,
    DEAD_LETTER,
    ERROR_RECORD,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    STUDENT_MINUTE_STATS,
    Table,
)
from writech.settings import Settings
from writech.shards import (
    ClassWindowLogic,
    DecodedBatch,
    ShardLogic,
    contributions_of,
    decode_by_shard,
    restore_shard,
    split_by_shard,
    tables_of,
)
from writech.sources import StoppableSource, open_source
from writech.stores.base import open_clickhouse, open_error_store
from writech.stores.sink import RowsSink
from writech.windows import ClassWindows, StudentWindows

FLOW_ID = "writech"
# Young-generation threshold of the garbage collector (CPython's default: 700).
GC_THRESHOLD = 100_000

# The output steps, by table.
_WRITE_STEPS = (
    ("write_stats", STUDENT_DAILY_STATS),
    ("write_metrics", ANALYTICS_METRICS),
    ("write_homework", HOMEWORK_RESULT),
    ("write_errors", ERROR_RECORD),
    ("write_dead_letters", DEAD_LETTER),
    ("write_minutes", STUDENT_MINUTE_STATS),
    ("write_class_minutes", CLASS_MINUTE_STATS),
)
# What a run writes, in the order its summary shows them.
WRITTEN_TABLES = tuple(table for _, table in _WRITE_STEPS)


def build_flow(
    settings: Settings,
    source: Source[RawBatch] | None = None,
    *,
    single_process: bool = False,
    recovery: bool = True,
) -> Dataflow:
    """The dataflow for `settings`; `source` overrides the configured input.

    `single_process`: the flow runs in one process (any number of workers),
    so messages are decoded before they are routed to their shard (cheaper
    there); otherwise they travel raw, to be decoded by their shard's worker.
    Either way the state and results are the same. `recovery=False`: the run
    has no recovery store, so the stateful steps make no snapshots.
    """
    keep: Callable[[Any], Any] = (lambda logic: logic) if recovery else WithoutSnapshots
    flow = Dataflow(FLOW_ID)
    source = source or open_source(settings)
    if isinstance(source, FixedPartitionedSource):
        source = StoppableSource(source)  # SIGTERM, Ctrl-C: a clean stop at the next batch
    raw = op.input("read", flow, source)
    decoder = EventDecoder(settings.tz, settings.future_skew, settings.max_message_bytes)
    keyed: Stream[tuple[str, RawBatch | DecodedBatch]]
    if single_process:
        keyed = op.flat_map(
            "shard", raw, lambda batch: decode_by_shard(settings.shards, batch, decoder)
        )
    else:
        # Decoding, the costliest step, happens in each shard's worker, so it
        # is spread over all processes even when one partition feeds them all.
        keyed = op.flat_map(
            "shard", raw, lambda batch: split_by_shard(settings.shards, batch, decoder.student_of)
        )
    flush_interval = timedelta(seconds=settings.flush_interval)
    requests = _forget_requests(settings)

    def build_shard(resume: bytes | None) -> ShardLogic:
        if resume is None:
            shard = Shard(settings.retention_days)
            windows = StudentWindows(settings.window_seconds, settings.lateness_seconds)
            forgotten: frozenset[str] = frozenset()
        else:
            shard, windows, forgotten = restore_shard(resume, settings.shards)
        shard.retention_days = settings.retention_days
        windows.lateness = settings.lateness_seconds
        return ShardLogic(
            shard, windows, decoder, flush_interval, settings.shards, requests, forgotten
        )

    aggregated = op.stateful_batch("aggregate", keyed, lambda resume: keep(build_shard(resume)))
    by_table = op.flat_map("by_table", aggregated, lambda pair: tables_of(pair[1]))
    by_class = op.flat_map("by_class", aggregated, lambda pair: contributions_of(pair[1]))

    def build_class(resume: bytes | None) -> ClassWindowLogic:
        windows = (
            pickle.loads(resume)
            if resume is not None
            else ClassWindows(settings.window_seconds, settings.lateness_seconds)
        )
        windows.lateness = settings.lateness_seconds
        return ClassWindowLogic(windows, flush_interval)

    class_rows = op.stateful_batch(
        "class_windows", by_class, lambda resume: keep(build_class(resume))
    )
    class_tables = op.map("class_rows", class_rows, lambda pair: (CLASS_MINUTE_STATS.name, pair[1]))
    batched = op.stateful_batch(
        "batch_rows",
        op.merge("all_rows", by_table, class_tables),
        lambda resume: keep(
            RowBatcher(
                without_forgotten(resume, requests), flush_interval, settings.sink_batch_rows
            )
        ),
    )

    def rows_of(table: Table) -> Stream[TableRows]:
        return op.filter_map(
            f"{table.name}_rows", batched, lambda pair: pair[1] if pair[0] == table.name else None
        )

    for step_id, table in _WRITE_STEPS:
        open_store = open_error_store if table is ERROR_RECORD else open_clickhouse
        rows = rows_of(table)
        op.output(step_id, rows, RowsSink(table.name, partial(open_store, settings)))
        if table is DEAD_LETTER and settings.source == "kafka" and settings.kafka_dlq_topic:
            from writech.stores.kafka import DeadLetterTopic

            op.output(
                "write_dead_letter_topic",
                rows,
                RowsSink("dead_letter_topic", lambda: DeadLetterTopic(settings)),
            )
    return flow


def _forget_requests(settings: Settings) -> ForgetRequests:
    """The deletion requests made so far (`writech forget`): the flow forgets their
    students' state and the messages produced before them."""
    store = open_clickhouse(settings)
    try:
        return read_forget_requests(store)
    finally:
        store.close()


def tune_gc() -> None:
    """Make the garbage collector's full passes rare in a process that runs the flow.

    Called by the entry points (`writech replay`, `writech.dataflow`), not by
    `build_flow`: it changes the whole process. With the default thresholds
    the objects each batch allocates trigger collections so often that full
    ones (which walk all retained state) kept coming: up to a quarter of a
    Kafka run's CPU. The state holds no reference cycles, so rarer passes
    cost little memory; what was loaded before the run is set aside for good.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
