"""Throughput, memory and latency of every configuration, on the same data, in one run.

    .venv/bin/python -m benchmarks.run [--events N] [--only NAME,...] [--publish]

Generates the workloads with `writech generate` (kept under the results
folder and reused, since generation is deterministic), then runs each
configuration in a process of its own (`benchmarks.child`), reading its
peak RSS from the kernel (wait4) and its run time from the child (modules
imported before the clock starts). Then the floor's stage breakdown, the
state's memory and the live latency from Kafka (`benchmarks.latency`).
Prints a table, the rows each table receives per event, the stages, the
ratios and the targets, and writes `benchmarks/results/benchmarks.json`, an
SVG chart and `tables.md` (the figures as docs/benchmarks.md's tables, with
`--before`'s beside them); `--publish` also writes the JSON and the chart
to docs/. docs/benchmarks.md explains every row.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import latency as live
from benchmarks.child import SEED
from benchmarks.floor import STAGES
from benchmarks.services import (
    cpu_by_process,
    cpu_by_service,
    free_port,
    machine_busy_seconds,
    servers,
)
from benchmarks.tables import markdown

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs"
MIB = 1024 * 1024

# What each product configuration imports anyway, loaded before its clock starts.
_EMBEDDED = "writech.flow,writech.stores.chdb,writech.stores.sqlite"
_SERVERS = "writech.flow,writech.stores.clickhouse,writech.stores.mysql"
_KAFKA = "writech.sources.kafka,writech.stores.kafka,bytewax.connectors.kafka"


@dataclass(frozen=True)
class Workload:
    name: str
    events: int
    students: int
    days: int
    start: date
    malformed: float
    duplicates: float
    large: float
    path: Path

    def generate(self) -> None:
        """Write the file with `writech generate`, unless an earlier run already did."""
        if self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        subprocess.run(
            [sys.executable, "-m", "writech", "generate", "--events", str(self.events),
             "--students", str(self.students), "--days", str(self.days),
             "--start", self.start.isoformat(), "--malformed", str(self.malformed),
             "--duplicates", str(self.duplicates), "--large", str(self.large),
             "--out", str(partial)],
            check=True,
            cwd=REPO,
        )  # fmt: skip
        partial.rename(self.path)


@dataclass
class Result:
    name: str
    workload: str
    events: int
    processes: int
    seconds: float  # the run, as the child(ren) timed it
    peak_rss_mib: float  # the largest process
    total_rss_mib: float  # all processes together
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": CONFIGURATIONS[self.name],
            "workload": self.workload,
            "processes": self.processes,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "total_rss_mib": round(self.total_rss_mib, 1),
            "detail": self.detail,
        }


class Bench:
    """Runs configurations as child processes and collects their results."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.results: list[Result] = []
        self.notes: list[str] = []
        self._environment = {
            name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")
        }

    def run(
        self,
        name: str,
        workload: Workload,
        commands: Sequence[Sequence[str]],
        env: dict[str, str] | None = None,
        services: Sequence[str] = (),
    ) -> Result:
        """Run `commands` (child arguments after RESULT) side by side; one row of the table.

        `services` names the services (see `services.ROLES`) the configuration uses:
        their CPU is reported apart from other users'.
        """
        print(f"-- {name} ({workload.name}) ...", file=sys.stderr, flush=True)
        environment = {**self._environment, **(env or {})}
        outputs = [self.folder / f"{name}-{number}.json" for number in range(len(commands))]
        logs = [self.folder / f"{name}-{number}.log" for number in range(len(commands))]
        processes = []
        busy, wall, before = machine_busy_seconds(), time.monotonic(), cpu_by_process()
        for command, output, log in zip(commands, outputs, logs, strict=True):
            with log.open("wb") as stream:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "benchmarks.child", str(output), *command],
                        cwd=REPO,
                        env=environment,
                        stdout=stream,
                        stderr=subprocess.STDOUT,
                    )
                )
        rss, cpu = [], []
        failed = []
        for process, log in zip(processes, logs, strict=True):
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            rss.append(usage.ru_maxrss * 1024 / MIB)  # ru_maxrss is in KiB on Linux
            cpu.append(round(usage.ru_utime + usage.ru_stime, 2))
            if process.returncode:
                failed.append(f"exit {process.returncode}, log {log}:\n{_tail(log)}")
        wall, busy = time.monotonic() - wall, machine_busy_seconds() - busy
        by_service = cpu_by_service(before, services)
        if failed:
            raise RuntimeError(f"{name} failed: " + "\n".join(failed))
        reports = [msgspec.json.decode(output.read_bytes()) for output in outputs]
        started = min(report["started"] for report in reports)
        finished = max(report["finished"] for report in reports)
        seconds = reports[0]["seconds"] if len(reports) == 1 else finished - started
        detail = merged(
            [
                {key: value for key, value in report.items() if key not in _TIMES}
                for report in reports
            ]
        )
        # CPU over the measured processes' lifetimes: theirs, the services',
        # and what the rest of the machine (other users) took of the cores.
        detail |= {
            "wall_seconds": round(wall, 2),
            "cpu_seconds": round(sum(cpu), 2),
            "cpu_seconds_per_process": cpu,
            "machine_busy_seconds": round(busy, 2),
            "cpu_seconds_by_service": by_service,
            "cpu_seconds_other": round(busy - sum(cpu) - sum(by_service.values()), 2),
            "load_average": os.getloadavg()[0],
        }
        result = Result(name, workload.name, workload.events, len(commands), seconds, max(rss),
                        sum(rss), detail)  # fmt: skip
        self.results.append(result)
        print(f"   {result.events_per_second:,.0f} events/s, peak RSS {result.peak_rss_mib:,.0f} MiB",
              file=sys.stderr, flush=True)  # fmt: skip
        return result

    def count_rows(self, result: Result, env: dict[str, str]) -> None:
        """Note the rows each ClickHouse table holds after a product configuration."""
        output = self.folder / f"{result.name}-rows.json"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.child", str(output), "count"],
            cwd=REPO,
            env={**self._environment, **env},
            check=True,
        )
        result.detail["rows"] = msgspec.json.decode(output.read_bytes())["rows"]

    def find(self, name: str) -> Result | None:
        return next((result for result in self.results if result.name == name), None)


_TIMES = ("started", "finished", "seconds")


def merged(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The first process's report, with what each process counted summed over all of them."""
    detail = dict(reports[0])
    for report in reports[1:]:
        for key, value in report.items():
            if isinstance(value, int | float) and key in _SUMMED:
                detail[key] = detail.get(key, 0) + value
            elif isinstance(value, dict) and key in _SUMMED:
                totals = dict(detail.get(key, {}))
                for name, amount in value.items():
                    totals[name] = totals.get(name, 0) + amount
                detail[key] = totals
    return detail


# What each process of a run counts for itself (`benchmarks.child.product_counters`).
_SUMMED = ("messages_read", "processed", "duplicates", "rows_written", "insert_seconds", "inserts")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def module(name: str, preload: str, *args: str) -> list[str]:
    """Child arguments running `python -m name args...` after importing `preload`."""
    return ["module", "--preload", preload, name, "--", *args]


# -- the configurations --------------------------------------------------------


def seed(bench: Bench, workload: Workload, suffix: str = "") -> None:
    if SEED.exists():
        bench.run(f"seed{suffix}", workload, [["seed", str(workload.path)]])
    else:
        bench.notes.append(
            f"seed{suffix}: left out, ../shared/seed/flink_processor.py "
            "(relative to the repo root) is absent"
        )


def floor(bench: Bench, workload: Workload, suffix: str = "", lean: bool = False) -> None:
    name = "lean-floor" if lean else "floor"
    bench.run(f"{name}{suffix}", workload, [[name, str(workload.path)]])


def replay(bench: Bench, workload: Workload, suffix: str = "") -> None:
    data = bench.folder / f"replay{suffix}-data"
    shutil.rmtree(data, ignore_errors=True)
    result = bench.run(
        f"replay{suffix}",
        workload,
        [module("writech", _EMBEDDED, "replay", str(workload.path), "--data-dir", str(data), "-q")],
    )
    bench.count_rows(result, {"WRITECH_DATA_DIR": str(data)})


def recovery(bench: Bench, workload: Workload) -> None:
    """Replay with a recovery store, snapshotting every 10 s."""
    data, store = bench.folder / "recovery-data", bench.folder / "recovery-store"
    for folder in (data, store):
        shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "writech", "recovery", "init", "--dir", str(store)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    result = bench.run(
        "recovery",
        workload,
        [module("writech", _EMBEDDED, "replay", str(workload.path), "--data-dir", str(data),
                "-q", "-r", str(store), "-s", "10")],
    )  # fmt: skip
    bench.count_rows(result, {"WRITECH_DATA_DIR": str(data)})


KAFKA = {"kafka-embedded", "kafka-1p", "kafka-2p"}


def kafka(bench: Bench, workload: Workload, wanted: set[str]) -> None:
    """From a 3-partition Tansu topic: one process into the embedded stores, and one and
    two processes into the same kind of server stores (fresh ones each)."""
    from tests.services.kafka import TansuBroker, create_topic, produce

    broker = TansuBroker(bench.folder / "tansu.log")
    broker.start()
    try:
        # A fixed name: Bytewax assigns partitions to workers by their names,
        # so every run splits the work between processes the same way.
        topic = create_topic(broker.bootstrap, "writech-bench-events", 3)
        print(f"-- producing {workload.events:,} messages to {topic} ...", file=sys.stderr)
        with workload.path.open("rb") as lines:
            produce(broker.bootstrap, topic, [line.rstrip(b"\n") for line in lines])
        base = {
            "WRITECH_SOURCE": "kafka",
            "WRITECH_KAFKA_BROKERS": broker.bootstrap,
            "WRITECH_KAFKA_TOPICS": topic,
            "WRITECH_KAFKA_STOP_AT_END": "true",
        }
        if "kafka-embedded" in wanted:
            data = bench.folder / "kafka-embedded-data"
            shutil.rmtree(data, ignore_errors=True)
            env = {
                **base,
                "WRITECH_DATA_DIR": str(data),
                "WRITECH_KAFKA_DLQ_TOPIC": f"{topic}-dlq-0",
            }
            preload = f"{_EMBEDDED},{_KAFKA}"
            result = bench.run(
                "kafka-embedded",
                workload,
                [module("bytewax.run", preload, "dataflow")],
                env,
                ["kafka broker"],
            )
            bench.count_rows(result, env)
        for processes in (1, 2):
            if f"kafka-{processes}p" not in wanted:
                continue
            with servers(bench.folder / f"kafka-{processes}p") as stores:
                env = {
                    **base,
                    **stores.env,
                    "WRITECH_KAFKA_DLQ_TOPIC": f"{topic}-dlq-{processes}",
                }
                hostfile = bench.folder / f"kafka-{processes}p" / "hosts.txt"
                hostfile.write_text("".join(f"127.0.0.1:{free_port()}\n" for _ in range(2)))
                env["BYTEWAX_HOSTFILE_PATH"] = str(hostfile)
                arguments = [["-i", str(number)] for number in range(processes)]
                commands = [
                    module("bytewax.run", f"{_SERVERS},{_KAFKA}", "dataflow", *extra)
                    for extra in (arguments if processes > 1 else [[]])
                ]
                result = bench.run(
                    f"kafka-{processes}p",
                    workload,
                    commands,
                    env,
                    ["kafka broker", "clickhouse fixture", "mariadb"],
                )
                bench.count_rows(result, env)
    finally:
        broker.stop()


def extra(bench: Bench, workload: Workload, mode: str) -> dict[str, Any]:
    """A plain-call mode of `benchmarks.child` that is not a throughput row (`stages`, `state`)."""
    output = bench.folder / f"{mode}.json"
    print(f"-- {mode} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "benchmarks.child", str(output), mode, str(workload.path)],
        cwd=REPO,
        check=True,
    )
    report: dict[str, Any] = msgspec.json.decode(output.read_bytes())
    for key in (*_TIMES, "gc_seconds", "gc_seconds_by_generation", "gc_collections_by_generation"):
        report.pop(key, None)
    return report


# -- the report ---------------------------------------------------------------

CONFIGURATIONS: dict[str, str] = {
    "seed": "the seed's processor: parse, validate, process_event, flush every batch; no I/O",
    "lean-floor": "the product's decode + validate + dedup + aggregate in a plain loop; no I/O",
    "floor": "the product's per-event work (lean floor + minute windows + columnar rows + "
    "batching) in a plain loop; no framework, no I/O",
    "replay": "writech replay, one worker, into chDB + SQLite",
    "recovery": "writech replay with a recovery store, snapshots every 10 s",
    "kafka-embedded": "Kafka (3 partitions) to chDB + SQLite, one process",
    "kafka-1p": "Kafka to the ClickHouse HTTP fixture + MariaDB, one process",
    "kafka-2p": "Kafka to the ClickHouse HTTP fixture + MariaDB, two processes",
    "seed-large": "seed, on the workload with 1% messages of 64-200 KiB",
    "floor-large": "floor, on the workload with 1% messages of 64-200 KiB",
    "replay-large": "replay, on the workload with 1% messages of 64-200 KiB",
}
# What a run measures besides the throughput rows.
EXTRAS = {
    "stages": "the floor's work stage by stage: µs per event of each stage",
    "state": "the memory of the state after the whole base workload",
    "latency": "from producing to Kafka to readable in ClickHouse, at steady rates",
}
# The latency target: p95 at this rate, with the default flush interval.
LATENCY_RATE, LATENCY_P95 = 20_000, 5.0


# The ratios of events/s reported: (numerator, denominator) configurations.
RATIOS = {
    "replay/seed": ("replay", "seed"),
    "floor/seed": ("floor", "seed"),
    "lean-floor/seed": ("lean-floor", "seed"),
    "replay/floor": ("replay", "floor"),
    "replay/lean-floor": ("replay", "lean-floor"),
    "floor/lean-floor": ("floor", "lean-floor"),
    "kafka 2 processes/1 process": ("kafka-2p", "kafka-1p"),
    "kafka 2 processes/seed": ("kafka-2p", "seed"),
    "replay-large/seed-large": ("replay-large", "seed-large"),
    "replay-large/floor-large": ("replay-large", "floor-large"),
}


def ratios(bench: Bench) -> dict[str, float]:
    found = {}
    for label, (top, bottom) in RATIOS.items():
        a, b = bench.find(top), bench.find(bottom)
        if a and b:
            found[label] = a.events_per_second / b.events_per_second
    return found


def targets(
    bench: Bench, found: dict[str, float], latencies: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it was met."""
    at_least: list[tuple[str, str, float]] = [
        ("replay >= 3 x seed events/s", "replay/seed", 3),
        ("floor >= 4 x seed events/s", "floor/seed", 4),
        ("replay >= 0.7 x floor events/s", "replay/floor", 0.7),
        ("two processes >= 1.8 x one process", "kafka 2 processes/1 process", 1.8),
        ("two processes >= 4.5 x seed events/s", "kafka 2 processes/seed", 4.5),
    ]
    checks = [
        {"target": label, "value": found[ratio], "met": found[ratio] >= bound}
        for label, ratio, bound in at_least
        if ratio in found
    ]
    replayed = bench.find("replay")
    if replayed:
        checks.append(
            {
                "target": "replay peak RSS <= 700 MiB (MiB)",
                "value": replayed.peak_rss_mib,
                "met": replayed.peak_rss_mib <= 700,
            }
        )
    for result in latencies:
        if result["rate"] != LATENCY_RATE:
            continue
        # met only at the rate asked for, with every probe seen
        reached = result["produced_rate"] >= 0.95 * LATENCY_RATE
        for kind, row in (("window", "window row"), ("daily", "daily row")):
            found_latency = result["latency_seconds"][kind]
            if "p95" not in found_latency:
                continue
            checks.append(
                {
                    "target": f"{row} p95 <= {LATENCY_P95:g} s at {LATENCY_RATE:,} events/s (s)",
                    "value": found_latency["p95"],
                    "met": reached
                    and found_latency["unseen"] == 0
                    and found_latency["p95"] <= LATENCY_P95,
                }
            )
    return checks


def rows_per_event(results: Sequence[Result]) -> dict[str, dict[str, float]]:
    """Rows each table received per event read, for every run that counted them."""
    return {
        result.name: {
            table: round(rows / result.events, 4)
            for table, rows in sorted(result.detail["rows_written"].items())
        }
        for result in results
        if isinstance(result.detail.get("rows_written"), dict)
    }


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    model = next(
        (line.partition(":")[2].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor(),
    )
    memory = next((line.split()[1] for line in meminfo.splitlines() if "MemTotal" in line), "0")
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(int(memory) / MIB, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def table(results: Sequence[Result]) -> str:
    lines = [
        f"{'configuration':<16} {'workload':<8} {'proc':>4} {'events':>10} {'seconds':>8} "
        f"{'events/s':>10} {'peak RSS MiB':>12}"
    ]
    for result in results:
        lines.append(
            f"{result.name:<16} {result.workload:<8} {result.processes:>4} {result.events:>10,} "
            f"{result.seconds:>8.1f} {result.events_per_second:>10,.0f} {result.peak_rss_mib:>12,.0f}"
        )
    return "\n".join(lines)


def rows_table(found: dict[str, dict[str, float]]) -> str:
    """Rows per event, one line per configuration, one column per table."""
    tables = sorted({table for rows in found.values() for table in rows})
    lines = ["rows per event   " + " ".join(f"{table[:14]:>14}" for table in tables)]
    for name, rows in found.items():
        lines.append(f"{name:<16} " + " ".join(f"{rows.get(table, 0):>14.4f}" for table in tables))
    return "\n".join(lines)


def stages_table(stages: dict[str, Any], bench: Bench) -> str:
    """Each stage's µs per event, the sums beside the floors' measured µs per event."""
    micros = stages["us_per_event"]
    lines = [f"{'stage':<16} {'µs/event':>9}"]
    lines += [f"{stage:<16} {micros[stage]:>9.3f}" for stage in STAGES]
    measured = {
        name: 1e6 / result.events_per_second
        for name in ("lean-floor", "floor")
        if (result := bench.find(name))
    }
    lines.append(
        f"{'lean stages':<16} {stages['lean_stages_us']:>9.3f}"
        + (
            f"   lean-floor measured {measured['lean-floor']:.3f}"
            if "lean-floor" in measured
            else ""
        )
    )
    lines.append(f"{'windows':<16} {stages['windows_us']:>9.3f}")
    lines.append(
        f"{'all stages':<16} {stages['stages_us']:>9.3f}"
        + (f"   floor measured {measured['floor']:.3f}" if "floor" in measured else "")
    )
    lines.append(f"{'between stages':<16} {stages['between_stages_us']:>9.3f}")
    return "\n".join(lines)


def chart(results: Sequence[Result], path: Path) -> None:
    """Events/s per configuration as a horizontal bar chart (SVG)."""
    import pygal  # type: ignore[import-untyped]

    bars = pygal.HorizontalBar(
        title="Events per second (higher is better)",
        show_legend=False,
        value_formatter=lambda value: f"{value:,.0f}",
        width=900,
        height=80 + 40 * len(results),
    )
    top_down = list(reversed(results))  # pygal draws the first bar at the bottom
    bars.x_labels = [f"{result.name} ({result.processes} proc)" for result in top_down]
    bars.add("events/s", [result.events_per_second for result in top_down])
    path.write_bytes(bars.render())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--students", type=int, default=5000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--large-events", type=int, default=1_000_000)
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {', '.join([*CONFIGURATIONS, *EXTRAS])}",
    )
    parser.add_argument(
        "--latency-rates", default="5000,20000", help="events a second, comma-separated"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=60, help="measured seconds at each rate"
    )
    parser.add_argument(
        "--latency-warmup", type=float, default=10, help="seconds at each rate before measuring"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--publish", action="store_true", help="also write docs/benchmarks.*")
    parser.add_argument(
        "--before",
        type=Path,
        help="the benchmarks.json of an earlier run, for the before columns of tables.md",
    )
    args = parser.parse_args(argv)
    # read now: with --publish, docs/benchmarks.json is rewritten at the end
    before = msgspec.json.decode(args.before.read_bytes()) if args.before else None
    wanted = set(filter(None, args.only.split(","))) or {*CONFIGURATIONS, *EXTRAS}
    unknown = wanted - {*CONFIGURATIONS, *EXTRAS}
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")

    # The seed drops events older than 7 days by wall clock, so the data
    # must be recent for it to do its full work: the last five days, ending
    # yesterday (UTC), so no event is in the future either.
    start = datetime.now(UTC).date() - timedelta(days=args.days)
    folder = args.results
    data = folder / "data"
    base = Workload("base", args.events, args.students, args.days, start, 0.01, 0.01, 0.0,
                    data / f"base-{args.events}-{args.students}-{start}.jsonl")  # fmt: skip
    large = Workload("large", args.large_events, args.students, args.days, start, 0.01, 0.01,
                     0.01, data / f"large-{args.large_events}-{args.students}-{start}.jsonl")  # fmt: skip
    runs = folder / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    bench = Bench(runs)
    load_before = os.getloadavg()
    steps: list[tuple[str, Workload, Callable[[Bench, Workload], None]]] = [
        ("seed", base, seed),
        ("lean-floor", base, lambda bench, workload: floor(bench, workload, lean=True)),
        ("floor", base, floor),
        ("replay", base, replay),
        ("recovery", base, recovery),
        ("kafka", base, lambda bench, workload: kafka(bench, workload, wanted)),
        ("seed-large", large, lambda bench, workload: seed(bench, workload, "-large")),
        ("floor-large", large, lambda bench, workload: floor(bench, workload, "-large")),
        ("replay-large", large, lambda bench, workload: replay(bench, workload, "-large")),
    ]
    for name, workload, work in steps:
        if name in wanted or (name == "kafka" and wanted & KAFKA):
            workload.generate()
            work(bench, workload)
    if wanted & {"stages", "state"}:
        base.generate()
    stages = extra(bench, base, "stages") if "stages" in wanted else {}
    memory = extra(bench, base, "state") if "state" in wanted else {}
    latencies = (
        live.measure_rates(
            [int(rate) for rate in args.latency_rates.split(",")],
            runs,
            live.Options(seconds=args.latency_seconds, warmup=args.latency_warmup),
        )
        if "latency" in wanted
        else []
    )

    found = ratios(bench)
    per_event = rows_per_event(bench.results)
    checks = targets(bench, found, latencies)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "workloads": {
            workload.name: {
                "events": workload.events,
                "students": workload.students,
                "days": workload.days,
                "start": workload.start.isoformat(),
                "malformed": workload.malformed,
                "duplicates": workload.duplicates,
                "large": workload.large,
                "bytes": workload.path.stat().st_size if workload.path.exists() else None,
            }
            for workload in (base, large)
        },
        "results": [result.as_json() for result in bench.results],
        "rows_per_event": per_event,
        "stages": stages,
        "ratios": found,
        "targets": checks,
        "state": memory,
        "latency": latencies,
        "notes": bench.notes,
    }
    print(table(bench.results))
    if per_event:
        print(rows_table(per_event))
    if stages:
        print(stages_table(stages, bench))
    for result in latencies:
        print(f"latency at {result['rate']:>6,}/s: {live.summary_line(result)}")
    for label, value in found.items():
        print(f"{label:<32} {value:6.2f}")
    for check in checks:
        print(f"{'met   ' if check['met'] else 'MISSED'} {check['target']}: {check['value']:.2f}")
    if memory:
        print(
            f"state: {memory['retained_rows']:,} rows, {memory['retained_event_ids']:,} event ids, "
            f"{memory['retained_student_windows']:,} student and "
            f"{memory['retained_class_windows']:,} class windows; in memory "
            f"{memory['memory_per_row']:.0f} B/row, {memory['memory_per_event_id']:.0f} B/id, "
            f"{memory['memory_per_student_window']:.0f} and "
            f"{memory['memory_per_class_window']:.0f} B/window; pickled "
            f"{memory['pickled_per_row']:.0f} B/row, {memory['pickled_per_event_id']:.1f} B/id, "
            f"{memory['pickled_per_student_window']:.0f} and "
            f"{memory['pickled_per_class_window']:.0f} B/window"
        )
    for note in bench.notes:
        print(f"note: {note}")
    encoded = msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"
    (folder / "benchmarks.json").write_bytes(encoded)
    (folder / "tables.md").write_text(markdown(report, before))
    chart(bench.results, folder / "benchmarks.svg")
    if args.publish:
        (DOCS / "benchmarks.json").write_bytes(encoded)
        chart(bench.results, DOCS / "benchmarks.svg")


if __name__ == "__main__":
    main()
