"""Shared test helpers: running the CLI and reading the embedded stores."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from writech.sinks.chdb import open_store

REPO = Path(__file__).resolve().parent.parent

# Every table, read back in a stable order, with FINAL: what a reader sees.
TABLE_QUERIES = {
    "student_daily_stats": "SELECT * FROM writech.student_daily_stats FINAL ORDER BY student_id, date, subject",
    "analytics_metrics": "SELECT * FROM writech.analytics_metrics FINAL ORDER BY student_id, metric_id",
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
            for row in connection.execute("SELECT * FROM error_record ORDER BY event_id, position")
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
