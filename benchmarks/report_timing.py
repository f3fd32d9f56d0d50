"""How long a class report takes on the embedded store (chDB + SQLite).

Generates one class (default 50 students over 30 days), replays it into a
temporary data directory, then times the report in-process, split into
reading the stores, building the model and rendering each format, and once
end to end as the `writech report` command (process start-up included).

    .venv/bin/python benchmarks/report_timing.py [--students 50] [--days 30]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from writech.generate import generate, write
from writech.reports import build, queries
from writech.reports.formats import FORMATS
from writech.reports.model import Period
from writech.reports.render import render
from writech.reports.service import open_stores
from writech.settings import Settings

T = TypeVar("T")


def timed(work: Callable[[], T], repeats: int) -> tuple[T, float]:
    """The result of `work` and its median time over `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-student-day", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    start = date.today() - timedelta(days=args.days + 10)
    period = Period(start, start + timedelta(days=args.days - 1))
    events = args.students * args.days * args.events_per_student_day
    with tempfile.TemporaryDirectory() as tmp:
        events_file, data_dir = Path(tmp) / "events.jsonl", Path(tmp) / "data"
        messages = generate(
            events=events,
            students=args.students,
            days=args.days,
            start=start,
            class_size=args.students,
        )
        write(messages, str(events_file))
        started = time.perf_counter()
        # the embedded stores only, whatever this shell's WRITECH_* settings say
        environment = {k: v for k, v in os.environ.items() if not k.startswith("WRITECH_")}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "writech",
                "replay",
                str(events_file),
                "--data-dir",
                str(data_dir),
                "-q",
            ],
            check=True,
            capture_output=True,
            env=environment | {"WRITECH_RETENTION_DAYS": str(args.days + 1)},
        )
        print(f"{events:,} events, {args.students} students, {args.days} days "
              f"(replayed in {time.perf_counter() - started:.1f} s)")  # fmt: skip

        with open_stores(Settings.from_env(data_dir=str(data_dir))) as stores:
            data, load = timed(
                lambda: queries.group_data(
                    stores.clickhouse, stores.error_store, "class_id", "class-0000", period
                ),
                args.repeats,
            )
            now = datetime.now(UTC)
            report, building = timed(
                lambda: build.build_class_report("class-0000", "school-000", data, now),
                args.repeats,
            )
            print(f"read the stores   {load * 1000:8.1f} ms  ({len(data.rows.daily):,} daily rows)")
            print(f"build the model   {building * 1000:8.1f} ms")
            rendering = {}
            for fmt in FORMATS:
                text, rendering[fmt] = timed(
                    functools.partial(render, report, fmt, "zh"), args.repeats
                )
                print(
                    f"render {fmt:<10} {rendering[fmt] * 1000:8.1f} ms  ({len(text) / 1024:,.0f} KiB)"
                )
            total = load + building + rendering["html"]
            print(f"in-process total  {total * 1000:8.1f} ms  (html)")

        command = [
            sys.executable, "-m", "writech", "report", "class", "class-0000",
            "--data-dir", str(data_dir), "--from", period.start.isoformat(),
            "--to", period.end.isoformat(), "--out", str(Path(tmp) / "class.html"),
        ]  # fmt: skip
        _, whole = timed(
            lambda: subprocess.run(command, check=True, capture_output=True, env=environment), 3
        )
        print(f"`writech report`  {whole * 1000:8.1f} ms  (a new process, start-up included)")


if __name__ == "__main__":
    main()
