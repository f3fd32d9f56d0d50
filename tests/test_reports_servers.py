"""Reports in production mode: the same events replayed into a ClickHouse server
(the HTTP test server) and MySQL (MariaDB) give the very reports the embedded
stores give, through the same queries."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.services.clickhouse_http import ClickHouseServer
from tests.test_reports import FROM, TO, Dataset, build_dataset, clean_environment

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.getbasetemp() / "reports-dataset")


def writech(environment: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "writech", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_environment() | environment,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def reports(environment: dict[str, str]) -> list[dict[str, Any]]:
    made = []
    for kind, scope_id, *extra in (
        ("student", "edge-graded"),
        ("student", "stu-000007"),
        ("parent", "stu-000007"),
        ("class", "class-0000"),
        ("class", "class-0000", "--subject", "math"),
        ("school", "school-000"),
    ):
        text = writech(
            environment, "report", kind, scope_id, "--format", "json",
            "--from", FROM.isoformat(), "--to", TO.isoformat(), *extra,
        )  # fmt: skip
        report = json.loads(text)
        del report["generated_at"]
        made.append(report)
    return made


def test_server_stores_give_the_embedded_reports(
    dataset: Dataset, clickhouse_server: ClickHouseServer, mysql_database: str
) -> None:
    servers = {"WRITECH_CLICKHOUSE_URL": clickhouse_server.url, "WRITECH_MYSQL_URL": mysql_database}
    events = dataset.data_dir.parent / "events.jsonl"
    writech(servers | {"WRITECH_RETENTION_DAYS": "60"}, "replay", str(events), "-q")
    embedded = reports({"WRITECH_DATA_DIR": str(dataset.data_dir)})
    assert [r["kind"] for r in embedded] == [
        "student",
        "student",
        "parent",
        "class",
        "class",
        "school",
    ]
    assert embedded[0]["knowledge_points"], "the wrong answers are read from MySQL too"
    assert embedded[3]["summary"]["flagged"], "the graded homework is read from the server too"
    assert embedded[3]["summary"]["characters"], "so are the stroke-order checks per character"
    assert reports(servers) == embedded
