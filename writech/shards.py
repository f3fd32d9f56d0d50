"""The `shard` and `aggregate` steps' logic: routing by student, and one `Shard` per state key.

Students hash (CRC-32 of the id) into `shards` state keys; each key's
state is a `writech.aggregate.Shard`. Messages travel to their shard's
worker still raw (`split_by_shard` reads only their student id) and are
decoded there: bytes cost next to nothing to send to another process,
decoded events a pickle each.

A shard's snapshot records the shard count it was made with: a resume
under another `WRITECH_SHARDS` would split students from their state, so
`restore_shard` refuses it.
"""

from __future__ import annotations

import functools
import pickle
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from bytewax.operators import StatefulBatchLogic
from msgspec import Struct, field

from writech import counters
from writech.aggregate import Shard, ShardOutput
from writech.batching import due, now
from writech.events import Event, EventDecoder, RawBatch
from writech.privacy import NO_REQUESTS, ForgetRequests, drop_forgotten, forget_in_state
from writech.rows import TableRows
from writech.schema import (
    ANALYTICS_METRICS,
    CLASS_MINUTE_STATS,
    DEAD_LETTER,
    ERROR_RECORD,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    STUDENT_MINUTE_STATS,
    DeadLetterRow,
    StudentMinuteRow,
)
from writech.settings import SettingsError
from writech.windows import ClassWindows, Contribution, StudentWindows

_REASON = DEAD_LETTER.column_names.index("reason")


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


class ShardState(NamedTuple):
    """What an `aggregate` snapshot holds."""

    shard: Shard
    windows: StudentWindows
    # the forget requests (`writech.privacy`) whose students this state has
    # dropped; in snapshots only once there is one, so that releases before
    # deletion on request still read them
    forgotten: frozenset[str] = frozenset()


class DecodedBatch(Struct, gc=False):
    """A batch's events for one shard, decoded before routing, and its dead letters."""

    events: list[Event]
    dead_letters: list[DeadLetterRow]


def decode_by_shard(
    shards: int, batch: RawBatch, decoder: EventDecoder
) -> list[tuple[str, DecodedBatch]]:
    """A batch decoded, then grouped by student's shard (dead letters under the shard of "").

    Within one process routing moves references, so decoding first spares the
    extra read of each message's student that raw routing needs
    (`split_by_shard`); between processes decoded events would each cost a
    pickle, so multi-process runs route raw.
    """
    events, dead = decoder.decode_batch(batch)
    groups: dict[str, DecodedBatch] = {}
    for event in events:
        key = shard_key(event.student_id, shards)
        group = groups.get(key)
        if group is None:
            group = groups[key] = DecodedBatch([], [])
        group.events.append(event)
    if dead:
        nobody = shard_key("", shards)
        groups.setdefault(nobody, DecodedBatch([], [])).dead_letters.extend(dead)
    return list(groups.items())


def restore_shard(snapshot: bytes, shards: int) -> ShardState:
    """The state of an `aggregate` snapshot, refused if made under another shard count."""
    made_with, *state = pickle.loads(snapshot)
    if made_with != shards:
        raise SettingsError(
            f"WRITECH_SHARDS is {shards}, but the recovery store holds state for {made_with} "
            f"shards: resume with WRITECH_SHARDS={made_with}, or start a new recovery store"
        )
    return ShardState(*state)


class StepOutput(ShardOutput):
    """A shard's output with its students' window rows and its contributions to classes' windows."""

    minutes: list[StudentMinuteRow] = field(default_factory=list)
    # by class: what this step's events add to the class's windows
    contributions: dict[str, list[Contribution]] = field(default_factory=dict)


def tables_of(out: StepOutput) -> list[tuple[str, TableRows]]:
    """A shard's output as one `TableRows` per table that has rows, keyed by table name."""
    return [
        (table.name, TableRows.from_rows(table, rows))
        for table, rows in (
            (STUDENT_DAILY_STATS, out.stats),
            (ANALYTICS_METRICS, out.metrics),
            (HOMEWORK_RESULT, out.homework),
            (ERROR_RECORD, out.errors),
            (DEAD_LETTER, out.dead_letters),
            (STUDENT_MINUTE_STATS, out.minutes),
        )
        if rows
    ]


def contributions_of(
    out: StepOutput,
) -> list[tuple[str, tuple[str, list[Contribution]]]]:
    """A shard's contributions to classes' windows, one item per class (for `class_windows`)."""
    return [(class_id, (class_id, found)) for class_id, found in out.contributions.items()]


class ShardLogic(StatefulBatchLogic[RawBatch | DecodedBatch, StepOutput, bytes]):
    """Bytewax glue around one `Shard` and its students' windows: decoding, flush timing, snapshots."""

    def __init__(
        self,
        shard: Shard,
        windows: StudentWindows,
        decoder: EventDecoder,
        flush_interval: timedelta,
        shards: int,
        requests: ForgetRequests = NO_REQUESTS,
        forgotten: frozenset[str] = frozenset(),
    ) -> None:
        self._shard = shard
        self._windows = windows
        self._requests = requests
        self._forgotten = forget_in_state(shard, windows, forgotten, requests)
        self._decoder = decoder
        self._shards = shards
        self._flush_interval = flush_interval
        self._next_flush = now() + flush_interval
        # what this shard last added to the process-wide state gauges
        self._rows_reported = 0
        self._ids_reported = 0

    def on_batch(self, values: list[RawBatch | DecodedBatch]) -> tuple[Iterable[StepOutput], bool]:
        events: list[Event] = []
        invalid: list[DeadLetterRow] = []
        for batch in values:
            if isinstance(batch, DecodedBatch):
                events += batch.events
                invalid += batch.dead_letters
            else:
                decoded, rejected = self._decoder.decode_batch(batch)
                events += decoded
                invalid += rejected
        if self._requests.before:
            events, invalid = drop_forgotten(events, invalid, self._requests)
        counted = self._shard.apply(events)
        too_late = self._windows.too_late
        contributions = self._windows.apply(counted.counted)
        counters.WINDOW_EVENTS_TOO_LATE.inc(self._windows.too_late - too_late)
        out = StepOutput(
            stats=counted.stats,
            metrics=counted.metrics,
            errors=counted.errors,
            dead_letters=invalid + counted.dead_letters,
            homework=counted.homework,
            processed=counted.processed,
            duplicates=counted.duplicates,
            contributions=contributions,
        )
        counters.PROCESSED.inc(out.processed)
        counters.DUPLICATES.inc(out.duplicates)
        for reason, count in Counter(row[_REASON] for row in out.dead_letters).items():
            counters.DEAD_LETTERED.labels(reason).inc(count)
        return [out], self.RETAIN

    def notify_at(self) -> datetime | None:
        if self._shard.dirty or self._windows.dirty:
            return due(self._next_flush, self._flush_interval)
        return None

    def on_notify(self) -> tuple[Iterable[StepOutput], bool]:
        self._next_flush = now() + self._flush_interval
        return self._flush(), self.RETAIN

    def on_eof(self) -> tuple[Iterable[StepOutput], bool]:
        return self._flush(), self.RETAIN

    def snapshot(self) -> bytes:
        # Pickled now: the state keeps changing after this returns.
        state: tuple[object, ...] = (self._shards, self._shard, self._windows)
        if self._forgotten:
            state += (self._forgotten,)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def _flush(self) -> list[StepOutput]:
        rows_retained, ids_retained = self._shard.retained_rows, self._shard.retained_event_ids
        counters.STATE_ROWS.inc(rows_retained - self._rows_reported)
        counters.STATE_EVENT_IDS.inc(ids_retained - self._ids_reported)
        self._rows_reported, self._ids_reported = rows_retained, ids_retained
        out = StepOutput(self._shard.flush(), [], [], [], minutes=self._windows.flush())
        return [out] if out.stats or out.minutes else []


class ClassWindowLogic(StatefulBatchLogic[tuple[str, list[Contribution]], TableRows, bytes]):
    """Bytewax glue around one class's `ClassWindows`: flush timing and snapshots."""

    def __init__(self, windows: ClassWindows, flush_interval: timedelta) -> None:
        self._windows = windows
        self._flush_interval = flush_interval
        self._next_flush = now() + flush_interval

    def on_batch(
        self, values: list[tuple[str, list[Contribution]]]
    ) -> tuple[Iterable[TableRows], bool]:
        for class_id, contributions in values:
            self._windows.apply(class_id, contributions)
        return [], self.RETAIN

    def notify_at(self) -> datetime | None:
        return due(self._next_flush, self._flush_interval) if self._windows.dirty else None

    def on_notify(self) -> tuple[Iterable[TableRows], bool]:
        self._next_flush = now() + self._flush_interval
        return self._flush(), self.RETAIN

    def on_eof(self) -> tuple[Iterable[TableRows], bool]:
        return self._flush(), self.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._windows, protocol=pickle.HIGHEST_PROTOCOL)

    def _flush(self) -> list[TableRows]:
        rows = self._windows.flush()
        return [TableRows.from_rows(CLASS_MINUTE_STATS, rows)] if rows else []
