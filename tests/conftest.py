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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.services.clickhouse_http import ClickHouseServer
from tests.services.kafka import TansuBroker, create_topic
from tests.services.mysql import ADMIN_ADDRESS, MysqlUser


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
