"""The pods' processes, run here: two pods' processes form one Bytewax cluster.

Each process is `deploy/entrypoint.sh` with exactly the environment a pod
gives it (container paths mapped to temporary directories, the hostfile
listing loopback addresses), reading JSON-lines files and writing to the
ClickHouse and MySQL servers. Together they must leave the tables a single
`writech replay` leaves, as one cluster sharing one recovery store:

- pods writech-N of the local overlay's StatefulSet, and a later execution
  with one process (a scale-down) resuming from that store;
- the Bytewax Helm chart's job mode (`waxctl --job-mode`, a backfill), where
  a pod's name is its completion index, started by the chart's command.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, TABLES, read_tables, run_writech
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.mysql import MysqlUser
from tests.services.ports import free_port
from tests.test_end_to_end_kafka import _server_tables
from tests.test_k8s import (
    CHART_API_CACHE,
    CHART_COMMAND,
    CHART_RECOVERY,
    CHART_WORKDIR,
    ENTRYPOINT,
    chart_pod_environment,
    chart_workdir,
    pod_environment,
)
from writech.generate import generate

pytestmark = pytest.mark.services  # the ClickHouse and MariaDB test services

OVERLAY = "local"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two days' files, then a later file that re-sends some of the first's messages."""
    folder = tmp_path_factory.mktemp("inputs")
    messages = list(
        generate(events=6000, students=80, days=4, malformed=0.03, duplicates=0.03, seed=31)
    )
    first, later = folder / "first.jsonl", folder / "later.jsonl"
    first.write_bytes(b"\n".join(messages[:3600]) + b"\n")
    later.write_bytes(b"\n".join(messages[3600:] + messages[:200]) + b"\n")
    return first, later


def rows(table: list[dict[str, Any]]) -> list[str]:
    """A table's rows in one order, whatever order each store's query returned them in."""
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table)


def replayed(files: list[Path], folder: Path) -> dict[str, Any]:
    """The tables one `writech replay` process leaves for `files` (embedded stores)."""
    run_writech("replay", "--quiet", *map(str, files), "--data-dir", str(folder))
    return read_tables(folder)


def run_processes(
    environments: list[dict[str, str]], command: list[str], cwd: Path, logs: Path
) -> list[str]:
    """Run one process per environment until all finish; return their logs.

    Bytewax serves /metrics on every interface: tests/test_metrics_endpoint.py
    runs it in a private network namespace; here it stays off.
    """
    started = []
    for number, environment in enumerate(environments):
        del environment["BYTEWAX_DATAFLOW_API_ENABLED"]
        with (logs / f"process-{number}.log").open("wb") as output:
            started.append(
                subprocess.Popen(
                    command, cwd=cwd, env=environment, stdout=output, stderr=subprocess.STDOUT
                )
            )
    deadline = time.monotonic() + 300  # a hang guard, not a measurement
    while any(process.poll() is None for process in started):
        failed = any(process.poll() not in (None, 0) for process in started)
        if failed or time.monotonic() > deadline:
            for process in started:
                if process.poll() is None:  # its peer failed or time ran out: stop it by PID
                    process.kill()
                    process.wait()
            break
        time.sleep(0.1)
    texts = [(logs / f"process-{n}.log").read_text(errors="replace") for n in range(len(started))]
    outcome = "\n".join(
        f"exit {p.returncode}:\n{t[-3000:]}" for p, t in zip(started, texts, strict=True)
    )
    assert all(process.returncode == 0 for process in started), outcome
    return texts


def loopback_hosts(count: int) -> list[str]:
    return [f"127.0.0.1:{free_port()}" for _ in range(count)]


def run_pods(
    pods: int, files: list[Path], folder: Path, clickhouse_url: str, mysql_url: str
) -> list[str]:
    """Run pods writech-0..N-1 of the StatefulSet until they finish; return their logs."""
    run = folder / f"run-{time.monotonic_ns()}"
    (run / "bytewax").mkdir(parents=True)
    (run / "tmp").mkdir()  # the pod's emptyDir on /tmp
    (run / "bytewax" / "hostfile.txt").write_text(
        "".join(host + "\n" for host in loopback_hosts(pods))
    )
    secrets = folder / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "clickhouse-url").write_text(clickhouse_url + "\n")
    (secrets / "mysql-url").write_text(mysql_url + "\n")
    (secrets / "kafka-options").write_text("")
    paths = {
        "/etc/bytewax": run / "bytewax",
        "/var/recovery": folder / "recovery",  # the one volume every execution shares
        "/var/run/secrets/writech": secrets,
        "/tmp": run / "tmp",
    }
    settings = {
        "WRITECH_SOURCE": "files",
        "WRITECH_INPUT_PATHS": ",".join(map(str, files)),
        "WRITECH_BATCH_SIZE": "500",
    }
    environments = [
        pod_environment(OVERLAY, f"writech-{number}", paths, settings) for number in range(pods)
    ]
    logs = run_processes(environments, [str(ENTRYPOINT), "run"], REPO, run)
    assert not (run / "tmp" / "writech").exists()  # nothing went to the embedded stores
    return logs


def executions(recovery: Path) -> list[tuple[int, int, int, set[int]]]:
    """Each execution the recovery store recorded: number, worker count, the epoch
    it resumed from, and the workers that recorded progress.

    Rows are spread over the partitions: an execution's record and its
    workers' progress may sit in different files.
    """
    counts: dict[int, tuple[int, int]] = {}
    workers: dict[int, set[int]] = {}
    for part in sorted(recovery.glob("part-*.sqlite3")):
        with sqlite3.connect(part) as db:
            for number, count, resumed in db.execute(
                "SELECT ex_num, worker_count, resume_epoch FROM exs"
            ):
                counts[number] = (count, resumed)
            for number, worker in db.execute("SELECT ex_num, worker_index FROM fronts"):
                workers.setdefault(number, set()).add(worker)
    return [(n, *counts[n], workers.get(n, set())) for n in sorted(counts)]


def test_two_pods_form_one_cluster_and_resume_scaled_down(
    inputs: tuple[Path, Path],
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    first, later = inputs
    recovery = tmp_path / "recovery"

    logs = run_pods(2, [first], tmp_path, clickhouse_server.url, mysql_database)
    for log in logs:
        assert "entrypoint: python -m bytewax.run writech.dataflow" in log
    # Process 0 created the store with the overlay's partition count, once.
    assert len(list(recovery.glob("part-*.sqlite3"))) == 12
    # One execution of one cluster: two workers, both recorded progress.
    ((number, count, first_epoch, workers),) = executions(recovery)
    assert (number, count, workers) == (0, 2, {0, 1})
    tables = _server_tables(clickhouse_server, mysql_user, mysql_database)
    expected = replayed([first], tmp_path / "replay-first")
    for table in TABLES:
        assert rows(tables[table]) == rows(expected[table]), table
    assert len(tables["student_daily_stats"]) > 300  # a real workload, not an empty match

    # Scaled down to one pod: it resumes the two workers' state from the same
    # store, reads only the new file, and still counts each re-sent event once.
    run_pods(1, [first, later], tmp_path, clickhouse_server.url, mysql_database)
    (_, _, epoch, _), (number, count, resumed_from, workers) = executions(recovery)
    assert epoch == first_epoch
    assert (number, count, workers) == (1, 1, {0})
    assert resumed_from > first_epoch  # from the first execution's snapshot, not from scratch
    tables = _server_tables(clickhouse_server, mysql_user, mysql_database)
    expected = replayed([first, later], tmp_path / "replay-all")
    for table in TABLES:
        assert rows(tables[table]) == rows(expected[table]), table


def test_chart_job_mode_pods_backfill_as_one_cluster(
    inputs: tuple[Path, Path],
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    """Two pods of the chart's Job, named 0 and 1 (their completion indexes), each
    started by the chart's command with k8s/helm-values.yaml, backfill the files."""
    first, later = inputs
    files = [first, later]
    paths = {
        "/etc/bytewax": tmp_path / "bytewax",
        CHART_WORKDIR: tmp_path / "workdir",
        CHART_RECOVERY: tmp_path / "recovery",
        CHART_API_CACHE: tmp_path / "api-cache",
    }
    for folder in paths.values():
        folder.mkdir()
    chart_workdir(tmp_path / "app", paths, loopback_hosts(2))
    settings = {
        "WRITECH_SOURCE": "files",
        "WRITECH_INPUT_PATHS": ",".join(map(str, files)),
        "WRITECH_BATCH_SIZE": "500",
        # what the Secret writech-credentials-env gives the pods
        "WRITECH_CLICKHOUSE_URL": clickhouse_server.url,
        "WRITECH_MYSQL_URL": mysql_database,
        "WRITECH_KAFKA_OPTIONS": "",
        # two processes of one worker each: two pods are enough to form a cluster
        "BYTEWAX_WORKERS_PER_PROCESS": "1",
    }
    environments = [chart_pod_environment("job", str(index), paths, settings) for index in (0, 1)]

    logs = run_processes(environments, list(CHART_COMMAND), tmp_path / "app", tmp_path)
    for log in logs:
        assert f"entrypoint: python -m bytewax.run {tmp_path / 'workdir' / 'dataflow.py'}" in log
    ((number, count, _, workers),) = executions(tmp_path / "recovery")
    assert (number, count, workers) == (0, 2, {0, 1})
    assert not (tmp_path / "workdir" / "data").exists()  # nothing went to the embedded stores
    tables = _server_tables(clickhouse_server, mysql_user, mysql_database)
    expected = replayed(files, tmp_path / "replay")
    for table in TABLES:
        assert rows(tables[table]) == rows(expected[table]), table
