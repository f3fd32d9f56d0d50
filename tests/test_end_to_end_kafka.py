"""The production dataflow, end to end: Kafka in, the ClickHouse and MySQL servers out.

A run of `python -m bytewax.run dataflow` over a 3-partition topic (one
worker, two workers, two processes) must leave exactly the tables that
`writech replay` of the same messages leaves in the embedded stores, and
put every invalid message on the dead-letter topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, TABLE_QUERIES, read_tables, run_writech
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.kafka import consume_all, create_topic, headers_of, produce
from tests.services.mysql import MysqlUser
from tests.services.ports import free_port
from writech.generate import generate
from writech.schema import CLICKHOUSE_TABLES, DeadLetter
from writech.settings import Settings
from writech.stores.clickhouse import open_store
from writech.stores.kafka import raw_bytes

pytestmark = pytest.mark.services

# Process arguments of `python -m bytewax.run dataflow`, one list per process.
# Processes find each other through the hostfile named by BYTEWAX_HOSTFILE_PATH,
# as in the Kubernetes deployment (`-a` would take the addresses themselves).
MODES: dict[str, list[list[str]]] = {
    "1 worker": [[]],
    "2 workers": [["-w", "2"]],
    "2 processes": [["-i", "0"], ["-i", "1"]],
}
# Where a dead letter from a file and from Kafka agree (their positions differ).
DEAD_LETTER_CONTENT = ("reason", "message", "raw", "raw_encoding", "event_id")


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return list(
        generate(events=4000, students=80, days=4, malformed=0.03, duplicates=0.03, seed=23)
    )


@pytest.fixture(scope="module")
def expected(messages: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tables `writech replay` of the same messages leaves in the embedded stores."""
    folder = tmp_path_factory.mktemp("replay")
    (folder / "events.jsonl").write_bytes(b"\n".join(messages) + b"\n")
    run_writech("replay", str(folder / "events.jsonl"), "--data-dir", str(folder / "data"))
    return read_tables(folder / "data")


@pytest.fixture(scope="module")
def events_topic(kafka_broker: str, messages: list[bytes]) -> str:
    topic = create_topic(kafka_broker, f"writech-events-{uuid.uuid4().hex[:8]}", partitions=3)
    produce(kafka_broker, topic, messages)
    return topic


def run_dataflow(
    processes: list[list[str]],
    topic: str,
    kafka_broker: str,
    clickhouse_url: str,
    mysql_url: str,
    folder: Path,
) -> str:
    """Run the dataflow until the topic is drained; return the dead-letter topic's name."""
    dlq_topic = f"{topic}-dlq-{uuid.uuid4().hex[:6]}"
    hostfile = folder / "hosts.txt"
    hostfile.write_text(f"127.0.0.1:{free_port()}\n127.0.0.1:{free_port()}\n")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")
    }
    environment |= {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_BROKERS": kafka_broker,
        "WRITECH_KAFKA_TOPICS": topic,
        "WRITECH_KAFKA_DLQ_TOPIC": dlq_topic,
        "WRITECH_KAFKA_STOP_AT_END": "true",
        "WRITECH_CLICKHOUSE_URL": clickhouse_url,
        "WRITECH_MYSQL_URL": mysql_url,
        "WRITECH_DATA_DIR": str(folder / "unused-embedded-data"),
        "WRITECH_BATCH_SIZE": "500",
        "BYTEWAX_HOSTFILE_PATH": str(hostfile),
    }
    logs = [folder / f"process-{number}.log" for number in range(len(processes))]
    started = []
    for arguments, log in zip(processes, logs, strict=True):
        command = [sys.executable, "-m", "bytewax.run", "dataflow", *arguments]
        with log.open("wb") as output:
            started.append(
                subprocess.Popen(command, cwd=REPO, env=environment, stdout=output, stderr=output)
            )
    deadline = time.monotonic() + 180
    while not all(process.poll() == 0 for process in started):
        failed = any(process.poll() not in (None, 0) for process in started)
        if failed or time.monotonic() > deadline:
            for process in started:
                if process.poll() is None:  # a peer failed or time ran out: stop it by its PID
                    process.kill()
                    process.wait()
            outcome = "\n".join(
                f"exit {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
                for process, log in zip(started, logs, strict=True)
            )
            pytest.fail(f"the dataflow failed:\n{outcome}")
        time.sleep(0.1)
    assert not (folder / "unused-embedded-data").exists()  # everything went to the servers
    return dlq_topic


def _server_tables(
    clickhouse: ClickHouseServer, mysql_user: MysqlUser, mysql_url: str
) -> dict[str, Any]:
    store = open_store(Settings(clickhouse_url=clickhouse.url))
    try:
        tables = {name: store.query(sql) for name, sql in TABLE_QUERIES.items()}
    finally:
        store.close()
    database = mysql_url.rsplit("/", 1)[1]
    tables["error_record"] = [
        row
        | {
            "date": row["date"].isoformat(),
            "created_at": row["created_at"].replace(tzinfo=UTC).isoformat(),
        }
        for row in mysql_user.query(
            f"SELECT * FROM `{database}`.error_record ORDER BY student_id, event_id, position"
        )
    ]
    return tables


def _content(letters: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(letter[name] for name in DEAD_LETTER_CONTENT) for letter in letters)


@pytest.mark.parametrize("mode", list(MODES))
def test_kafka_to_servers_equals_replay_to_embedded(
    mode: str,
    expected: dict[str, Any],
    events_topic: str,
    kafka_broker: str,
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    dlq_topic = run_dataflow(
        MODES[mode], events_topic, kafka_broker, clickhouse_server.url, mysql_database, tmp_path
    )
    actual = _server_tables(clickhouse_server, mysql_user, mysql_database)

    for table in ("student_daily_stats", "analytics_metrics", "error_record"):
        assert actual[table] == expected[table], table
    assert len(actual["student_daily_stats"]) > 500  # a real workload, not an empty match
    assert len(actual["error_record"]) > 50
    dead = actual["dead_letter"]
    assert _content(dead) == _content(expected["dead_letter"])
    assert {(letter["origin"], letter["partition"]) for letter in dead} <= {
        (events_topic, partition) for partition in range(3)
    }

    # Every dead letter is on the topic too, once, with its reason and position.
    records = consume_all(kafka_broker, dlq_topic)
    on_topic = Counter((headers_of(r)["reason"], r.value()) for r in records)
    assert on_topic == Counter(
        (letter["reason"], raw_bytes(DeadLetter(**letter))) for letter in expected["dead_letter"]
    )
    positions = sorted(
        (h["origin"], int(h["partition"]), int(h["offset"])) for h in map(headers_of, records)
    )
    assert positions == sorted((d["origin"], d["partition"], d["offset"]) for d in dead)


# Strings a careless pipeline mangles; student ids are limited to 64 characters.
HOSTILE = [
    "'; DROP TABLE x; --",
    'quote " backslash \\ escaped \\n \\u0000 tab \t',
    "nul \x00 byte",
    "emoji 🧑‍🏫✍️ 𝄞 汉字",
    "w" * 10_000,
]
HOSTILE_STUDENTS = [f"s{n}-" + text[:40] for n, text in enumerate(HOSTILE)]
TIMESTAMP = "2026-09-02T09:00:00+08:00"


def _hostile_messages() -> list[bytes]:
    found = []
    for student, text in zip(HOSTILE_STUDENTS, HOSTILE, strict=True):
        envelope = {
            "student_id": student,
            "class_id": text,
            "school_id": text,
            "timestamp": TIMESTAMP,
        }
        grade = {"subject": text, "homework_id": text, "score": 50, "errors": [
            {"question_id": text, "knowledge_point": text, "error_type": text}]}  # fmt: skip
        found += [
            {**envelope, "event_type": "grade_result", "event_id": "g" + text, "payload": grade},
            {**envelope, "event_type": "stroke_raw", "event_id": "s" + text,
             "payload": {"page_id": text, "subject": text, "stroke_count": 3}},
            {**envelope, "event_type": "exam_score", "event_id": "e" + text,
             "payload": {"exam_id": text, "subject": text, "score": 9}},
        ]  # fmt: skip
    return [json.dumps(message, ensure_ascii=False).encode() for message in found] + [
        b"{" + text.encode() for text in HOSTILE
    ]


def test_hostile_strings_land_byte_identical(
    kafka_broker: str,
    kafka_topic: str,
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    produce(kafka_broker, kafka_topic, _hostile_messages())
    run_dataflow(
        MODES["1 worker"],
        kafka_topic,
        kafka_broker,
        clickhouse_server.url,
        mysql_database,
        tmp_path,
    )

    client = clickhouse_server.client()
    stats = client.query(
        "SELECT student_id, subject, class_id, school_id, error_knowledge_points "
        "FROM writech.student_daily_stats FINAL"
    ).result_rows
    assert sorted(tuple(row) for row in stats) == sorted(
        (student, text, text, text, [text])
        for student, text in zip(HOSTILE_STUDENTS, HOSTILE, strict=True)
    )
    metrics = client.query(
        "SELECT metric_id, dimension, subject, class_id FROM writech.analytics_metrics FINAL"
    ).result_rows
    assert sorted(tuple(row) for row in metrics) == sorted(
        [(prefix + text, text, text, text) for text in HOSTILE for prefix in ("s", "e")]
    )
    raws = client.query("SELECT raw FROM writech.dead_letter FINAL").result_rows
    assert sorted(tuple(row) for row in raws) == sorted(("{" + text,) for text in HOSTILE)

    database = mysql_database.rsplit("/", 1)[1]
    errors = mysql_user.query(
        "SELECT event_id, student_id, class_id, school_id, homework_id, question_id, subject, "
        f"knowledge_point, error_type FROM `{database}`.error_record"
    )
    assert sorted(tuple(row.values()) for row in errors) == sorted(
        ("g" + text, student, *[text] * 7)
        for student, text in zip(HOSTILE_STUDENTS, HOSTILE, strict=True)
    )


def test_init_db_creates_every_table_on_the_servers(
    clickhouse_server: ClickHouseServer, mysql_user: MysqlUser, mysql_database: str
) -> None:
    run_writech(
        "init-db",
        env={"WRITECH_CLICKHOUSE_URL": clickhouse_server.url, "WRITECH_MYSQL_URL": mysql_database},
    )
    tables = clickhouse_server.client().query(
        "SELECT name FROM system.tables WHERE database = 'writech'"
    )
    expected = {table.name for table in CLICKHOUSE_TABLES} | {"schema_version"}
    expected |= {view for table in CLICKHOUSE_TABLES for view in table.views()}
    assert sorted(row[0] for row in tables.result_rows) == sorted(expected)
    database = mysql_database.rsplit("/", 1)[1]
    found = {
        row[f"Tables_in_{database}"] for row in mysql_user.query(f"SHOW TABLES FROM `{database}`")
    }
    assert found == {"error_record", "schema_version"}
