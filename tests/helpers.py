"""Shared test helpers: running the CLI and reading the embedded stores; dataflow processes
that are killed, resumed and checked for secrets (recovery, chaos and outage tests)."""

from __future__ import annotations

import os
import pickle
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import ANY
from urllib.parse import quote

import pytest

from writech import frozen
from writech.flow import FLOW_ID
from writech.stores.chdb import open_store

REPO = Path(__file__).resolve().parent.parent

# Every table, read back in a stable order, with FINAL: what a reader sees.
TABLE_QUERIES = {
    "student_daily_stats": "SELECT * FROM writech.student_daily_stats FINAL ORDER BY student_id, date, subject",
    "analytics_metrics": "SELECT * FROM writech.analytics_metrics FINAL ORDER BY student_id, metric_id",
    "homework_result": "SELECT * FROM writech.homework_result FINAL ORDER BY student_id, event_id",
    "student_minute_stats": "SELECT * FROM writech.student_minute_stats FINAL ORDER BY student_id, window_start",
    "class_minute_stats": "SELECT * FROM writech.class_minute_stats FINAL ORDER BY class_id, window_start",
    "dead_letter": "SELECT * FROM writech.dead_letter FINAL ORDER BY origin, partition, offset",
}


def run_writech(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """Run the `writech` command in a fresh process (counters start at zero)."""
    result = subprocess.run(
        [sys.executable, "-m", "writech", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"writech {' '.join(args)} failed:\n{result.stderr}"
    return result


def read_tables(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table of an embedded data dir, as lists of row dicts."""
    store = open_store(data_dir / "clickhouse")
    try:
        tables = {name: store.query(sql) for name, sql in TABLE_QUERIES.items()}
    finally:
        store.close()
    with sqlite3.connect(data_dir / "writech.db") as connection:
        connection.row_factory = sqlite3.Row
        tables["error_record"] = [
            dict(row)
            for row in connection.execute(
                "SELECT * FROM error_record ORDER BY student_id, event_id, position"
            )
        ]
    return tables


def summary_numbers(stdout: str) -> dict[str, int]:
    """The numbers of `writech replay`'s closing summary, by label."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"\s*([a-z_-]+)\s+([\d,]+)", line)
        if match:
            found[match.group(1)] = int(match.group(2).replace(",", ""))
    return found


Tables = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Workload:
    """Generated messages, the JSON-lines files holding them in order, and the
    tables one clean, uninterrupted `writech replay` of those files leaves."""

    messages: list[bytes]
    files: list[Path]
    tables: Tables

    def as_read_from_kafka(self, topic: str, partitions: int = 3) -> Tables:
        """The tables a clean run leaves when the messages were produced round-robin to
        `topic` (`tests.services.kafka.produce`): only the dead letters' positions differ,
        and their `produced_at`, the records' timestamps (whenever the test produced them)."""
        first_message = {}  # file -> index of its first line's message
        number = 0
        for path in self.files:
            first_message[str(path)] = number
            number += path.read_bytes().count(b"\n")  # one message per line, none blank
        letters = []
        for letter in self.tables["dead_letter"]:
            index = first_message[letter["origin"]] + letter["offset"] - 1
            letters.append(
                letter
                | {"origin": topic, "partition": index % partitions, "offset": index // partitions}
                | {"produced_at": ANY}
            )
        letters.sort(key=lambda letter: (letter["partition"], letter["offset"]))
        return self.tables | {"dead_letter": letters}


def write_workload(folder: Path, messages: list[bytes], files: int) -> list[Path]:
    """`messages` in order over `files` JSON-lines files of about equal size (one per line)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(messages) // files)
    paths = []
    for number in range(files):
        path = folder / f"events-{number}.jsonl"
        path.write_bytes(b"".join(m + b"\n" for m in messages[number * size : (number + 1) * size]))
        paths.append(path)
    return paths


def dataflow_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any WRITECH_ setting, plus `settings`."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")
    }
    return inherited | dict(settings)


def start_dataflow(
    command: Sequence[str], settings: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start a dataflow process from the repository, stdout and stderr appended to `log`."""
    with log.open("ab") as output:
        output.write(f"\n== {' '.join(command[1:])}\n".encode())
        output.flush()
        return subprocess.Popen(
            list(command),
            cwd=REPO,
            env=dataflow_environment(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process's PID: no shutdown, no last snapshot, as a crash."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def log_tail(log: Path, characters: int = 4000) -> str:
    return log.read_text(errors="replace")[-characters:] if log.exists() else ""


def wait_for_exit(process: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> int:
    """The exit code; a hang guard (not a measurement) kills the process after `timeout` s."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        pytest.fail(f"the dataflow did not finish within {timeout:.0f} s:\n{log_tail(log)}")


def run_dataflow(command: Sequence[str], settings: Mapping[str, str], log: Path) -> None:
    """Run a dataflow process to its end; it must succeed."""
    code = wait_for_exit(start_dataflow(command, settings, log), log)
    assert code == 0, f"the dataflow failed (exit {code}):\n{log_tail(log)}"


def committed_epoch(recovery: Path) -> int:
    """The newest epoch the recovery store has committed (0: none yet)."""
    newest = 0
    for part in recovery.glob("part-*.sqlite3"):
        try:
            with sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5) as db:
                for (epoch,) in db.execute("SELECT commit_epoch FROM commits"):
                    newest = max(newest, int(epoch))
        except sqlite3.OperationalError:  # being written right now: look again later
            continue
    return newest


def wait_for_commit(
    recovery: Path, process: subprocess.Popen[bytes], log: Path, beyond: int, timeout: float = 120
) -> int:
    """Wait until the running `process` has committed an epoch after `beyond`; return it."""
    deadline = time.monotonic() + timeout
    while (epoch := committed_epoch(recovery)) <= beyond:
        if process.poll() is not None:
            pytest.fail(f"the dataflow ended (exit {process.returncode}) before committing:\n"
                        f"{log_tail(log)}")  # fmt: skip
        if time.monotonic() > deadline:
            kill(process)
            pytest.fail(f"no epoch committed within {timeout:.0f} s:\n{log_tail(log)}")
        time.sleep(0.05)
    return epoch


@dataclass(frozen=True)
class Chaos:
    """What `kill_and_resume` did: each kill as (when it was timed from, seconds),
    and the input positions the last, uninterrupted run resumed from."""

    kills: list[tuple[str, float]]
    last_run_resumed_from: dict[str, Any]


def kill_and_resume(
    commands: Sequence[Sequence[str]],
    settings: Mapping[str, str],
    log: Path,
    recovery: Path,
    kills: int,
    seed: int,
) -> Chaos:
    """Start a dataflow, SIGKILL it at a random moment, start it again, `kills` times;
    then let the last run finish. Run n is `commands[n % len(commands)]`: every one
    resumes from the recovery store `recovery`.

    The moments are drawn with `seed`: even runs die 0.5 to 2.5 s after they start
    (in start-up, or in their first epoch, or later), odd runs 0 to 1 s after their
    first snapshot is committed, so that progress is kept whatever the machine's
    speed. Each kill must land on a process still running."""
    rng = random.Random(seed)
    landed = []
    for number in range(kills):
        before = committed_epoch(recovery)
        process = start_dataflow(commands[number % len(commands)], settings, log)
        if number % 2:
            moment, delay = "first snapshot", rng.uniform(0.0, 1.0)
            wait_for_commit(recovery, process, log, beyond=before)
        else:
            moment, delay = "start", rng.uniform(0.5, 2.5)
        try:
            code = process.wait(delay)
        except subprocess.TimeoutExpired:
            kill(process)
            landed.append((moment, delay))
            continue
        pytest.fail(
            f"run {number} ended (exit {code}) before its kill {delay:.2f} s after its "
            f"{moment}: the input is too small for the kill schedule\n{log_tail(log)}"
        )
    resumed_from = read_positions(recovery)
    run_dataflow(commands[kills % len(commands)], settings, log)
    return Chaos(landed, resumed_from)


def assert_no_secrets(secrets: Sequence[str], **places: str) -> None:
    """No secret, as written or percent-encoded as in a URL, in any of `places` (name: text)."""
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            for name, text in places.items():
                assert form not in text, f"a secret appears in {name}"


def snapshots(recovery: Path, step: str) -> dict[str, Any]:
    """The state each key of step `step` would resume from: its newest committed snapshot."""
    committed = committed_epoch(recovery)
    found: dict[str, tuple[int, Any]] = {}
    for part in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute(
                "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ?",
                (f"{FLOW_ID}.{step}",),
            )
            for key, epoch, state in rows:
                if epoch <= committed and epoch >= found.get(key, (-1, None))[0]:
                    found[key] = (epoch, pickle.loads(state) if state is not None else None)
    return {key: state for key, (_, state) in found.items()}


def read_positions(recovery: Path) -> dict[str, Any]:
    """The input positions a resume from `recovery` starts at, per input partition:
    (byte offset, line number) per file, the next offset per Kafka partition."""
    return {key: state.position for key, state in snapshots(recovery, "read").items()}


# Small source batches and frequent flushes: many epochs and many small inserts, so
# that a kill or an outage lands inside a write as often as between writes. They do
# not change the results (tests/test_replay.py).
CHURN = {
    "WRITECH_BATCH_SIZE": "20",
    "WRITECH_FLUSH_INTERVAL": "0.05",
    "WRITECH_SINK_BATCH_ROWS": "500",
}
TABLES = (
    "student_daily_stats",
    "analytics_metrics",
    "homework_result",
    "error_record",
    "dead_letter",
    "student_minute_stats",
    "class_minute_stats",
)


def init_recovery_store(folder: Path) -> Path:
    run_writech("recovery", "init", "--dir", str(folder))
    return folder


def replay_command(workload: Workload, recovery: Path, *options: str) -> list[str]:
    """`writech replay` of the workload's files, snapshotting every second into `recovery`."""
    return [sys.executable, "-m", "writech", "replay", "--quiet",
            *map(str, workload.files), "-r", str(recovery), "-s", "1", *options]  # fmt: skip


def dataflow_command(recovery: Path) -> list[str]:
    """`python -m bytewax.run dataflow` (settings from the environment), snapshotting every second."""
    return [sys.executable, "-m", "bytewax.run", "dataflow",
            "-r", str(recovery), "-s", "1", "-b", "0"]  # fmt: skip


def assert_same_tables(actual: Tables, expected: Tables) -> None:
    """Every table, row for row, as a clean run left it (and that run did real work)."""
    for table in TABLES:
        assert len(actual[table]) == len(expected[table]), table
        assert actual[table] == expected[table], table
    assert len(expected["student_daily_stats"]) > 1000


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (as mount takes it: 1m, 64m) mounted at `mount` (created), for
    the disk-full tests (we are root here); unmounted after, whatever happened."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the disk-full tests need root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def cooling_clock(
    monkeypatch: pytest.MonkeyPatch, owner: ModuleType, patience: float, most: float = 64.0
) -> list[float]:
    """A clock moved by hand (its one item) for the cooling rule (`writech.frozen.Cooling`)
    and for the flushes of `owner`, the module whose state parts follow it."""
    clock = [1000.0]
    for module in (owner, frozen):
        monkeypatch.setattr(module, "monotonic", lambda: clock[0])
    monkeypatch.setattr(frozen, "COOL_AFTER_SECONDS", patience)
    monkeypatch.setattr(frozen, "COOL_AFTER_MOST_SECONDS", most)
    return clock
