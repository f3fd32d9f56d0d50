"""A store or the broker goes away mid-run and comes back: nothing is lost or doubled.

Each test runs the session's workload with a snapshot every second, takes
a service down right after the first snapshot, and brings it back:

- ClickHouse stays down longer than the store's retries (about 15 s): the
  run stops with an error naming the server, having committed nothing it
  did not write; restarted with the same recovery store once ClickHouse is
  back, it catches up.
- MariaDB (a private server: the shared one is never stopped) is down for a
  few seconds: the writer reconnects and retries, and the run rides it out.
- The Kafka broker (Tansu keeping its topics in S3, so that they survive
  the restart) is down for a few seconds: the consumers reconnect by
  themselves and the run rides it out.
- The broker is not there yet when the dataflow starts: it waits, saying so
  every few seconds, and reads everything once the broker and the topic
  are there; a SIGTERM while it waits stops it at once, as a normal stop.

Afterwards every table equals that of one clean run, and no password (of
either URL, or in the Kafka options) appears in any output, table or the
recovery store.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    CHURN,
    Workload,
    assert_no_secrets,
    assert_same_tables,
    dataflow_command,
    init_recovery_store,
    kill,
    log_tail,
    read_positions,
    read_tables,
    replay_command,
    run_dataflow,
    run_writech,
    start_dataflow,
    wait_for_commit,
    wait_for_exit,
    write_workload,
)
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.kafka import TansuBroker, create_topic, produce
from tests.services.mysql import MariadbServer, MysqlUser
from tests.services.ports import wait_until
from tests.test_end_to_end_kafka import _server_tables
from writech.generate import generate

pytestmark = pytest.mark.services

OUTAGE_SECONDS = 4.0


@pytest.fixture
def private_mysql(mariadb_server: MariadbServer) -> Iterator[tuple[MysqlUser, str]]:
    """A user with a password and a database on the private MariaDB server."""
    user = MysqlUser(address=mariadb_server.address)
    yield user, user.url(user.create_database())
    if mariadb_server.running:
        user.drop()


def secrets_nowhere(secrets: list[str], log: Path, tables: dict[str, Any], recovery: Path) -> None:
    assert_no_secrets(
        secrets,
        log=log.read_text(errors="replace"),
        dead_letter=json.dumps(tables["dead_letter"], ensure_ascii=False, default=str),
        tables=json.dumps(tables, ensure_ascii=False, default=str),
        recovery_store="".join(
            part.read_bytes().decode("latin-1") for part in recovery.glob("part-*")
        ),
    )


def test_clickhouse_down_longer_than_the_retries_stops_the_run_and_a_restart_catches_up(
    workload: Workload,
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    recovery = init_recovery_store(tmp_path / "recovery")
    settings = CHURN | {
        "WRITECH_CLICKHOUSE_URL": clickhouse_server.url,
        "WRITECH_MYSQL_URL": mysql_database,
        "WRITECH_STORE_DEADLINE": "12",
    }
    command = replay_command(workload, recovery)
    log = tmp_path / "runs.log"

    process = start_dataflow(command, settings, log)
    wait_for_commit(recovery, process, log, beyond=0)
    clickhouse_server.stop()
    code = wait_for_exit(process, log)  # once the retries pass the deadline, about 12 s
    output = log.read_text(errors="replace")
    assert code != 0
    target = re.escape(
        f"http://{clickhouse_server.user}:***@127.0.0.1:{clickhouse_server.port}/writech"
    )
    assert re.search(rf"ClickHouse at {target}: insert into \w+ failed \(attempt 1\)", output)
    assert re.search(
        rf"ClickHouse at {target}: insert into \w+ failed \d+ time\(s\) over \d+ s "
        r"\(the deadline is 12 s, WRITECH_STORE_DEADLINE\)",
        output,
    )

    clickhouse_server.start()
    run_dataflow(command, settings, log)

    tables = _server_tables(clickhouse_server, mysql_user, mysql_database)
    assert_same_tables(tables, workload.tables)
    secrets_nowhere([clickhouse_server.password, mysql_user.password], log, tables, recovery)


def test_mysql_down_for_seconds_is_ridden_out(
    workload: Workload,
    clickhouse_server: ClickHouseServer,
    mariadb_server: MariadbServer,
    private_mysql: tuple[MysqlUser, str],
    tmp_path: Path,
) -> None:
    user, url = private_mysql
    recovery = init_recovery_store(tmp_path / "recovery")
    settings = CHURN | {"WRITECH_CLICKHOUSE_URL": clickhouse_server.url, "WRITECH_MYSQL_URL": url}
    log = tmp_path / "runs.log"

    process = start_dataflow(replay_command(workload, recovery), settings, log)
    wait_for_commit(recovery, process, log, beyond=0)
    mariadb_server.stop()
    time.sleep(OUTAGE_SECONDS)
    mariadb_server.start()
    assert process.poll() is None  # still there, waiting for MariaDB
    assert wait_for_exit(process, log) == 0

    target = re.escape(f"mysql://{user.name}:***@{mariadb_server.address}/") + r"\w+"
    retried = rf"MySQL at {target}: insert of \d+ error records failed \(attempt \d+\)"
    assert re.search(retried, log.read_text(errors="replace"))
    tables = _server_tables(clickhouse_server, user, url)
    assert_same_tables(tables, workload.tables)
    secrets_nowhere([clickhouse_server.password, user.password], log, tables, recovery)


def test_kafka_broker_down_for_seconds_is_ridden_out(
    workload: Workload, durable_kafka_broker: TansuBroker, tmp_path: Path
) -> None:
    broker = durable_kafka_broker
    topic = create_topic(broker.bootstrap, f"writech-events-{uuid.uuid4().hex[:8]}", partitions=3)
    produce(broker.bootstrap, topic, workload.messages)
    recovery = init_recovery_store(tmp_path / "recovery")
    kafka_secret = f"sasl-{uuid.uuid4().hex}"
    settings = CHURN | {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_BROKERS": broker.bootstrap,
        "WRITECH_KAFKA_TOPICS": topic,
        "WRITECH_KAFKA_DLQ_TOPIC": f"{topic}-dead-letters",
        "WRITECH_KAFKA_STOP_AT_END": "true",
        # Consumers prefetch at most 64 KiB, so most of the topic is still on the
        # broker when it goes away; SASL settings are ignored on a plaintext
        # connection, but must not leak.
        "WRITECH_KAFKA_OPTIONS": "queued.max.messages.kbytes=64,fetch.message.max.bytes=16384,"
        f"sasl.username=writech,sasl.password={kafka_secret}",
        "WRITECH_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "runs.log"

    process = start_dataflow(dataflow_command(recovery), settings, log)
    wait_for_commit(recovery, process, log, beyond=0)
    broker.stop()
    time.sleep(OUTAGE_SECONDS)
    broker.start()
    assert process.poll() is None  # still there, waiting for the broker
    assert wait_for_exit(process, log) == 0

    assert "Connection refused" in log.read_text(errors="replace")  # it did notice
    assert read_positions(recovery) == {
        f"{partition}-{topic}": len(workload.messages[partition::3]) for partition in range(3)
    }
    tables = read_tables(tmp_path / "data")
    assert_same_tables(tables, workload.as_read_from_kafka(topic))
    secrets_nowhere([kafka_secret], log, tables, recovery)


def _kafka_settings(broker: TansuBroker, topic: str, data: Path) -> dict[str, str]:
    return {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_BROKERS": broker.bootstrap,
        "WRITECH_KAFKA_TOPICS": topic,
        "WRITECH_KAFKA_DLQ_TOPIC": f"{topic}-dead-letters",
        "WRITECH_KAFKA_STOP_AT_END": "true",
        "WRITECH_DATA_DIR": str(data),
    }


def _waits_said(log: Path) -> int:
    """How many attempts to reach the brokers the dataflow's log tells of."""
    if not log.exists():
        return 0
    return log.read_text(errors="replace").count("waiting for the Kafka brokers at ")


def test_a_dataflow_started_before_its_broker_waits_saying_so_then_reads_everything(
    durable_kafka_broker: TansuBroker, tmp_path: Path
) -> None:
    messages = list(generate(events=6000, students=150, days=3, malformed=0.02, seed=7))
    files = write_workload(tmp_path / "workload", messages, files=1)
    run_writech("replay", "--quiet", str(files[0]), "--data-dir", str(tmp_path / "replayed"))
    workload = Workload(messages, files, read_tables(tmp_path / "replayed"))
    # The topic is ready on a broker that keeps it in S3, then the broker goes away:
    # the dataflow must not find it before it is complete.
    broker = durable_kafka_broker
    topic = create_topic(broker.bootstrap, f"writech-events-{uuid.uuid4().hex[:8]}", partitions=3)
    produce(broker.bootstrap, topic, messages)
    broker.stop()
    log = tmp_path / "run.log"

    process = start_dataflow(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        _kafka_settings(broker, topic, tmp_path / "data"),
        log,
    )
    try:
        wait_until(lambda: _waits_said(log) >= 2, 60, "two attempts to reach the broker")
        assert process.poll() is None  # waiting, not failed
        broker.start()
        assert wait_for_exit(process, log, timeout=120) == 0, log_tail(log)
    finally:
        if process.poll() is None:  # a failed check above: no process left behind
            kill(process)

    said = log.read_text(errors="replace")
    assert f"waiting for the Kafka brokers at {broker.bootstrap}: " in said
    assert "Traceback" not in said
    assert_same_tables(read_tables(tmp_path / "data"), workload.as_read_from_kafka(topic))


def test_a_sigterm_while_the_dataflow_waits_for_its_broker_stops_it_at_once(
    tmp_path: Path,
) -> None:
    broker = TansuBroker(tmp_path / "tansu.log")  # never started
    log = tmp_path / "run.log"
    process = start_dataflow(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        _kafka_settings(broker, "writech-events", tmp_path / "data"),
        log,
    )
    try:
        wait_until(lambda: _waits_said(log) >= 1, 60, "an attempt to reach the broker")
        process.send_signal(signal.SIGTERM)
        # an attempt waits at most 5 s for the broker; the stop comes after it
        assert wait_for_exit(process, log, timeout=20) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:  # a failed check above: no process left behind
            kill(process)

    said = log.read_text(errors="replace")
    assert "stopped by SIGTERM" in said
    assert "Traceback" not in said
    assert "panicked" not in said
    assert not (tmp_path / "data").exists()  # nothing was opened, nothing read
    # librdkafka's lines too are JSON, each once: it printed some 25 a second as text
    entries = [json.loads(line) for line in said.splitlines() if line and line[:3] != "== "]
    librdkafka = [entry["message"] for entry in entries if entry["logger"] == "writech.librdkafka"]
    assert any("Connection refused" in message for message in librdkafka)
    lines = [re.sub(r" \(after \d+ms in state [^)]*\)", "", message) for message in librdkafka]
    assert len(lines) == len(set(lines))
