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
from benchmarks.run import CONFIGURATIONS
from tests.helpers import REPO

pytestmark = pytest.mark.services  # Tansu, the ClickHouse HTTP fixture and MariaDB

EVENTS = 2000
# Configurations that write the product's tables: all must leave the same rows.
PRODUCT = ("replay", "recovery", "kafka-embedded", "kafka-1p", "kafka-2p")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("benchmarks")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--events", str(EVENTS), "--students", "40",
         "--large-events", str(EVENTS), "--results", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
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


def test_ratios_targets_state_and_chart(run):
    stdout, report, folder = run
    assert set(report["ratios"]) >= {"replay/floor", "kafka 2 processes/1 process"}
    assert {check["target"] for check in report["targets"]} >= {
        "replay >= 0.4 x floor events/s",
        "two processes >= 1.6 x one process",
        "replay peak RSS < 1 GiB (MiB)",
    }
    for check in report["targets"]:
        assert check["target"] in stdout
    state = report["state"]
    assert state["retained_rows"] > 0
    assert state["retained_event_ids"] > 0
    assert state["memory_per_row"] > 0
    assert state["pickled_per_event_id"] > 0
    assert report["machine"]["cores"] >= 1
    assert (folder / "benchmarks.svg").read_text().lstrip().startswith("<?xml")
