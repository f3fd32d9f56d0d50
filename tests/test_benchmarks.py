"""The benchmark harness (`python -m benchmarks.run`) on a tiny workload: it runs every
configuration and reports each one. Speed is the harness's output, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.child import SEED
from benchmarks.floor import LEAN_STAGES, STAGES
from benchmarks.recovery_cost import Run, init_store, lines_in_snapshot, replay_command, write_input
from benchmarks.run import CONFIGURATIONS
from tests.helpers import REPO

pytestmark = pytest.mark.services  # Tansu, the ClickHouse HTTP fixture and MariaDB

EVENTS = 2000
LATENCY_RATE = 1000
# Configurations that write the product's tables: all must leave the same rows.
PRODUCT = ("replay", "recovery", "kafka-embedded", "kafka-1p", "kafka-2p")
# Tables that get one row per event (or per error, per dead letter): the same in
# every run. Daily and minute rows are written once per flush, so their number
# depends on when the flushes fall.
PER_EVENT = ("analytics_metrics", "homework_result", "error_record", "dead_letter")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("benchmarks")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--events", str(EVENTS), "--students", "40",
         "--large-events", str(EVENTS), "--results", str(folder),
         "--latency-rates", str(LATENCY_RATE), "--latency-seconds", "4",
         "--latency-warmup", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads((folder / "benchmarks.json").read_text()), folder


def test_every_configuration_is_measured_and_printed(run):
    stdout, report, _ = run
    expected = [name for name in CONFIGURATIONS if SEED.exists() or not name.startswith("seed")]
    assert [row["name"] for row in report["results"]] == expected
    lines = stdout.splitlines()
    for row in report["results"]:
        assert any(line.split()[:1] == [row["name"]] for line in lines)
        assert row["events"] == EVENTS
        assert row["seconds"] > 0
        assert row["events_per_second"] > 0
        assert row["peak_rss_mib"] > 0
        assert row["processes"] == (2 if row["name"] == "kafka-2p" else 1)


def test_product_configurations_leave_the_same_tables(run):
    _, report, _ = run
    rows = {
        row["name"]: row["detail"]["rows"] for row in report["results"] if row["name"] in PRODUCT
    }
    assert set(rows) == set(PRODUCT)
    assert all(counts == rows["replay"] for counts in rows.values()), rows
    assert rows["replay"]["student_daily_stats"] > 0


def test_rows_per_table_per_event_agree_between_floors_and_product(run):
    stdout, report, _ = run
    per_event = report["rows_per_event"]
    assert set(per_event) >= {"lean-floor", "floor", *PRODUCT}
    written = {
        row["name"]: row["detail"]["rows_written"]
        for row in report["results"]
        if "rows_written" in row["detail"]
    }
    # the floor's rows are the product's own work: per-event tables match every product
    # run, two processes' counts summed
    for name in PRODUCT:
        for table in PER_EVENT:
            assert written[name][table] == written["floor"][table], (name, table)
    # the lean floor writes no windows, and otherwise what the floor writes
    assert "student_minute_stats" not in written["lean-floor"]
    for table, count in written["lean-floor"].items():
        assert count == written["floor"][table], table
    assert written["floor"]["student_minute_stats"] > 0
    assert written["floor"]["class_minute_stats"] > 0
    for name, rows in per_event.items():
        for table, value in rows.items():
            assert value == pytest.approx(written[name][table] / EVENTS, abs=1e-4)
    assert "rows per event" in stdout


def test_stage_breakdown(run):
    stdout, report, _ = run
    stages = report["stages"]
    assert list(stages["us_per_event"]) == list(STAGES)
    assert all(value >= 0 for value in stages["us_per_event"].values())
    assert stages["us_per_event"]["msgspec"] > 0
    assert stages["us_per_event"]["windows"] > 0
    assert stages["lean_stages_us"] == pytest.approx(
        sum(stages["us_per_event"][stage] for stage in LEAN_STAGES), abs=0.01
    )
    assert stages["stages_us"] > stages["lean_stages_us"]
    # the stages do the floor's work: the same rows for every table
    floor = next(row for row in report["results"] if row["name"] == "floor")
    assert stages["rows_written"] == floor["detail"]["rows_written"]
    assert stages["processed"] == floor["detail"]["processed"]
    for stage in STAGES:
        assert any(line.split()[:1] == [stage.split()[0]] for line in stdout.splitlines())


def test_latency_from_kafka_to_clickhouse(run):
    stdout, report, _ = run
    [result] = report["latency"]
    assert result["rate"] == LATENCY_RATE
    assert result["produced_rate"] > 0
    assert result["probes"] > 0
    for kind in ("window", "daily"):
        latency = result["latency_seconds"][kind]
        assert latency["unseen"] == 0
        assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    flow = result["dataflow"]
    assert 0 < flow["messages_read"] <= result["produced_total"]
    assert flow["calls"]["insert"]["count"] > 0
    assert flow["calls"]["aggregate batch"]["count"] > 0
    assert result["flush_interval_seconds"] > 0
    assert f"latency at {LATENCY_RATE:>6,}/s" in stdout


def test_ratios_targets_state_and_chart(run):
    stdout, report, folder = run
    assert set(report["ratios"]) >= {
        "replay/seed" if SEED.exists() else "replay/floor",
        "replay/floor",
        "replay/lean-floor",
        "floor/lean-floor",
        "kafka 2 processes/1 process",
    }
    assert {check["target"] for check in report["targets"]} >= {
        "replay >= 0.7 x floor events/s",
        "two processes >= 1.8 x one process",
        "replay peak RSS <= 700 MiB (MiB)",
    }
    for check in report["targets"]:
        assert check["target"] in stdout
    state = report["state"]
    for measure in ("rows", "event_ids", "student_windows", "class_windows"):
        assert state[f"retained_{measure}"] > 0
    # the 2,000 events are one batch, flushed once at the end: the floor writes
    # each window it holds exactly once
    floor = next(row for row in report["results"] if row["name"] == "floor")
    written = floor["detail"]["rows_written"]
    assert state["retained_student_windows"] == written["student_minute_stats"]
    assert state["retained_class_windows"] == written["class_minute_stats"]
    for measure in ("row", "event_id", "student_window", "class_window"):
        assert state[f"memory_per_{measure}"] > 0
        assert state[f"pickled_per_{measure}"] > 0
    assert report["machine"]["cores"] >= 1
    assert (folder / "benchmarks.svg").read_text().lstrip().startswith("<?xml")
    # the doc's tables, filled from this run
    tables = (folder / "tables.md").read_text()
    for section in ("Results", "Rows per table per event", "Stages", "Ratios", "Latency",
                    "Targets", "State memory"):  # fmt: skip
        assert f"### {section}\n" in tables
    for row in report["results"]:
        assert f"| {row['name']} | {row['processes']} |" in tables


def test_recovery_cost_reads_how_far_a_snapshot_had_read(tmp_path: Path) -> None:
    # what benchmarks/recovery_cost.py reports of the snapshot a resume starts from
    files = write_input(tmp_path, 2000)
    store = init_store(tmp_path / "recovery")
    finished = Run(replay_command(files, tmp_path / "data", store, 1.0), store)
    assert finished.read == 2000
    assert lines_in_snapshot(store) == 2000  # the last snapshot: every line of the four files
