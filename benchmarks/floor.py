"""The product's per-event work as plain calls, without Bytewax or stores: what the floor rows run.

- `Floor`: everything the dataflow does between reading a batch and writing
  rows, on the steps' own logic: routing and decoding (`decode_by_shard`, as
  one process routes), `ShardLogic` (`Shard.apply`, the students' minute
  windows, the counters), `ClassWindowLogic`, the columnar rows
  (`tables_of`) and `RowBatcher`, flushed as the dataflow flushes them.
- `LeanFloor`: decode, validate, dedup and aggregate only (`decode_by_shard`,
  `Shard.apply`, `Shard.flush`): what the floor was before the windows.
- `Stages`: the floor's work stage by stage, each stage timed with
  `time.perf_counter` around its call on a whole batch (never per event),
  so that each stage's cost per event is a number. Decoding is split into
  its steps by calling them in `EventDecoder.decode`'s order on every
  message of the batch; the events and dead letters that gives are checked
  against `EventDecoder.decode_batch` on the same batch (outside the
  clocks), so the stages do the product's work and nothing else.

Each one counts the rows every table receives, so rows per event can be
compared between them and with a replay.
"""

from __future__ import annotations

import gc
import itertools
import pickle
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final, cast

from writech.aggregate import Shard
from writech.batching import RowBatcher
from writech.events import (
    _SHARED_IDS_LIMIT,
    Event,
    EventDecoder,
    ExamScore,
    GradeResult,
    Invalid,
    RawBatch,
    _check_student,
    dedup_key_of,
    event_id_of,
)
from writech.frozen import Frozen
from writech.rows import TableRows
from writech.schema import (
    ANALYTICS_METRICS,
    CLASS_MINUTE_STATS,
    DEAD_LETTER,
    ERROR_RECORD,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    DeadLetterRow,
)
from writech.settings import Settings
from writech.shards import (
    ClassWindowLogic,
    ShardLogic,
    StepOutput,
    contributions_of,
    decode_by_shard,
    tables_of,
)
from writech.windows import ClassWindows, Contribution, StudentWindows

# The stages of `Stages`, in the order they run. The lean floor's work is the
# first ten; the rest is what the floor adds (windows, columns, batching).
DECODE_STAGES: Final = (
    "utf8",  # size limit, and the UTF-8 check of every non-ASCII message
    "msgspec",  # envelope and payload in one msgspec decode
    "timestamps",  # the timestamp and its local date, checked against produced_at
    "event id",  # an event without an id: the hash of its bytes
    "dedup key",  # the 64-bit hash of (student, event id)
    "event",  # the student and score checks, and the Event struct
    "dead letters",  # decode_batch on the messages a stage refused: diagnosis, dead-letter rows
)
LEAN_STAGES: Final = (*DECODE_STAGES, "routing", "aggregate", "flush")
WINDOW_STAGES: Final = ("windows", "class windows", "window flush")
STAGES: Final = (*LEAN_STAGES, *WINDOW_STAGES, "columnar", "batching")


def raw_batches(path: str, batch_size: int) -> Iterator[RawBatch]:
    """The file as the product's files source reads it, driven without Bytewax."""
    from writech.sources.files import JsonLinesSource

    reader = JsonLinesSource([path], batch_size).build_part("read", path, None)
    try:
        while True:
            try:
                yield from reader.next_batch()
            except StopIteration:
                return
    finally:
        reader.close()


def _decoder(settings: Settings) -> EventDecoder:
    return EventDecoder(settings.tz, settings.future_skew, settings.max_message_bytes)


class LeanFloor:
    """Decode, validate, dedup and aggregate: `decode_by_shard`, `Shard.apply`, `Shard.flush`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.decoder = _decoder(settings)
        self.shards: dict[str, Shard] = {}
        self.rows: Counter[str] = Counter()  # rows each table receives
        self.processed = self.duplicates = 0

    def apply(self, batch: RawBatch) -> None:
        rows = self.rows
        for key, group in decode_by_shard(self.settings.shards, batch, self.decoder):
            shard = self.shards.get(key)
            if shard is None:
                shard = self.shards[key] = Shard(self.settings.retention_days)
            out = shard.apply(group.events)
            self.processed += out.processed
            self.duplicates += out.duplicates
            rows[STUDENT_DAILY_STATS.name] += len(out.stats)
            rows[ANALYTICS_METRICS.name] += len(out.metrics)
            rows[HOMEWORK_RESULT.name] += len(out.homework)
            rows[ERROR_RECORD.name] += len(out.errors)
            rows[DEAD_LETTER.name] += len(group.dead_letters) + len(out.dead_letters)

    def flush(self) -> None:
        self.rows[STUDENT_DAILY_STATS.name] += sum(
            len(shard.flush()) for shard in self.shards.values()
        )

    def finish(self) -> None:
        self.flush()


class Floor:
    """The dataflow's steps from `shard` to `batch_rows` as plain calls on their own logic."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.decoder = _decoder(settings)
        self.interval = timedelta(seconds=settings.flush_interval)
        self.shards: dict[str, ShardLogic] = {}
        self.classes: dict[str, ClassWindowLogic] = {}
        self.batchers: dict[str, RowBatcher] = {}
        self.rows: Counter[str] = Counter()  # rows each table receives from `batch_rows`
        self.processed = self.duplicates = 0

    def apply(self, batch: RawBatch) -> None:
        settings = self.settings
        for key, group in decode_by_shard(settings.shards, batch, self.decoder):
            logic = self.shards.get(key)
            if logic is None:
                shard = Shard(settings.retention_days)
                windows = StudentWindows(settings.window_seconds, settings.lateness_seconds)
                logic = self.shards[key] = ShardLogic(
                    shard, windows, self.decoder, self.interval, settings.shards
                )
            self._route(logic.on_batch([group])[0])

    def flush(self) -> None:
        """What each step emits when its flush interval is up, in the dataflow's order."""
        for logic in self.shards.values():
            if logic.notify_at() is not None:
                self._route(logic.on_notify()[0])
        for windows in self.classes.values():
            if windows.notify_at() is not None:
                for rows in windows.on_notify()[0]:
                    self._batch(CLASS_MINUTE_STATS.name, rows)
        for batcher in self.batchers.values():
            self._count(batcher.on_notify()[0])

    def finish(self) -> None:
        """The end of the input: every step's `on_eof`, in the dataflow's order."""
        for logic in self.shards.values():
            self._route(logic.on_eof()[0])
        for windows in self.classes.values():
            for rows in windows.on_eof()[0]:
                self._batch(CLASS_MINUTE_STATS.name, rows)
        for batcher in self.batchers.values():
            self._count(batcher.on_eof()[0])

    def _route(self, outputs: Iterable[StepOutput]) -> None:
        """A shard's outputs on to `by_table` and `by_class`, as the dataflow sends them."""
        for out in outputs:
            self.processed += out.processed
            self.duplicates += out.duplicates
            for table, rows in tables_of(out):
                self._batch(table, rows)
            for class_id, contributions in contributions_of(out):
                windows = self.classes.get(class_id)
                if windows is None:
                    settings = self.settings
                    windows = self.classes[class_id] = ClassWindowLogic(
                        ClassWindows(settings.window_seconds, settings.lateness_seconds),
                        self.interval,
                    )
                windows.on_batch([contributions])

    def _batch(self, table: str, rows: TableRows) -> None:
        batcher = self.batchers.get(table)
        if batcher is None:
            batcher = self.batchers[table] = RowBatcher(
                None, self.interval, self.settings.sink_batch_rows
            )
        self._count(batcher.on_batch([rows])[0])

    def _count(self, emitted: Iterable[TableRows]) -> None:
        for rows in emitted:
            self.rows[rows.table.name] += len(rows)


class _Decoded:
    """Stands in for the decoder in `decode_by_shard`: hands it what the stages decoded,
    so that the routing stage times `decode_by_shard`'s grouping alone."""

    def __init__(self, events: list[Event], dead: list[DeadLetterRow]) -> None:
        self.events = events
        self.dead = dead

    def decode_batch(self, batch: RawBatch) -> tuple[list[Event], list[DeadLetterRow]]:
        return self.events, self.dead


class Stages:
    """The floor's work on the state's own parts, stage by stage, each timed per batch.

    `seconds` holds each stage's time, `total` the time of whole batches
    (the stages, and what runs between them: loops, lists, the clock).
    With `check`, every batch's decoding is compared with the product's
    `decode_batch` (outside the clocks).
    """

    def __init__(self, settings: Settings, check: bool = True) -> None:
        self.settings = settings
        self.check = check
        self.decoder = _decoder(settings)
        self.interval = timedelta(seconds=settings.flush_interval)
        self.shards: dict[str, Shard] = {}
        self.windows: dict[str, StudentWindows] = {}
        self.classes: dict[str, ClassWindows] = {}
        self.batchers: dict[str, RowBatcher] = {}
        self.rows: Counter[str] = Counter()
        self.processed = self.duplicates = 0
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.total = 0.0

    @contextmanager
    def _clock(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - started

    def apply(self, batch: RawBatch) -> None:
        started = time.perf_counter()
        events, dead = self._decode(batch)
        if self.check:
            paused = time.perf_counter()
            expected = self.decoder.decode_batch(batch)
            if (events, dead) != expected:
                raise AssertionError(
                    f"the stages decoded {batch.origin} otherwise than decode_batch"
                )
            started += time.perf_counter() - paused
        clock = self._clock
        with clock("routing"):
            groups = decode_by_shard(
                self.settings.shards, batch, cast(EventDecoder, _Decoded(events, dead))
            )
        with clock("aggregate"):
            counted = [(key, self._shard(key).apply(group.events), group) for key, group in groups]
        with clock("windows"):
            contributions = [self._windows(key).apply(out.counted) for key, out, _ in counted]
        self._contribute(contributions)
        with clock("columnar"):
            tables = [
                table
                for _, out, group in counted
                for table in tables_of(
                    StepOutput(
                        out.stats,
                        out.metrics,
                        out.errors,
                        group.dead_letters + out.dead_letters,
                        out.homework,
                    )
                )
            ]
        for _, out, _ in counted:
            self.processed += out.processed
            self.duplicates += out.duplicates
        self._batch(tables)
        self.total += time.perf_counter() - started

    def flush(self) -> None:
        started = time.perf_counter()
        clock = self._clock
        with clock("flush"):
            stats = [shard.flush() for shard in self.shards.values()]
        with clock("window flush"):
            minutes = [windows.flush() for windows in self.windows.values()]
            class_minutes = [windows.flush() for windows in self.classes.values()]
        with clock("columnar"):
            tables = [
                table
                for rows, more in zip(stats, minutes, strict=True)
                for table in tables_of(StepOutput(rows, [], [], [], minutes=more))
            ]
            tables += [
                (CLASS_MINUTE_STATS.name, TableRows.from_rows(CLASS_MINUTE_STATS, rows))
                for rows in class_minutes
                if rows
            ]
        self._batch(tables)
        with clock("batching"):
            emitted = [batcher.on_notify()[0] for batcher in self.batchers.values()]
        self._count(emitted)
        self.total += time.perf_counter() - started

    def finish(self) -> None:
        self.flush()

    def per_event(self, events: int) -> dict[str, Any]:
        """Each stage's µs per message read, the lean floor's and the floor's sums, the rest."""
        micros = {stage: self.seconds[stage] * 1e6 / events for stage in STAGES}
        lean = sum(micros[stage] for stage in LEAN_STAGES)
        every = sum(micros.values())
        return {
            "us_per_event": {stage: round(value, 3) for stage, value in micros.items()},
            "lean_stages_us": round(lean, 3),
            "windows_us": round(sum(micros[stage] for stage in WINDOW_STAGES), 3),
            "stages_us": round(every, 3),
            "between_stages_us": round(self.total * 1e6 / events - every, 3),
        }

    def _decode(self, batch: RawBatch) -> tuple[list[Event], list[DeadLetterRow]]:
        """`EventDecoder.decode_batch`, one step at a time over the whole batch."""
        decoder, clock = self.decoder, self._clock
        messages, offsets = batch.messages, batch.offsets
        clocks = batch.produced_at or [time.time()] * len(messages)
        limit = decoder.max_message_bytes
        with clock("utf8"):
            readable = [
                index
                for index, raw in enumerate(messages)
                if len(raw) <= limit and (raw.isascii() or _is_utf8(raw))
            ]
        with clock("msgspec"):
            decoded = []
            for index in readable:
                try:
                    message = decoder._messages.decode(messages[index])
                except (ValueError, RecursionError):  # msgspec's DecodeError is a ValueError
                    continue
                if message.student_id and message.timestamp:
                    decoded.append((index, message))
        with clock("timestamps"):
            timed = []
            for index, message in decoded:
                try:
                    timed.append(
                        (index, message, decoder._event_time(message.timestamp, clocks[index]))
                    )
                except Invalid:
                    continue
        with clock("event id"):
            ids = [message.event_id or event_id_of(messages[index]) for index, message, _ in timed]
        with clock("dedup key"):
            keys = [
                dedup_key_of(message.student_id, event_id)
                for (_, message, _), event_id in zip(timed, ids, strict=True)
            ]
        with clock("event"):
            events: dict[int, Event] = {}
            origin, partition = batch.origin, batch.partition
            shared = decoder._ids  # the decoder's shared ids
            for (index, message, (time_us, day)), event_id, key in zip(
                timed, ids, keys, strict=True
            ):
                payload = message.payload
                try:
                    _check_student(message.student_id)
                except Invalid:
                    continue
                if (
                    isinstance(payload, GradeResult | ExamScore)
                    and payload.score > payload.total_score
                ):
                    continue
                student_id, class_id, school_id = (
                    message.student_id, message.class_id, message.school_id,
                )  # fmt: skip
                if len(shared) >= _SHARED_IDS_LIMIT:
                    shared.clear()
                events[index] = Event(
                    event_id, key, shared.setdefault(student_id, student_id),
                    shared.setdefault(class_id, class_id), shared.setdefault(school_id, school_id),
                    time_us, day, payload, origin, partition, offsets[index], messages[index],
                    clocks[index],
                )  # fmt: skip
        with clock("dead letters"):
            # the messages a stage refused, decoded again as the product diagnoses them
            refused = [index for index in range(len(messages)) if index not in events]
            dead = decoder.decode_batch(
                RawBatch(
                    origin,
                    partition,
                    [offsets[index] for index in refused],
                    [messages[index] for index in refused],
                    batch.rejected,
                    [clocks[index] for index in refused],
                )
            )[1]
        return list(events.values()), dead

    def _shard(self, key: str) -> Shard:
        shard = self.shards.get(key)
        if shard is None:
            shard = self.shards[key] = Shard(self.settings.retention_days)
        return shard

    def _windows(self, key: str) -> StudentWindows:
        windows = self.windows.get(key)
        if windows is None:
            settings = self.settings
            windows = self.windows[key] = StudentWindows(
                settings.window_seconds, settings.lateness_seconds
            )
        return windows

    def _contribute(self, contributions: list[dict[str, list[Contribution]]]) -> None:
        with self._clock("class windows"):
            for by_class in contributions:
                for class_id, found in by_class.items():
                    windows = self.classes.get(class_id)
                    if windows is None:
                        settings = self.settings
                        windows = self.classes[class_id] = ClassWindows(
                            settings.window_seconds, settings.lateness_seconds
                        )
                    windows.apply(class_id, found)

    def _batch(self, tables: list[tuple[str, TableRows]]) -> None:
        with self._clock("batching"):
            emitted = []
            for table, rows in tables:
                batcher = self.batchers.get(table)
                if batcher is None:
                    batcher = self.batchers[table] = RowBatcher(
                        None, self.interval, self.settings.sink_batch_rows
                    )
                emitted.append(batcher.on_batch([rows])[0])
        self._count(emitted)

    def _count(self, emitted: list[Iterable[TableRows]]) -> None:
        for rows in itertools.chain.from_iterable(emitted):
            self.rows[rows.table.name] += len(rows)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


Pipeline = LeanFloor | Floor | Stages


def run(pipeline: Pipeline, path: str, batch_size: int, flush_every: int) -> dict[str, Any]:
    """Feed the file to `pipeline`, flushing every `flush_every` batches; the time it took.

    Reading the file is not timed. The flushes stand for the dataflow's
    flush interval: at the replay's speed, 50,000 messages (the child's
    default) take about one interval of 2 s.
    """
    seconds, messages = 0.0, 0
    started = time.time()
    for number, batch in enumerate(raw_batches(path, batch_size), 1):
        messages += len(batch.messages) + len(batch.rejected)
        clock = time.perf_counter()
        pipeline.apply(batch)
        if number % flush_every == 0:
            pipeline.flush()
        seconds += time.perf_counter() - clock
    clock = time.perf_counter()
    pipeline.finish()
    seconds += time.perf_counter() - clock
    return {
        "started": started,
        "finished": time.time(),
        "seconds": seconds,
        "messages": messages,
        "processed": pipeline.processed,
        "duplicates": pipeline.duplicates,
        "rows_written": dict(sorted(pipeline.rows.items())),
    }


def state(path: str, batch_size: int, flush_every: int) -> dict[str, Any]:
    """Memory of the state after the whole file: in memory (tracemalloc) and pickled.

    Everything allocated while the file goes through the floor's work and
    still alive afterwards is the state. The windows' part is what dropping
    them frees (the classes', then the students'); the event ids' part is
    measured on its own (`Identities` and the days' arrays); the rest is the daily
    rows and their keys (a cold date's bytes, identities included).
    """
    started = time.time()
    pipeline = Stages(Settings(), check=False)
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for number, batch in enumerate(raw_batches(path, batch_size), 1):
        pipeline.apply(batch)
        if number % flush_every == 0:
            pipeline.flush()
    pipeline.finish()
    del batch
    timestamps = pipeline.decoder._timestamps  # its caches are not state
    timestamps._minutes.clear()
    timestamps._around_seconds.clear()

    def in_memory() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - baseline

    total = in_memory()
    shards, windows, classes = (
        list(pipeline.shards.values()),
        list(pipeline.windows.values()),
        list(pipeline.classes.values()),
    )
    pickled = {
        "shards": _pickled_size(shards),
        "windows": _pickled_size(windows),
        "classes": _pickled_size(classes),
    }
    # the bytes live parts keep for snapshots are not state (a cold hour's are)
    parts: list[Frozen] = [day for shard in shards for day in shard.days.values()]
    parts += [hour for part in windows for hour in part.hours.values()]
    parts += [hour for part in classes for hour in part.hours.values()]
    for live in parts:
        live.thaw()
    del parts  # the windows' memory is what dropping them frees: no reference may stay
    student_windows = sum(1 for part in windows for _ in part.window_keys())
    class_windows = sum(1 for part in classes for _ in part.window_starts())
    pipeline.classes.clear()
    del classes
    without_classes = in_memory()
    pipeline.windows.clear()
    del windows
    rows_memory = in_memory()
    tracemalloc.stop()
    lookups = [shard.identities for shard in shards]  # rebuilt from the days' arrays
    # a cold date keeps its array too, and its bytes hold the identities again
    # (8 B each): those are counted with the rows, whose snapshot they are part of
    by_day = [day.ids for shard in shards for day in (*shard.days.values(), *shard.cold.values())]
    ids = sum(map(len, lookups))
    ids_memory = sum(map(sys.getsizeof, lookups)) + sum(map(sys.getsizeof, by_day))
    rows = sum(shard.retained_rows for shard in shards)
    ids_pickled = len(pickle.dumps(by_day, pickle.HIGHEST_PROTOCOL))
    return {
        "started": started,
        "finished": time.time(),
        "seconds": time.time() - started,
        "shards": len(shards),
        "retained_rows": rows,
        "retained_event_ids": ids,
        "retained_student_windows": student_windows,
        "retained_class_windows": class_windows,
        "memory_bytes": total,
        "pickled_bytes": sum(pickled.values()),
        "memory_per_row": (rows_memory - ids_memory) / rows,
        "memory_per_event_id": ids_memory / ids,
        "memory_per_student_window": (without_classes - rows_memory) / max(student_windows, 1),
        "memory_per_class_window": (total - without_classes) / max(class_windows, 1),
        "pickled_per_row": (pickled["shards"] - ids_pickled) / rows,
        "pickled_per_event_id": ids_pickled / ids,
        "pickled_per_student_window": pickled["windows"] / max(student_windows, 1),
        "pickled_per_class_window": pickled["classes"] / max(class_windows, 1),
    }


def _pickled_size(parts: list[Any]) -> int:
    return sum(len(pickle.dumps(part, pickle.HIGHEST_PROTOCOL)) for part in parts)
