"""Faults a run meets in production, injected for real (we are root here):

- the embedded stores' disk fills up (a small tmpfs): the run stops before
  its epoch commits, says in one line what to do, and a resume once space
  is free leaves exactly the tables of a clean run;
- a ClickHouse server that accepts connections and never answers (a
  loopback proxy): the run stops within the configured deadline, every
  retry logged;
- SIGTERM and Ctrl-C: a normal stop, one line, and a resume completes it;
- a password with characters a URL must encode: refused, never shown.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    Workload,
    assert_same_tables,
    dataflow_command,
    dataflow_environment,
    init_recovery_store,
    read_tables,
    replay_command,
    run_writech,
    start_dataflow,
    tmpfs,
    wait_for_commit,
    wait_for_exit,
)

pytestmark = pytest.mark.services


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs, mounted for this test and unmounted after it."""
    with tmpfs(tmp_path / "small-disk", "64m") as mount:
        yield mount


def _fill(disk: Path, leave: int) -> Path:
    """A file taking all of `disk`'s free space but `leave` bytes, or all of it: a run
    writing to `disk` meanwhile may take the rest first, and the disk is full either way."""
    filler = disk / "filler"
    remaining = max(0, shutil.disk_usage(disk).free - leave)
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:  # unbuffered: no write left for close()
        while remaining > 0:
            try:
                remaining -= out.write(chunk[: min(len(chunk), remaining)]) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


def test_a_full_disk_stops_the_run_before_its_epoch_commits_and_a_resume_completes_it(
    workload: Workload, small_disk: Path, tmp_path: Path
) -> None:
    recovery = init_recovery_store(tmp_path / "recovery")
    data = small_disk / "data"
    # small batches: the run is still writing, many epochs on, when the disk fills
    settings = {
        "WRITECH_DATA_DIR": str(data),
        "WRITECH_FLUSH_INTERVAL": "0.2",
        "WRITECH_BATCH_SIZE": "500",
    }
    command = replay_command(workload, recovery)
    log = tmp_path / "runs.log"

    process = start_dataflow(command, settings, log)
    wait_for_commit(recovery, process, log, beyond=0)
    filler = _fill(small_disk, leave=256 * 1024)
    code = wait_for_exit(process, log)
    said = log.read_text(errors="replace")
    assert code != 0
    assert "a disk is full" in said
    first_advice = said.index("a disk is full")
    assert "Traceback" not in said[:first_advice]  # the one line comes first
    assert "panicked" not in said[:first_advice]

    filler.unlink()
    assert wait_for_exit(start_dataflow(command, settings, log), log) == 0
    assert_same_tables(read_tables(data), workload.tables)


def test_stores_on_a_read_only_file_system_are_said_in_one_line(tmp_path: Path) -> None:
    """A data dir or recovery store on a volume mounted read-only (a backup, a wrong mount):
    before, chDB's "Error initializing EmbeddedServer", and Bytewax's panic "unable to open
    database file" under `python -m bytewax.run`. Bytewax's panics on a missing or empty
    recovery directory go the same way."""
    sample = str(REPO / "writech" / "sample" / "events.jsonl.gz")
    with tmpfs(tmp_path / "volume", "64m") as volume:
        data, recovery = volume / "data", init_recovery_store(volume / "recovery")
        run_writech("replay", sample, "--data-dir", str(data), "--quiet")
        subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
        ro = "cannot hold a store (its file system is mounted read-only; a store is written even"
        writable = str(tmp_path / "data")
        runs = [
            ([sys.executable, "-m", "writech", "replay", sample, "--data-dir", str(data)],
             f"writech: {data / 'clickhouse'}: {ro}"),
            ([sys.executable, "-m", "writech", "report", "class", "class-0000", "--data-dir",
              str(data), "--format", "json"], f"writech: {data / 'clickhouse'}: {ro}"),
            ([sys.executable, "-m", "writech", "replay", sample, "--data-dir", writable, "-r",
              str(recovery)], f"writech: {recovery}: {ro}"),
            ([*dataflow_command(recovery)], f"cannot start: {recovery}: {ro}"),
            ([*dataflow_command(tmp_path / "none")], "holds no recovery store; create it with"),
            ([*dataflow_command(tmp_path)], f"-r (BYTEWAX_RECOVERY_DIRECTORY): {tmp_path} holds no"),
        ]  # fmt: skip
        for command, said in runs:
            done = subprocess.run(
                command,
                cwd=REPO,
                env=dataflow_environment({"WRITECH_DATA_DIR": writable}),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 2, done.stderr
            assert said in done.stderr
            assert "Traceback" not in done.stderr
            assert "panicked" not in done.stderr
            assert len(done.stderr.splitlines()) == 1
        assert not Path(writable).exists()  # refused before anything was opened


def test_an_output_the_disk_cannot_hold_leaves_the_previous_file(tmp_path: Path) -> None:
    """A report, an export or generated data on a full disk: before, a truncated file under
    the name asked for, and a traceback whose advice spoke of the stores' epochs."""
    data = str(tmp_path / "data")
    run_writech("replay", str(REPO / "writech" / "sample" / "events.jsonl.gz"), "--data-dir", data)
    with tmpfs(tmp_path / "small", "64k") as small:
        commands = {
            "report.html": ["report", "school", "school-000", "--data-dir", data],
            "letters.jsonl": ["dead-letters", "export", "--data-dir", data],
            "events.jsonl.gz": ["generate", "--events", "20000"],
        }
        for name, command in commands.items():
            target = small / name
            target.write_text("the previous one")
            option = "--out" if command[0] == "report" else "-o"
            done = subprocess.run(
                [sys.executable, "-m", "writech", *command, option, str(target)],
                cwd=REPO,
                env=dataflow_environment({}),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 1, done.stderr
            assert done.stderr == (
                f"writech: cannot write {target}: No space left on device; "
                "nothing was put in its place\n"
            )
            assert target.read_text() == "the previous one"
        assert sorted(path.name for path in small.iterdir()) == sorted(commands)


class SilentServer:
    """A loopback TCP server that accepts connections and never answers (a hung store)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)  # read nothing, answer nothing

    def close(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


def test_a_store_that_never_answers_stops_the_run_within_its_deadline(
    workload: Workload, tmp_path: Path
) -> None:
    server = SilentServer()
    try:
        settings = {
            "WRITECH_CLICKHOUSE_URL": f"http://writech:s3cret-Pass@127.0.0.1:{server.port}",
            "WRITECH_DATA_DIR": str(tmp_path / "data"),
            "WRITECH_STORE_TIMEOUT": "2",
            "WRITECH_STORE_DEADLINE": "6",
        }
        log = tmp_path / "run.log"
        started = time.monotonic()
        process = start_dataflow([sys.executable, "-m", "writech", "init-db"], settings, log)
        # A hang guard, not a measurement: with a 6 s deadline and 2 s requests the
        # run must give up long before 120 s (the defaults would take over a minute).
        code = wait_for_exit(process, log, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    said = log.read_text(errors="replace")
    assert code != 0
    assert said.count("retrying in") >= 1  # each retry is logged
    assert "the deadline is 6 s, WRITECH_STORE_DEADLINE" in said
    assert "s3cret-Pass" not in said
    assert elapsed < 120


@pytest.mark.parametrize(
    ("signal_number", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)]
)
def test_a_signal_is_a_normal_stop_and_a_resume_completes_the_run(
    workload: Workload, tmp_path: Path, signal_number: int, exit_code: int
) -> None:
    recovery = init_recovery_store(tmp_path / "recovery")
    data = tmp_path / "data"
    settings = {"WRITECH_DATA_DIR": str(data), "WRITECH_BATCH_SIZE": "50"}
    command = replay_command(workload, recovery)
    log = tmp_path / "runs.log"

    process = start_dataflow(command, settings, log)
    wait_for_commit(recovery, process, log, beyond=0)
    process.send_signal(signal_number)
    assert wait_for_exit(process, log) == exit_code
    said = log.read_text(errors="replace")
    name = signal.Signals(signal_number).name
    assert f"stopped by {name}; run the same command again to resume" in said
    assert "Traceback" not in said
    assert "panicked" not in said
    assert '"level": "critical"' not in said

    assert wait_for_exit(start_dataflow(command, settings, log), log) == 0
    assert_same_tables(read_tables(data), workload.tables)


@pytest.mark.parametrize("password", ["Sx7k/b#c?dQ9", "pQss@Zw/9#rd", "Xk?y=1#zW2"])
@pytest.mark.parametrize("variable", ["WRITECH_CLICKHOUSE_URL", "WRITECH_MYSQL_URL"])
def test_an_unencoded_password_never_reaches_the_logs(
    tmp_path: Path, variable: str, password: str
) -> None:
    scheme = "http" if "CLICKHOUSE" in variable else "mysql"
    url = f"{scheme}://writer:{password}@127.0.0.1:9/writech"
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b'{"event_type": "login_event", "student_id": "s", "timestamp": "2026-09-01"}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "writech", "replay", "-q", str(events)],
        cwd=REPO,
        env=dataflow_environment({variable: url, "WRITECH_DATA_DIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert "percent-encoded" in said
    assert password not in said
    for piece in re.split(r"[/#?@]", password):  # not even a piece of it
        assert len(piece) < 4 or piece not in said


def test_the_fault_tests_run_as_root() -> None:
    """The tmpfs above needs root: CI runs as root (README); say so plainly otherwise."""
    assert os.geteuid() == 0, "tests/test_faults.py mounts a tmpfs: run the suite as root"
