"""The measured side of the benchmark: one configuration, in a process of its own.

    python -m benchmarks.child RESULT seed FILE [--batch-size N]
    python -m benchmarks.child RESULT floor FILE [--batch-size N] [--flush-every N]
    python -m benchmarks.child RESULT state FILE
    python -m benchmarks.child RESULT module MODULE [--preload M,...] -- ARG...
    python -m benchmarks.child RESULT count

Each writes a JSON object to RESULT: `started` and `finished` (epoch
seconds, so the runner can span several processes), `seconds` (the time
measured) and what the configuration counted. Modules a run needs are
imported before the clock starts: interpreter start-up is not part of
any figure. `benchmarks.run` starts these and reads RESULT.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import itertools
import logging
import pickle
import runpy
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from writech.aggregate import Shard, ShardOutput
from writech.events import EventDecoder, RawBatch
from writech.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# The system this product replaces, outside the project: read, never copied.
SEED = REPO.parent / "shared" / "seed" / "flink_processor.py"


def load_seed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flink_processor", SEED)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no seed processor at {SEED}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def line_batches(path: str, size: int) -> Iterator[list[bytes]]:
    """The file's non-blank lines, `size` at a time, without line endings."""
    with open(path, "rb") as lines:
        while chunk := list(itertools.islice(lines, size)):
            yield [line for line in (raw.rstrip(b"\r\n") for raw in chunk) if line.strip()]


def seed(path: str, batch_size: int) -> dict[str, Any]:
    """The seed's processor as its docstring drives it: parse, validate, process, flush per batch.

    Its log lines are switched off (they would be I/O); reading the file
    is not timed.
    """
    module = load_seed()
    logging.getLogger(module.logger.name).setLevel(logging.CRITICAL + 1)
    processor = module.FlinkETLProcessor({"batch_size": batch_size})
    seconds, written = 0.0, 0
    started = time.time()
    for batch in line_batches(path, batch_size):
        clock = time.perf_counter()
        for raw in batch:
            # a Flink string deserializer hands the processor text
            event = processor._parse_event(raw.decode("utf-8", "replace"))
            if processor._validate_event(event):
                processor.process_event(event)
        written += processor.flush_to_clickhouse()
        seconds += time.perf_counter() - clock
    stats = processor.get_pipeline_stats()
    return {
        "started": started,
        "finished": time.time(),
        "seconds": seconds,
        "parsed": stats["processed"],
        "dropped": stats["dropped"],
        "errors": stats["errors"],
        "rows_written": written,
    }


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


class Aggregation:
    """The product's shard, decode and aggregate steps as plain calls, state in `shards`."""

    def __init__(self) -> None:
        from writech.shards import split_by_shard  # imports Bytewax: not for every mode

        self.settings = settings = Settings()
        self.decoder = EventDecoder(settings.tz, settings.future_skew, settings.max_message_bytes)
        self.shards: dict[str, Shard] = {}
        self._split = split_by_shard

    def apply(self, batch: RawBatch) -> tuple[int, list[ShardOutput]]:
        """Dead letters of decoding, and each shard's output, for one batch."""
        dead, outputs = 0, []
        for key, group in self._split(self.settings.shards, batch, self.decoder.student_of):
            events, rejected = self.decoder.decode_batch(group)
            dead += len(rejected)
            shard = self.shards.get(key)
            if shard is None:
                shard = self.shards[key] = Shard(self.settings.retention_days)
            outputs.append(shard.apply(events))
        return dead, outputs

    def flush(self) -> int:
        return sum(len(shard.flush()) for shard in self.shards.values())


def floor(path: str, batch_size: int, flush_every: int) -> dict[str, Any]:
    """The product's own decode, validate and aggregate in a plain loop: no framework, no I/O.

    Every shard is flushed every `flush_every` batches, as the dataflow
    flushes each changed row once per flush interval; reading the file is
    not timed.
    """
    from writech.flow import tune_gc

    aggregation = Aggregation()
    tune_gc()  # as the product's processes run
    counts = dict.fromkeys(
        ("processed", "duplicates", "dead_lettered", "stats", "metrics", "errors"), 0
    )
    seconds = 0.0
    started = time.time()
    for number, batch in enumerate(raw_batches(path, batch_size), 1):
        clock = time.perf_counter()
        dead, outputs = aggregation.apply(batch)
        counts["dead_lettered"] += dead
        for out in outputs:
            counts["processed"] += out.processed
            counts["duplicates"] += out.duplicates
            counts["dead_lettered"] += len(out.dead_letters)
            counts["stats"] += len(out.stats)
            counts["metrics"] += len(out.metrics)
            counts["errors"] += len(out.errors)
        if number % flush_every == 0:
            counts["stats"] += aggregation.flush()
        seconds += time.perf_counter() - clock
    clock = time.perf_counter()
    counts["stats"] += aggregation.flush()
    seconds += time.perf_counter() - clock
    return {"started": started, "finished": time.time(), "seconds": seconds, **counts}


def state(path: str) -> dict[str, Any]:
    """Memory of the aggregation state after the whole file: in memory (tracemalloc) and pickled.

    Everything allocated while the file is decoded and aggregated and
    still alive afterwards is the state; the event-id part is measured on
    its own (sets of ints), the rest is the rows and their keys.
    """
    started = time.time()
    aggregation = Aggregation()
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for batch in raw_batches(path, 2000):
        aggregation.apply(batch)
    aggregation.flush()
    del batch
    aggregation.decoder._timestamps._minutes.clear()  # the decoder's cache is not state
    gc.collect()
    in_memory = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    shards = list(aggregation.shards.values())
    seen = [shard.seen for shard in shards]  # the lookup set, rebuilt from the days' arrays
    by_day = [day.ids for shard in shards for day in shard.days.values()]
    ids = sum(len(ids) for ids in seen)
    ids_memory = sum(sys.getsizeof(ids) + sum(map(sys.getsizeof, ids)) for ids in seen) + sum(
        map(sys.getsizeof, by_day)
    )
    rows = sum(shard.retained_rows for shard in shards)
    pickled = sum(len(pickle.dumps(shard, pickle.HIGHEST_PROTOCOL)) for shard in shards)
    ids_pickled = len(pickle.dumps(by_day, pickle.HIGHEST_PROTOCOL))
    return {
        "started": started,
        "finished": time.time(),
        "seconds": time.time() - started,
        "shards": len(shards),
        "retained_rows": rows,
        "retained_event_ids": ids,
        "memory_bytes": in_memory,
        "pickled_bytes": pickled,
        "memory_per_row": (in_memory - ids_memory) / rows,
        "memory_per_event_id": ids_memory / ids,
        "pickled_per_row": (pickled - ids_pickled) / rows,
        "pickled_per_event_id": ids_pickled / ids,
    }


def module(name: str, preload: list[str], args: list[str]) -> dict[str, Any]:
    """Run `python -m name args...` in this process, timed once `preload` is imported."""
    for module_name in preload:
        importlib.import_module(module_name)
    sys.argv = [name, *args]
    started = time.time()
    clock = time.perf_counter()
    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    seconds = time.perf_counter() - clock
    sys.stdout.flush()
    if code not in (0, None):
        raise SystemExit(f"python -m {name} {' '.join(args)} exited with {code}")
    return {"started": started, "finished": time.time(), "seconds": seconds}


def count() -> dict[str, Any]:
    """Rows per ClickHouse table (read with FINAL) in the store `WRITECH_*` configures."""
    from writech.schema import CLICKHOUSE_TABLES, DATABASE
    from writech.stores.base import open_clickhouse

    store = open_clickhouse(Settings.from_env())
    try:
        rows = {
            table.name: int(
                store.query(f"SELECT count() AS n FROM `{DATABASE}`.`{table.name}` FINAL")[0]["n"]
            )
            for table in CLICKHOUSE_TABLES
        }
    finally:
        store.close()
    return {"rows": rows}


class GcClock:
    """Time spent in Python's garbage collector, per generation (via gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def report(self) -> dict[str, Any]:
        return {
            "gc_seconds": round(sum(self.seconds), 3),
            "gc_seconds_by_generation": [round(value, 3) for value in self.seconds],
            "gc_collections_by_generation": self.collections,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("result", type=Path, help="where to write the JSON result")
    modes = parser.add_subparsers(dest="mode", required=True)
    seed_mode = modes.add_parser("seed")
    seed_mode.add_argument("file")
    seed_mode.add_argument("--batch-size", type=int, default=2000)
    floor_mode = modes.add_parser("floor")
    floor_mode.add_argument("file")
    floor_mode.add_argument("--batch-size", type=int, default=2000)
    floor_mode.add_argument("--flush-every", type=int, default=25)
    modes.add_parser("state").add_argument("file")
    module_mode = modes.add_parser("module")
    module_mode.add_argument("name")
    module_mode.add_argument("--preload", default="", help="comma-separated modules")
    module_mode.add_argument("args", nargs=argparse.REMAINDER)
    modes.add_parser("count")
    args = parser.parse_args(argv)
    collector = GcClock()
    if args.mode == "seed":
        result = seed(args.file, args.batch_size)
    elif args.mode == "floor":
        result = floor(args.file, args.batch_size, args.flush_every)
    elif args.mode == "state":
        result = state(args.file)
    elif args.mode == "module":
        arguments = args.args[1:] if args.args[:1] == ["--"] else args.args
        result = module(args.name, [m for m in args.preload.split(",") if m], arguments)
    else:
        result = count()
    args.result.write_bytes(msgspec.json.encode(result | collector.report()))


if __name__ == "__main__":
    main()
