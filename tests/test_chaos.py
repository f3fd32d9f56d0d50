"""Killed at any moment and resumed, the dataflow leaves the tables of one clean run (SPEC §6).

Each test runs the session's workload (100,000 messages in four files, or
produced to a 3-partition topic) with a snapshot every second, SIGKILLs the
process five times at seeded random moments (during start-up, mid-batch,
mid-insert, mid-snapshot: wherever the delay lands; every other kill comes
after the run's first snapshot, so that progress is kept) and starts it
again from the same recovery store, then lets the last run finish. Read with FINAL,
every table must equal what one uninterrupted replay of the files left: no
message lost, none counted twice.

The runs use small source batches and frequent flushes (`CHURN`), so that
kills land inside writes as often as between them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import (
    CHURN,
    Chaos,
    Workload,
    assert_same_tables,
    dataflow_command,
    init_recovery_store,
    kill_and_resume,
    read_positions,
    read_tables,
    replay_command,
)
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.kafka import consume_all, headers_of, produce
from tests.services.mysql import MysqlUser
from tests.test_end_to_end_kafka import _server_tables

KILLS = 5


def assert_resumed_mid_input(chaos: Chaos, total: int) -> None:
    """The kills all hit a running process, and the last run started from a snapshot
    taken somewhere inside the input, not from its start or its end."""
    assert len(chaos.kills) == KILLS
    consumed = sum(
        position[1] if isinstance(position, tuple) else position or 0  # (offset, line) of a file
        for position in chaos.last_run_resumed_from.values()
    )
    assert 0 < consumed < total, chaos


def test_embedded_stores_survive_kills_with_changing_worker_counts(
    workload: Workload, tmp_path: Path
) -> None:
    """chDB + SQLite; runs alternate one and two workers (a resume may rescale)."""
    recovery = init_recovery_store(tmp_path / "recovery")
    data = tmp_path / "data"
    commands = [
        replay_command(workload, recovery, "--data-dir", str(data), "-w", "1"),
        replay_command(workload, recovery, "--data-dir", str(data), "-w", "2"),
    ]

    chaos = kill_and_resume(commands, CHURN, tmp_path / "runs.log", recovery, KILLS, seed=1)

    assert_resumed_mid_input(chaos, len(workload.messages))
    assert_same_tables(read_tables(data), workload.tables)


@pytest.mark.services
def test_server_stores_survive_kills(
    workload: Workload,
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    """The ClickHouse server (inserts with deduplication tokens) and MariaDB."""
    recovery = init_recovery_store(tmp_path / "recovery")
    settings = CHURN | {
        "WRITECH_CLICKHOUSE_URL": clickhouse_server.url,
        "WRITECH_MYSQL_URL": mysql_database,
        "WRITECH_DATA_DIR": str(tmp_path / "unused"),
    }
    command = replay_command(workload, recovery)

    chaos = kill_and_resume([command], settings, tmp_path / "runs.log", recovery, KILLS, seed=2)

    assert_resumed_mid_input(chaos, len(workload.messages))
    assert not (tmp_path / "unused").exists()  # everything went to the servers
    tables = _server_tables(clickhouse_server, mysql_user, mysql_database)
    assert_same_tables(tables, workload.tables)


@pytest.mark.services
def test_kafka_to_server_stores_survives_kills(
    workload: Workload,
    kafka_broker: str,
    kafka_topic: str,
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    """The production dataflow: Kafka in (offsets in the recovery store), servers out,
    dead letters also to a topic (at least once there: a resume may send some again)."""
    produce(kafka_broker, kafka_topic, workload.messages)
    recovery = init_recovery_store(tmp_path / "recovery")
    dead_letter_topic = f"{kafka_topic}-dead-letters"
    settings = CHURN | {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_BROKERS": kafka_broker,
        "WRITECH_KAFKA_TOPICS": kafka_topic,
        "WRITECH_KAFKA_DLQ_TOPIC": dead_letter_topic,
        "WRITECH_KAFKA_STOP_AT_END": "true",
        "WRITECH_CLICKHOUSE_URL": clickhouse_server.url,
        "WRITECH_MYSQL_URL": mysql_database,
        "WRITECH_DATA_DIR": str(tmp_path / "unused"),
    }
    command = dataflow_command(recovery)

    chaos = kill_and_resume([command], settings, tmp_path / "runs.log", recovery, KILLS, seed=3)

    assert_resumed_mid_input(chaos, len(workload.messages))
    assert not (tmp_path / "unused").exists()
    expected = workload.as_read_from_kafka(kafka_topic)
    tables = _server_tables(clickhouse_server, mysql_user, mysql_database)
    assert_same_tables(tables, expected)
    # The store's offsets: each partition read to its end.
    assert read_positions(recovery) == {
        f"{partition}-{kafka_topic}": len(workload.messages[partition::3]) for partition in range(3)
    }
    # Every dead letter reached the topic, some perhaps twice, nothing else did.
    on_topic = Counter(
        (h["origin"], int(h["partition"]), int(h["offset"]), h["reason"])
        for h in map(headers_of, consume_all(kafka_broker, dead_letter_topic))
    )
    assert set(on_topic) == {
        (d["origin"], d["partition"], d["offset"], d["reason"]) for d in expected["dead_letter"]
    }
