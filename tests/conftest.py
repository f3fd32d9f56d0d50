"""Fixtures for the real services the production-connector tests use.

Each service listens on 127.0.0.1 only and is stopped by the PID it was
started with. A service that cannot start fails the test that needs it,
saying what is missing; nothing is skipped.

- `kafka_broker`: bootstrap address of a Tansu broker (one per session;
  `kafka_broker_process` is the `TansuBroker` itself, to stop and start it);
  `kafka_topic`: a fresh 3-partition topic on it.
- `clickhouse_server`: a fresh `ClickHouseServer` (ClickHouse's HTTP
  interface served from chDB) per test: `.url`, `.fail_next_inserts(n)`,
  `.stop()`, `.start()`.
- `mysql_database`: the URL of a fresh MariaDB database per test, reached
  as a user with a password (`mysql_user`, one per session).
- `mariadb_server`: a private MariaDB server per test, to take down and
  bring back (the shared one is never stopped).
- `durable_kafka_broker`: a Tansu broker per test that keeps its topics in
  S3 (`s3_server`, moto), so that it can be stopped and started again.
- `workload`: 100,000 generated messages in four files and the tables one
  clean replay of them leaves (once per session), for recovery tests.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.helpers import Workload, read_tables, run_writech, write_workload
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.kafka import TansuBroker, create_topic
from tests.services.mysql import ADMIN_ADDRESS, MariadbServer, MysqlUser
from tests.services.s3 import MotoServer
from writech.generate import generate
from writech.stores.chdb import close_idle


@pytest.fixture(autouse=True, scope="module")
def _embedded_stores_closed() -> Iterator[None]:
    """Close the chDB sessions a module's threads left open (a worker thread never
    closes one): a process holds one chDB path at a time, and the next module may
    open another."""
    yield
    close_idle()


@pytest.fixture(scope="session")
def kafka_broker_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    broker = TansuBroker(tmp_path_factory.mktemp("kafka") / "tansu.log")
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the Kafka broker (Tansu) could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_broker(kafka_broker_process: TansuBroker) -> str:
    return kafka_broker_process.bootstrap


@pytest.fixture
def kafka_topic(kafka_broker: str) -> str:
    return create_topic(kafka_broker, f"writech-test-{uuid.uuid4().hex[:10]}", partitions=3)


@pytest.fixture
def clickhouse_server(tmp_path: Path) -> Iterator[ClickHouseServer]:
    server = ClickHouseServer(tmp_path / "clickhouse-server")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the ClickHouse HTTP fixture could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mysql_user() -> Iterator[MysqlUser]:
    try:
        user = MysqlUser()
    except pymysql.MySQLError as exc:
        pytest.fail(
            f"MariaDB is not reachable as root without a password at {ADMIN_ADDRESS}: {exc}; "
            "start it with `bash scripts/services.sh` (or `make services`)",
            pytrace=False,
        )
    yield user
    user.drop()


@pytest.fixture
def mysql_database(mysql_user: MysqlUser) -> Iterator[str]:
    database = mysql_user.create_database()
    yield mysql_user.url(database)
    mysql_user.drop_database(database)


@pytest.fixture
def mariadb_server(tmp_path: Path) -> Iterator[MariadbServer]:
    server = MariadbServer(tmp_path / "mariadb")
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"a private MariaDB server (mariadbd) could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto.log")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the S3 endpoint (moto_server) could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def durable_kafka_broker(tmp_path: Path, s3_server: MotoServer) -> Iterator[TansuBroker]:
    s3_server.create_bucket("tansu")
    broker = TansuBroker(tmp_path / "tansu.log", "s3://tansu/", s3_server.environment())
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the Kafka broker (Tansu on S3) could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """Five school days of 500 students: 100,000 messages with 2 % malformed and 2 %
    re-sent, in four files, and the tables one uninterrupted replay of them leaves."""
    messages = list(
        generate(events=100_000, students=500, days=5, malformed=0.02, duplicates=0.02, seed=41)
    )
    files = write_workload(tmp_path_factory.mktemp("workload"), messages, files=4)
    data = tmp_path_factory.mktemp("workload-clean-run")
    run_writech("replay", "--quiet", *map(str, files), "--data-dir", str(data))
    return Workload(messages, files, read_tables(data))
