"""What recovery costs: throughput with snapshots every 1 s and every 10 s against none,
and how long a resume after a crash takes.

    .venv/bin/python benchmarks/recovery_cost.py [--events 200000] [--repeat 5] [--workdir DIR]

Every run is `writech replay` of the same generated input (four JSON-lines
files) into fresh embedded stores, in a process of its own, one worker.
Throughput is messages over the dataflow's own time (the summary's
"over N s", start-up excluded); the wall time includes start-up. Medians
of `--repeat` runs; ratios are against the run without a recovery store.

Then the resume: a run with snapshots every second is SIGKILLed halfway
through (by the clean run's time) and started again on the same store.
Measured from the restart: the first epoch the new execution commits (it
has restored the snapshot and made progress) and its completion, beside
the same moments of a clean run, and how many messages the resume read
again (those after its snapshot).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from writech.generate import generate
from writech.sources.files import FilePosition

REPO = Path(__file__).resolve().parent.parent
_SUMMARY = re.compile(r"read\s+([\d,]+)\s+\(([\d,]+) messages/s")


def write_input(folder: Path, events: int) -> list[Path]:
    messages = list(generate(events=events, students=1000, days=5, seed=7))
    files = [folder / f"events-{n}.jsonl" for n in range(4)]
    size = -(-len(messages) // len(files))
    for number, path in enumerate(files):
        path.write_bytes(b"".join(m + b"\n" for m in messages[number * size : (number + 1) * size]))
    return files


def replay_command(
    files: Sequence[Path], data: Path, recovery: Path | None, interval: float
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "writech",
        "replay",
        "--quiet",
        *map(str, files),
        "--data-dir",
        str(data),
    ]
    if recovery is not None:
        command += ["-r", str(recovery), "-s", str(interval)]
    return command


def init_store(path: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "writech", "recovery", "init", "--dir", str(path)],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    return path


def environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")}


def committed_epoch(recovery: Path) -> int:
    newest = 0
    for part in recovery.glob("part-*.sqlite3"):
        try:
            with sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5) as db:
                for (epoch,) in db.execute("SELECT commit_epoch FROM commits"):
                    newest = max(newest, int(epoch))
        except sqlite3.OperationalError:
            continue
    return newest


class Run:
    """One `writech replay` process: wall time, the moment of its first commit, its summary."""

    def __init__(
        self, command: list[str], recovery: Path | None = None, kill_after: float | None = None
    ) -> None:
        started = time.perf_counter()
        epoch_before = committed_epoch(recovery) if recovery else 0
        process = subprocess.Popen(
            command, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.first_commit: float | None = None
        while process.poll() is None:
            now = time.perf_counter() - started
            if recovery and self.first_commit is None and committed_epoch(recovery) > epoch_before:
                self.first_commit = now
            if kill_after is not None and now >= kill_after:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        output = process.communicate()[0].decode()
        self.wall = time.perf_counter() - started
        self.killed = process.returncode == -signal.SIGKILL
        if not self.killed and process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed with exit {process.returncode}")
        found = _SUMMARY.search(output)
        self.read = int(found.group(1).replace(",", "")) if found else 0
        self.rate = int(found.group(2).replace(",", "")) if found else 0


def throughput(files: list[Path], folder: Path, repeat: int) -> None:
    total = 0
    modes: dict[str, float | None] = {
        "none": None,
        "snapshots every 10 s": 10.0,
        "snapshots every 1 s": 1.0,
    }
    results: dict[str, tuple[float, float]] = {}
    for name, interval in modes.items():
        walls, rates = [], []
        for number in range(repeat):
            run_folder = folder / f"{name.replace(' ', '-')}-{number}"
            recovery = init_store(run_folder / "recovery") if interval else None
            run = Run(replay_command(files, run_folder / "data", recovery, interval or 0))
            total = run.read
            walls.append(run.wall)
            rates.append(run.rate)
        results[name] = (statistics.median(walls), statistics.median(rates))
    base_wall, base_rate = results["none"]
    print(f"\nthroughput: {total:,} messages, median of {repeat} runs, one worker")
    print(f"  {'':<22}{'messages/s':>12}{'ratio':>8}{'wall s':>9}{'ratio':>8}")
    for name, (wall, rate) in results.items():
        print(
            f"  {name:<22}{rate:>12,.0f}{rate / base_rate:>8.2f}{wall:>9.2f}{wall / base_wall:>8.2f}"
        )


def lines_in_snapshot(recovery: Path) -> int:
    """Input lines the store's newest committed snapshot has consumed, over all files."""
    committed = committed_epoch(recovery)
    newest: dict[str, FilePosition] = {}
    for part in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT state_key, snap_epoch, ser_change FROM snaps "
                "WHERE step_id = 'writech.read' AND snap_epoch <= ? ORDER BY snap_epoch",
                (committed,),
            )
            newest.update((key, pickle.loads(state)) for key, _, state in rows)
    return sum(position.line for position in newest.values())


def resume(files: list[Path], folder: Path) -> None:
    clean_store = init_store(folder / "clean-recovery")
    clean = Run(replay_command(files, folder / "clean", clean_store, 1.0), clean_store)
    recovery = init_store(folder / "recovery")
    command = replay_command(files, folder / "data", recovery, 1.0)
    kill_at = clean.wall / 2
    killed = Run(command, recovery, kill_after=kill_at)
    consumed = lines_in_snapshot(recovery)
    resumed = Run(command, recovery)
    if not killed.killed or clean.first_commit is None or resumed.first_commit is None:
        raise RuntimeError("the run to kill ended first, or a run committed no epoch")
    print(f"\nresume: snapshots every 1 s, SIGKILL at {kill_at:.2f} s (half the clean run);")
    print(f"  the snapshot it resumed from had consumed {consumed:,} of {clean.read:,} messages")
    print(f"  {'':<36}{'clean run':>10}{'resume':>10}{'ratio':>8}")
    rows = (
        ("start to first committed epoch, s", clean.first_commit, resumed.first_commit),
        ("start to completion, s", clean.wall, resumed.wall),
    )
    for label, before, after in rows:
        print(f"  {label:<36}{before:>10.2f}{after:>10.2f}{after / before:>8.2f}")
    print(f"  {'messages read':<36}{clean.read:>10,}{resumed.read:>10,}")
    print(f"  killed run + resume, s: {killed.wall + resumed.wall:.2f} "
          f"({(killed.wall + resumed.wall) / clean.wall:.2f} x the clean run)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--workdir", type=Path, help="keep inputs and stores here (default: a temporary directory)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="writech-recovery-cost-") as scratch:
        folder = args.workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        files = write_input(folder, args.events)
        throughput(files, folder / "throughput", args.repeat)
        resume(files, folder / "resume")


if __name__ == "__main__":
    main()
