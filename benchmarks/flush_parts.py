"""What the flush interval costs ClickHouse: parts and merges per minute of a live flow (issue 13).

Runs the dataflow into an embedded store (chDB) at each flush interval in
turn, fed at a steady rate as a live Kafka topic would feed it (by default
1,000 events a second, 86 million a day, for 2 minutes, over 2 workers),
each run in a process of its own. chDB has no `system.part_log`, so the
tables keep their replaced parts (`old_parts_lifetime`) and `system.parts`
tells afterwards: a part of one block number was written by an insert,
one spanning several by a merge.

    .venv/bin/python benchmarks/flush_parts.py [--intervals 1,2,5,10] [--rate 1000] [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from writech.events import RawBatch


class Paced(FixedPartitionedSource[RawBatch, int]):
    """`messages` released at `rate` a second from the moment the flow starts, as a topic would."""

    def __init__(self, messages: list[bytes], rate: int) -> None:
        self.messages = messages
        self.rate = rate

    def list_parts(self) -> list[str]:
        return ["paced"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PacedPart:
        return _PacedPart(self.messages, self.rate)


class _PacedPart(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, messages: list[bytes], rate: int) -> None:
        self._messages = messages
        self._rate = rate
        self._started = time.monotonic()
        self._next = 0

    def next_batch(self) -> list[RawBatch]:
        if self._next >= len(self._messages):
            raise StopIteration
        due = min(int((time.monotonic() - self._started) * self._rate), len(self._messages))
        if due <= self._next:
            return []
        first, self._next = self._next, due
        now = time.time()
        return [
            RawBatch(
                "paced",
                0,
                list(range(first + 1, due + 1)),
                self._messages[first:due],
                produced_at=[now] * (due - first),
            )
        ]

    def next_awake(self) -> datetime:
        return datetime.now(UTC) + timedelta(milliseconds=100)

    def snapshot(self) -> int:
        return self._next


# An insert writes a part of one block number; a merge, one spanning the
# blocks of the parts it merged. (Levels cannot tell: a ReplacingMergeTree's
# inserted parts are written at level 1.)
_PARTS = """
SELECT table, countIf(min_block_number = max_block_number) AS inserted,
       countIf(min_block_number < max_block_number) AS merged,
       sumIf(rows, min_block_number < max_block_number) AS rows_merged, countIf(active) AS active
FROM system.parts WHERE database = 'writech' AND table != 'schema_version'
GROUP BY table ORDER BY table"""


def child(interval: float, data_dir: str, rate: int, seconds: int, workers: int) -> None:
    """One run: the flow at `interval`, then the parts it left, as JSON on stdout."""
    from bytewax.run import cli_main

    from writech.flow import build_flow, tune_gc
    from writech.generate import generate
    from writech.schema import CLICKHOUSE_TABLES
    from writech.settings import Settings
    from writech.stores.base import open_clickhouse

    settings = Settings(data_dir=data_dir, flush_interval=interval)
    store = open_clickhouse(settings)  # held open: the workers share its session
    for table in CLICKHOUSE_TABLES:
        store.command(f"ALTER TABLE writech.{table.name} MODIFY SETTING old_parts_lifetime = 86400")
    yesterday = date.today() - timedelta(days=1)
    messages = list(generate(rate * seconds, students=2000, days=1, start=yesterday, seed=5))
    flow = build_flow(settings, Paced(messages, rate))
    tune_gc()
    started = time.perf_counter()
    cli_main(flow, workers_per_process=workers)
    elapsed = time.perf_counter() - started
    time.sleep(5)  # merges the last inserts started
    parts = store.query(_PARTS)
    store.close()
    print(json.dumps({"seconds": elapsed, "parts": parts}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="1,2,5,10")
    parser.add_argument("--rate", type=int, default=1000, help="events a second")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data_dir, args.rate, args.seconds, args.workers)
        return

    print(f"{args.rate:,} events/s for {args.seconds} s, {args.workers} workers; per minute:")
    print(f"{'flush':>6} {'inserts':>8} {'merges':>7} {'rows merged':>12} {'active parts':>13}")
    for interval in map(float, args.intervals.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable, __file__, "--child", str(interval), "--data-dir", tmp,
                "--rate", str(args.rate), "--seconds", str(args.seconds),
                "--workers", str(args.workers),
            ]  # fmt: skip
            done = subprocess.run(command, check=True, capture_output=True, text=True)
        run: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        minutes = run["seconds"] / 60
        parts = run["parts"]
        inserted = sum(table["inserted"] for table in parts)
        merged = sum(table["merged"] for table in parts)
        rows_merged = sum(table["rows_merged"] for table in parts)
        active = sum(table["active"] for table in parts)
        print(f"{interval:>5.0f}s {inserted / minutes:>8.0f} {merged / minutes:>7.0f} "
              f"{rows_merged / minutes:>12,.0f} {active:>13}")  # fmt: skip
        for table in parts:
            print(f"{'':>8}{table['table']:<22} inserts {table['inserted'] / minutes:6.0f}/min, "
                  f"merges {table['merged'] / minutes:5.0f}/min, active {table['active']}")  # fmt: skip


if __name__ == "__main__":
    main()
