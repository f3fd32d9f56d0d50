"""Prometheus scrapes the product's counters from Bytewax's dataflow API.

Bytewax 0.21 serves `/metrics` on BYTEWAX_DATAFLOW_API_PORT when
BYTEWAX_DATAFLOW_API_ENABLED is set: its own metrics followed by the Python
prometheus_client default registry, where `writech.counters` lives. The
process runs here as the StatefulSet runs pod writech-0 (the local overlay's
environment, deploy/entrypoint.sh), scraped during the run as the PodMonitor
scrapes it. Bytewax listens on every interface, so the process gets a private
network namespace holding only loopback; the scrapes enter that namespace.

The input stays open after its last line until the test releases it, so the
endpoint is still up when every message has its outcome: the scraped values
must then be exactly the numbers `writech replay` reports for the same file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, get_args

import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import REPO, read_tables, run_writech, summary_numbers
from tests.test_k8s import ENTRYPOINT, pod_environment
from writech import __version__
from writech.events import RawBatch, Reason
from writech.flow import build_flow
from writech.generate import generate
from writech.schema import SCHEMA_VERSION
from writech.settings import Settings
from writech.sources.files import FilePosition, JsonLinesSource

# The file whose existence ends the held-open input.
RELEASE: Final = "WRITECH_TEST_METRICS_RELEASE"
SCRAPE: Final = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:\n"
    "    sys.stdout.write(answer.read().decode())\n"
)
# Runs a command in a new network namespace with only loopback, up.
NETWORK_NAMESPACE: Final = [
    "unshare",
    "--net",
    "--",
    "sh",
    "-c",
    'ip link set lo up && exec "$@"',
    "sh",
]

Sample = tuple[str, frozenset[tuple[str, str]]]


class _HeldPartition(StatefulSourcePartition[RawBatch, FilePosition]):
    def __init__(self, lines: StatefulSourcePartition[RawBatch, FilePosition], release: Path):
        self._lines = lines
        self._release = release
        self._exhausted = False

    def next_batch(self) -> Iterable[RawBatch]:
        if not self._exhausted:
            try:
                return self._lines.next_batch()
            except StopIteration:
                self._exhausted = True
        if self._release.exists():
            raise StopIteration
        return []

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=0.2) if self._exhausted else None

    def snapshot(self) -> FilePosition:
        return self._lines.snapshot()

    def close(self) -> None:
        self._lines.close()


class HeldOpenFiles(FixedPartitionedSource[RawBatch, FilePosition]):
    """JSON-lines files whose partitions end only once the `release` file exists."""

    def __init__(self, files: JsonLinesSource, release: Path) -> None:
        self._files = files
        self._release = release

    def list_parts(self) -> list[str]:
        return self._files.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: FilePosition | None
    ) -> _HeldPartition:
        part = self._files.build_part(step_id, for_part, resume_state)
        return _HeldPartition(part, self._release)


def held_flow() -> Dataflow:
    """The product's dataflow over the configured files, held open (run by Bytewax)."""
    settings = Settings.from_env()
    files = JsonLinesSource(settings.inputs, settings.batch_size)
    return build_flow(settings, HeldOpenFiles(files, Path(os.environ[RELEASE])))


def scrape(pid: int, url: str) -> dict[Sample, float] | None:
    """Every sample `url` serves inside process `pid`'s network namespace; None if it is down."""
    result = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", SCRAPE, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        return None
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(result.stdout)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> Sample:
    return (name, frozenset(labels.items()))


def expected_samples(summary: dict[str, int], daily_rows: int) -> dict[Sample, float]:
    """What /metrics must say once every message of the input has its outcome."""
    wanted: dict[Sample, float] = {
        sample("writech_messages_read_total"): summary["read"],
        sample("writech_events_processed_total"): summary["processed"],
        sample("writech_events_duplicate_total"): summary["duplicates"],
        # retention keeps every day of this input: all state is still held
        sample("writech_state_rows"): daily_rows,
        sample("writech_state_event_ids"): summary["processed"],
        sample("writech_build_info", version=__version__, schema=str(SCHEMA_VERSION)): 1,
    }
    for reason in get_args(Reason):
        if reason in summary:
            wanted[sample("writech_messages_dead_lettered_total", reason=reason)] = summary[reason]
    # One row per metric event, error and dead letter; daily rows are rewritten
    # as they change, so their count depends on flush timing (checked apart).
    for table in ("analytics_metrics", "error_record", "dead_letter"):
        wanted[sample("writech_rows_written_total", table=table)] = summary[table]
    return wanted


def test_metrics_endpoint_serves_the_product_counters_with_the_runs_numbers(
    tmp_path: Path,
) -> None:
    for tool, package in (("unshare", "util-linux"), ("nsenter", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package}")
    messages = generate(events=20000, students=150, days=4, malformed=0.03, duplicates=0.03)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(messages) + b"\n")
    replay = run_writech("replay", "--quiet", str(events), "--data-dir", str(tmp_path / "replay"))
    summary = summary_numbers(replay.stdout)
    daily_rows = len(read_tables(tmp_path / "replay")["student_daily_stats"])
    assert sum(summary.get(reason, 0) for reason in get_args(Reason)) == summary["dead-lettered"]
    wanted = expected_samples(summary, daily_rows)
    daily_written = sample("writech_rows_written_total", table="student_daily_stats")

    def settled(scraped: dict[Sample, float]) -> bool:
        outcomes = all(scraped.get(key) == value for key, value in wanted.items())
        return outcomes and scraped.get(daily_written, 0) >= daily_rows

    (tmp_path / "bytewax").mkdir()
    (tmp_path / "bytewax" / "hostfile.txt").write_text("127.0.0.1:9999\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "tmp").mkdir()  # the pod's emptyDir on /tmp
    for name in ("clickhouse-url", "mysql-url", "kafka-options"):
        (tmp_path / "secrets" / name).write_text("")  # no servers: the embedded stores
    environment = pod_environment(
        "local",
        "writech-0",
        {
            "/etc/bytewax": tmp_path / "bytewax",
            "/var/recovery": tmp_path / "recovery",
            "/var/run/secrets/writech": tmp_path / "secrets",
            "/app": REPO,
            "/tmp": tmp_path / "tmp",
        },
        {
            "WRITECH_SOURCE": "files",
            "WRITECH_INPUT_PATHS": str(events),
            "WRITECH_DATA_DIR": str(tmp_path / "data"),
            "WRITECH_BATCH_SIZE": "500",
        },
    )
    environment["BYTEWAX_PYTHON_FILE_PATH"] = f"{Path(__file__).resolve()}:held_flow"
    environment[RELEASE] = str(tmp_path / "release")
    assert environment["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"
    url = f"http://127.0.0.1:{environment['BYTEWAX_DATAFLOW_API_PORT']}/metrics"

    log = tmp_path / "writech-0.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*NETWORK_NAMESPACE, str(ENTRYPOINT), "run"],
            env=environment,
            stdout=output,
            stderr=output,
        )
    try:
        scraped: dict[Sample, float] | None = None
        deadline = time.monotonic() + 300  # a hang guard, not a measurement
        while process.poll() is None and time.monotonic() < deadline:
            scraped = scrape(process.pid, url) or scraped
            if scraped and settled(scraped):
                break
            time.sleep(0.5)
        assert process.poll() is None, f"the run ended early:\n{log.read_text()[-3000:]}"
        assert scraped is not None, f"/metrics never answered:\n{log.read_text()[-3000:]}"

        # Every message's outcome, as the summary of a replay of the same file.
        assert {key: scraped.get(key) for key in wanted} == wanted
        read = scraped[sample("writech_messages_read_total")]
        dead = sum(
            value
            for (name, _), value in scraped.items()
            if name == "writech_messages_dead_lettered_total"
        )
        assert read == (
            scraped[sample("writech_events_processed_total")]
            + scraped[sample("writech_events_duplicate_total")]
            + dead
        )
        # every daily row written, some more than once (as they changed)
        assert scraped[daily_written] >= daily_rows
        assert scraped[sample("writech_sink_batch_seconds_count", table="dead_letter")] > 0
        # Bytewax's own metrics on the same page: this is its endpoint.
        assert any(name.startswith("bytewax_") for name, _ in scraped)
    finally:
        (tmp_path / "release").touch()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()  # by the PID it was started with
            process.wait()
    assert process.returncode == 0, log.read_text()[-3000:]
    # Bytewax wrote its dataflow.json where the manifest says (/tmp), not in /app.
    assert (tmp_path / "tmp" / "dataflow.json").exists()
    assert read_tables(tmp_path / "data") == read_tables(tmp_path / "replay")
