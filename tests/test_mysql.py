"""The MySQL `error_record` writer (PyMySQL), against the MariaDB test server."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.services.mysql import ADMIN_ADDRESS, MysqlUser
from writech.schema import ERROR_RECORD_COLUMNS, ErrorRecord
from writech.settings import SettingsError
from writech.sinks.mysql import MysqlError, MysqlErrorWriter

pytestmark = pytest.mark.services

HOSTILE = [
    "'; DROP TABLE error_record; --",
    'quote " backslash \\ \\n tab \t',
    "nul \x00 byte",
    "emoji 🧑‍🏫 𝄞 汉字",
    "z" * 10_000,
]


def _record(number: int, text: str = "plain") -> ErrorRecord:
    return ErrorRecord(
        record_key=f"{number:032x}",
        event_id=f"event {text}",
        position=number % 3,
        student_id=f"s-{number}-{text}"[:64],
        class_id=text,
        school_id=text,
        homework_id=text,
        question_id=text,
        subject=text,
        knowledge_point=text,
        error_type=text,
        date=date(2026, 9, 1 + number % 5),
        created_at=datetime(2026, 9, 1, 8, 30, 15, 123456 + number, tzinfo=UTC),
    )


def _stored(user: MysqlUser, url: str) -> list[ErrorRecord]:
    database = urlsplit(url).path.strip("/")
    rows = user.query(f"SELECT * FROM `{database}`.error_record ORDER BY record_key")
    return [_as_record(row) for row in rows]


def _as_record(row: dict[str, Any]) -> ErrorRecord:
    values = {name: row[name] for name in ERROR_RECORD_COLUMNS}
    values["created_at"] = row["created_at"].replace(tzinfo=UTC)  # DATETIME holds UTC
    return ErrorRecord(**values)


def test_records_land_byte_identical_and_once(mysql_user: MysqlUser, mysql_database: str) -> None:
    records = [_record(n, text) for n, text in enumerate(HOSTILE)]
    records.append(_record(len(HOSTILE), "😀" * 64))  # 4-byte characters up to the limit
    writer = MysqlErrorWriter(mysql_database)
    writer.write(records)
    writer.write(records[:3])  # a replay: changes nothing
    writer.close()
    assert _stored(mysql_user, mysql_database) == sorted(records, key=lambda r: r.record_key)


def test_a_killed_connection_is_reestablished(
    mysql_user: MysqlUser, mysql_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = MysqlErrorWriter(mysql_database, first_backoff=0.05)
    first = [_record(n) for n in range(100)]
    writer.write(first)
    sessions = mysql_user.query(
        "SELECT id FROM information_schema.processlist WHERE user = %s", mysql_user.name
    )
    assert len(sessions) == 1
    mysql_user.execute(f"KILL {int(sessions[0]['id'])}")

    second = [_record(n) for n in range(100, 250)]
    with caplog.at_level(logging.WARNING, logger="writech.sinks.retry"):
        writer.write(second)
    writer.close()
    assert "retrying in" in caplog.text
    assert _stored(mysql_user, mysql_database) == first + second


def test_a_user_without_create_grant_writes_once_the_table_exists(mysql_database: str) -> None:
    """`writech init-db` as an administrator, then the dataflow with least privilege."""
    MysqlErrorWriter(mysql_database).close()  # creates the table
    database = urlsplit(mysql_database).path.strip("/")
    writer_only = MysqlUser(privileges="SELECT, INSERT, UPDATE")
    try:
        writer_only.grant(database)
        url = writer_only.url(database)
        writer = MysqlErrorWriter(url)
        records = [_record(n) for n in range(5)]
        writer.write(records)
        writer.close()
        assert _stored(writer_only, url) == records
    finally:
        writer_only.drop()


def test_bad_credentials_fail_at_once_without_the_password(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    wrong = "Wr0ng-secret"
    url = mysql_user.url(urlsplit(mysql_database).path.strip("/"), password=wrong)
    # "create table failed: ", not "create table failed 6 times": no retry
    with pytest.raises(MysqlError, match=r"create table failed: .*Access denied") as failure:
        MysqlErrorWriter(url)
    message = str(failure.value)
    assert f"mysql://{mysql_user.name}:***@{ADMIN_ADDRESS}/" in message
    assert wrong not in message
    assert mysql_user.password not in message


def test_a_missing_database_fails_at_once() -> None:
    with pytest.raises(MysqlError, match=r"failed: .*Unknown database 'writech_no_such_db'"):
        MysqlErrorWriter(f"mysql://root@{ADMIN_ADDRESS}/writech_no_such_db")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://u:s3cret@127.0.0.1:3306", "expected mysql://user:password@host:port/database"),
        ("postgres://u:s3cret@127.0.0.1/db", "expected mysql://user:password@host:port/database"),
        ("mysql://u:s3cret@127.0.0.1/db?sslmode=on", "unknown parameter"),
    ],
)
def test_a_malformed_url_is_a_settings_error(url: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint) as failure:
        MysqlErrorWriter(url)
    assert "s3cret" not in str(failure.value)
