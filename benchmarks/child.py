"""The measured side of the benchmark: one configuration, in a process of its own.

    python -m benchmarks.child RESULT seed FILE [--batch-size N]
    python -m benchmarks.child RESULT (floor|lean-floor|stages|state) FILE [--batch-size N] [--flush-every N]
    python -m benchmarks.child RESULT module MODULE [--preload M,...] [--timed M:F,...] -- ARG...
    python -m benchmarks.child RESULT count

Each writes a JSON object to RESULT: `started` and `finished` (epoch
seconds, so the runner can span several processes), `seconds` (the time
measured) and what the configuration counted. Modules a run needs are
imported before the clock starts: interpreter start-up is not part of
any figure. `benchmarks.run` starts these and reads RESULT.

`floor`, `lean-floor` and `stages` are the product's work as plain calls
(`benchmarks.floor`); `module` runs a product command in this process and
then reports the product's own counters (rows written per table, insert
times), and with `--timed` the duration of every call to the functions
named (e.g. `writech.shards:ShardLogic.on_batch`).
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import importlib.util
import itertools
import logging
import runpy
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

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
        "rows_flushed": written,
    }


def module(name: str, preload: list[str], args: list[str]) -> dict[str, Any]:
    """Run `python -m name args...` in this process, timed once `preload` is imported;
    then the product's counters as the run left them."""
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
    return {"started": started, "finished": time.time(), "seconds": seconds, **product_counters()}


def product_counters() -> dict[str, Any]:
    """What this process's run counted (`writech.counters`): messages, rows written per
    table, and the time of its inserts per table (sum and count)."""
    from writech import counters
    from writech.flow import WRITTEN_TABLES

    def value(name: str, **labels: str) -> float:
        return counters.value(name, **labels)

    names = [table.name for table in WRITTEN_TABLES]
    return {
        "messages_read": int(value("writech_messages_read_total")),
        "processed": int(value("writech_events_processed_total")),
        "duplicates": int(value("writech_events_duplicate_total")),
        "rows_written": {
            table: int(value("writech_rows_written_total", table=table)) for table in names
        },
        "insert_seconds": {
            table: round(value("writech_sink_batch_seconds_sum", table=table), 3) for table in names
        },
        "inserts": {
            table: int(value("writech_sink_batch_seconds_count", table=table)) for table in names
        },
    }


class CallTimes:
    """The duration of every call to the functions named (`module:Qualified.name`): wrapped
    in this process only, for the benchmark to say where a run's time goes."""

    def __init__(self, targets: list[str]) -> None:
        self.durations: dict[str, list[float]] = {}
        for target in targets:
            self._wrap(target)

    def _wrap(self, target: str) -> None:
        module_name, _, qualified = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, name = qualified.split(".")
        for part in path:
            owner = getattr(owner, part)
        original: Callable[..., Any] = getattr(owner, name)
        durations = self.durations.setdefault(target, [])

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                durations.append(time.perf_counter() - started)

        setattr(owner, name, timed)

    def report(self) -> dict[str, Any]:
        return {
            "call_seconds": {target: summary(times) for target, times in self.durations.items()}
        }


def summary(values: list[float]) -> dict[str, float]:
    """Count, total, median, 95th percentile and maximum of `values`."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "total": round(sum(ordered), 4),
        "p50": round(statistics.median(ordered), 6),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 6),
        "max": round(ordered[-1], 6),
    }


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
    # the seed at its fastest measured flush size (docs/benchmarks.md); the floors
    # in the product's batches, flushed every 50,000 messages (about one flush
    # interval of a replay)
    seed_mode.add_argument("--batch-size", type=int, default=2000)
    for name in PIPELINES:
        floor_mode = modes.add_parser(name)
        floor_mode.add_argument("file")
        floor_mode.add_argument("--batch-size", type=int, default=Settings().batch_size)
        floor_mode.add_argument(
            "--flush-every", type=int, help="batches (default: 50,000 messages)"
        )
    module_mode = modes.add_parser("module")
    module_mode.add_argument("name")
    module_mode.add_argument("--preload", default="", help="comma-separated modules")
    module_mode.add_argument("--timed", default="", help="comma-separated module:function")
    module_mode.add_argument("args", nargs=argparse.REMAINDER)
    modes.add_parser("count")
    args = parser.parse_args(argv)
    collector = GcClock()
    result: dict[str, Any]
    if args.mode == "seed":
        result = seed(args.file, args.batch_size)
    elif args.mode in PIPELINES:
        flush_every = args.flush_every or max(1, FLUSH_MESSAGES // args.batch_size)
        result = pipeline(args.mode, args.file, args.batch_size, flush_every)
    elif args.mode == "module":
        arguments = args.args[1:] if args.args[:1] == ["--"] else args.args
        calls = CallTimes([target for target in args.timed.split(",") if target])
        result = module(args.name, [m for m in args.preload.split(",") if m], arguments)
        result |= calls.report()
    else:
        result = count()
    args.result.write_bytes(msgspec.json.encode(result | collector.report()))


PIPELINES = ("floor", "lean-floor", "stages", "state")
FLUSH_MESSAGES = 50_000


def pipeline(mode: str, path: str, batch_size: int, flush_every: int) -> dict[str, Any]:
    """One of the plain-call modes (`benchmarks.floor`), in the product's GC setting."""
    from benchmarks import floor
    from writech.flow import tune_gc

    if mode == "state":
        return floor.state(path, batch_size, flush_every)
    kinds: dict[str, Callable[[Settings], floor.Pipeline]] = {
        "floor": floor.Floor,
        "lean-floor": floor.LeanFloor,
        "stages": floor.Stages,
    }
    runner = kinds[mode](Settings())
    tune_gc()  # as the product's processes run
    result = floor.run(runner, path, batch_size, flush_every)
    if isinstance(runner, floor.Stages):
        result |= runner.per_event(result["messages"])
    return result


if __name__ == "__main__":
    main()
