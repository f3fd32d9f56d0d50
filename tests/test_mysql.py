"""The MySQL `error_record` writer (PyMySQL), against the MariaDB test server."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from msgspec.structs import astuple

from tests.helpers import run_writech
from tests.services.mysql import ADMIN_ADDRESS, MysqlUser
from tests.test_sqlite import DAY, dated, record
from writech.reports.model import Period
from writech.reports.rows import Scope
from writech.rows import TableRows
from writech.schema import ERROR_RECORD, ERROR_RECORD_MYSQL_DDL, ErrorRecord
from writech.settings import Settings, SettingsError
from writech.stores.base import open_error_store
from writech.stores.mysql import MysqlError, MysqlErrorStore
from writech.stores.sql import EPOCH, EPOCH_DATE, day_of
from writech.stores.sqlite import SqliteErrorStore

pytestmark = pytest.mark.services

HOSTILE = [
    "'; DROP TABLE error_record; --",
    'quote " backslash \\ \\n tab \t',
    "nul \x00 byte",
    "emoji 🧑‍🏫 𝄞 汉字",
    "z" * 10_000,
    "知" * 30_000,  # 90,000 bytes: more than MySQL's TEXT holds (64 KiB)
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


class MysqlErrorWriter:
    """The store under test, fed `ErrorRecord`s as the pipeline's rows."""

    def __init__(self, url: str, deadline: float = 30.0) -> None:
        self.store = MysqlErrorStore(Settings(mysql_url=url, store_deadline=deadline))

    def write(self, records: list[ErrorRecord]) -> None:
        self.store.insert(TableRows.from_rows(ERROR_RECORD, [_as_row(r) for r in records]))

    def close(self) -> None:
        self.store.close()


def _as_row(record: ErrorRecord) -> tuple[Any, ...]:
    values = list(astuple(record))
    values[-2] = (record.date - EPOCH_DATE).days
    values[-1] = (record.created_at - EPOCH) // timedelta(microseconds=1)
    return tuple(values)


def _stored(user: MysqlUser, url: str) -> list[ErrorRecord]:
    database = urlsplit(url).path.strip("/")
    rows = user.query(f"SELECT * FROM `{database}`.error_record ORDER BY record_key")
    return [_as_record(row) for row in rows]


def _as_record(row: dict[str, Any]) -> ErrorRecord:
    values = {name: row[name] for name in ERROR_RECORD.column_names}
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


def test_an_event_with_text_as_long_as_a_message_allows_is_counted_whole(
    mysql_user: MysqlUser, mysql_database: str, tmp_path: Path
) -> None:
    """A knowledge point of almost 1 MiB (the default message limit) is stored, not a poison
    message: with TEXT columns its insert failed, and so did every run after it."""
    long_point = "知" * 340_000  # 1,020,000 bytes in UTF-8
    events = tmp_path / "long.jsonl"
    messages = [
        {
            "event_type": "grade_result",
            "student_id": "s-1",
            "event_id": f"e-{number}",
            "timestamp": "2026-09-01T08:30:00+08:00",
            "payload": {"errors": [{"question_id": "q-1", "knowledge_point": point}]},
        }
        for number, point in enumerate((long_point, "short"))
    ]
    events.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages))
    assert len(events.read_bytes().splitlines()[0]) < 1 << 20
    env = {"WRITECH_MYSQL_URL": mysql_database, "WRITECH_CLICKHOUSE_URL": ""}
    summary = run_writech("replay", str(events), "--data-dir", str(tmp_path / "data"), env=env)
    assert re.search(r"^dead-lettered +0$", summary.stdout, re.M)
    database = urlsplit(mysql_database).path.strip("/")
    stored = mysql_user.query(
        f"SELECT event_id, knowledge_point FROM `{database}`.error_record ORDER BY event_id"
    )
    assert stored == [
        {"event_id": "e-0", "knowledge_point": long_point},
        {"event_id": "e-1", "knowledge_point": "short"},
    ]


def test_a_message_limit_above_what_the_server_takes_is_refused_at_start(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    """A message near WRITECH_MAX_MESSAGE_BYTES may become a record the server refuses to
    receive (max_allowed_packet): said before anything is written, not at that message."""
    packet = int(mysql_user.query("SELECT @@GLOBAL.max_allowed_packet AS packet")[0]["packet"])
    MysqlErrorStore(Settings(mysql_url=mysql_database, max_message_bytes=packet // 2)).close()
    with pytest.raises(SettingsError, match=rf"at most {packet:,} bytes \(max_allowed_packet\)"):
        MysqlErrorStore(Settings(mysql_url=mysql_database, max_message_bytes=packet))


def test_a_killed_connection_is_reestablished(
    mysql_user: MysqlUser, mysql_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = MysqlErrorWriter(mysql_database)
    first = [_record(n) for n in range(100)]
    writer.write(first)
    sessions = mysql_user.query(
        "SELECT id FROM information_schema.processlist WHERE user = %s", mysql_user.name
    )
    assert len(sessions) == 1
    mysql_user.execute(f"KILL {int(sessions[0]['id'])}")

    second = [_record(n) for n in range(100, 250)]
    with caplog.at_level(logging.WARNING, logger="writech.stores.retry"):
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
    # "... failed: ", not "... failed 2 time(s)": no retry
    with pytest.raises(MysqlError, match=r"\w failed: .*Access denied") as failure:
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
        ("mysql://u:s3cret@127.0.0.1:70000/db", "the port must be a number from 1 to 65535"),
        ("mysql://u:s3cret@127.0.0.1:0/db", "the port must be a number from 1 to 65535"),
        ("mysql://u:s3cret@127.0.0.1:²/db", "the port must be a number from 1 to 65535"),
        (
            "mysql://u:s3cret@127.0.0.1/db?ssl_ca=/no/such/ca.pem",
            r"ssl_ca names '/no/such/ca.pem', which cannot be read \(No such file or directory\)",
        ),
        ("mysql://u:s3cret@127.0.0.1/db?ssl_cert=/", "ssl_cert names '/', which is not a file"),
        # "://" mistyped: shown up to the password (shown whole before), which is masked
        ("mysql:/u:s3cret@127.0.0.1/db", "got 'mysql:\\*\\*\\*@127.0.0.1/db'"),
        ("mysql//u:s3cret@127.0.0.1/db", "got 'mysql//u:\\*\\*\\*@127.0.0.1/db'"),
        ("u:s3cret@127.0.0.1/db", "got 'u:\\*\\*\\*@127.0.0.1/db'"),
        ("u:s3c:ret@127.0.0.1/db", "got 'u:\\*\\*\\*@127.0.0.1/db'"),
    ],
)
def test_a_malformed_url_is_a_settings_error(url: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint) as failure:
        MysqlErrorWriter(url)
    assert "s3cret" not in str(failure.value)


def test_a_table_that_cannot_hold_cjk_is_refused(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    """A pre-existing latin1 error_record on a lenient server stored 汉字 as `?` with exit 0."""
    database = urlsplit(mysql_database).path.strip("/")
    latin1 = ERROR_RECORD_MYSQL_DDL.replace("utf8mb4_bin", "latin1_bin").replace(
        "utf8mb4", "latin1"
    )
    mysql_user.execute(f"USE `{database}`")
    mysql_user.execute(latin1.replace("error_record", f"`{database}`.error_record", 1))
    with pytest.raises(
        MysqlError, match=r"cannot hold.*class_id \(latin1\).*CONVERT TO"
    ) as failure:
        MysqlErrorWriter(mysql_database)
    assert mysql_user.password not in str(failure.value)
    assert mysql_user.query(f"SELECT COUNT(*) AS n FROM `{database}`.error_record") == [{"n": 0}]


def test_writes_are_strict_even_on_a_lenient_server(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    """A value that does not fit is an error, never a truncated row: sessions run strict."""
    database = urlsplit(mysql_database).path.strip("/")
    MysqlErrorWriter(mysql_database).close()
    mysql_user.execute(
        f"ALTER TABLE `{database}`.error_record MODIFY homework_id VARCHAR(4) NOT NULL"
    )
    mysql_user.execute("SET GLOBAL sql_mode = ''")
    try:
        writer = MysqlErrorWriter(mysql_database)
        with pytest.raises(MysqlError, match="Data too long"):
            writer.write([_record(1, "longer than four")])
        writer.close()
    finally:
        mysql_user.execute("SET GLOBAL sql_mode = DEFAULT")
    assert mysql_user.query(f"SELECT COUNT(*) AS n FROM `{database}`.error_record") == [{"n": 0}]


@pytest.mark.parametrize("password", ["Sx7k/b#c?dQ", "pQss@Zw/9#rd", "Xk?y=1#zW"])
def test_an_unencoded_password_is_refused_without_showing_it(password: str) -> None:
    url = f"mysql://writer:{password}@127.0.0.1:3306/writech"
    with pytest.raises(SettingsError, match=r"percent-encoded.*WRITECH_MYSQL_PASSWORD") as failure:
        MysqlErrorWriter(url)
    message = str(failure.value)
    assert "mysql://writer:***@127.0.0.1:3306/writech" in message
    assert password not in message
    for piece in re.split(r"[/#?@]", password):  # not even a piece of it
        assert len(piece) < 4 or piece not in message


def test_the_password_may_come_from_its_own_setting(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    """No encoding needed there: WRITECH_MYSQL_PASSWORD(_FILE) beside a URL without one."""
    database = urlsplit(mysql_database).path.strip("/")
    url = f"mysql://{mysql_user.name}@{ADMIN_ADDRESS}/{database}"
    store = MysqlErrorStore(Settings(mysql_url=url, mysql_password=mysql_user.password))
    store.insert(TableRows.from_rows(ERROR_RECORD, [_as_row(_record(1))]))
    store.close()
    assert len(_stored(mysql_user, mysql_database)) == 1


# -- reads ---------------------------------------------------------------------------


def test_the_reads_and_deletes_are_those_of_the_sqlite_store(
    mysql_database: str, tmp_path: Path
) -> None:
    """One implementation of the reports' reads and of `forget` (`writech.stores.sql`), in
    either dialect: exact, though MySQL's collations take "s1" and "s1 " for one id."""
    students, classes = ("s0", "s1", "s1 ", "s2"), ("c0", "c0 ")
    schools = ("school-1", "school-1 ", "school-2")
    records = [
        dated(record(f"e{n // 3}", n % 3, student_id=students[n % 4], class_id=classes[n % 2],
                     school_id=schools[n % 3], question_id=("", "q1", "q2")[n % 3],
                     knowledge_point=text),
              date(2026, 9, 1 + n % 5))
        for n, text in enumerate(HOSTILE * 4)
    ]  # fmt: skip
    mysql = MysqlErrorStore(Settings(mysql_url=mysql_database))
    sqlite = SqliteErrorStore(tmp_path / "writech.db")
    try:
        for store in (mysql, sqlite):
            store.insert(TableRows.from_rows(ERROR_RECORD, records))
        scopes: list[tuple[Scope, str]] = [
            *(("student_id", student) for student in students),
            *(("class_id", class_id) for class_id in classes),
            ("school_id", "school-1"),
        ]
        for scope, scope_id in scopes:
            for start, end in [(1, 5), (2, 3), (4, 4), (6, 9)]:
                period = Period(date(2026, 9, start), date(2026, 9, end))
                read = mysql.question_errors(scope, scope_id, period)
                assert read == sqlite.question_errors(scope, scope_id, period)
                assert read or start == 6, "the records end on 5 September"
                assert {getattr(row, scope, scope_id) for row in read} <= {scope_id}
                named = mysql.scope_schools(scope, scope_id, period)
                assert named == sqlite.scope_schools(scope, scope_id, period)
                column = ERROR_RECORD.column_names.index(scope)
                assert named == {
                    row[5] for row in records
                    if row[column] == scope_id and start <= day_of(row[11]).day <= end
                }  # fmt: skip
        ones = sum(1 for row in records if row[3] == "s1")
        assert mysql.delete_students(["s1", "nobody"]) == sqlite.delete_students(["s1"]) == ones
        everything = Period(date(2026, 9, 1), date(2026, 9, 5))
        assert not mysql.question_errors("student_id", "s1", everything)
        assert mysql.question_errors("student_id", "s1 ", everything) == sqlite.question_errors(
            "student_id", "s1 ", everything
        )
    finally:
        mysql.close()
        sqlite.close()


def test_wrong_questions_are_grouped_and_ordered_exactly_as_in_sqlite(
    mysql_database: str, tmp_path: Path
) -> None:
    """MySQL's collations pad with spaces: grouped by the text alone, "kp" and "kp " were one
    wrong question, and "a" sorted after "a\t" (padded, a space is above a tab)."""
    texts = ("kp", "kp ", "kp  ", "kp\t", "kp\n", "kp\x00", "")
    questions = ("q", "q ", "q\t", " ", "\x00q", "")
    # each question listed twice in each submission: one row with `listed` 2
    listed = [(text, question) for text in texts for question in questions] * 2
    records = [
        record(event_id, position, knowledge_point=text, question_id=question, error_type=text)
        for position, (text, question) in enumerate(listed)
        for event_id in ("e", "e ", "e\t")
    ]
    mysql = MysqlErrorStore(Settings(mysql_url=mysql_database))
    sqlite = SqliteErrorStore(tmp_path / "writech.db")
    try:
        for store in (mysql, sqlite):
            store.insert(TableRows.from_rows(ERROR_RECORD, records))
        period = Period(DAY, DAY)
        read = mysql.question_errors("student_id", records[0][3], period)
        assert read == sqlite.question_errors("student_id", records[0][3], period)
        unnamed = sum(
            1 for row in records if row[ERROR_RECORD.column_names.index("question_id")] == ""
        )
        assert len(read) == len(records) // 2 + unnamed // 2
        assert sum(row.listed for row in read) == len(records)
    finally:
        mysql.close()
        sqlite.close()


def test_a_read_only_store_reads_and_cannot_write(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    settings = Settings(mysql_url=mysql_database)
    writer = MysqlErrorWriter(mysql_database)
    writer.write([_record(1), _record(2)])
    writer.close()
    reader = open_error_store(settings, read_only=True)
    try:
        assert reader.question_errors(
            "class_id", "plain", Period(date(2026, 9, 1), date(2026, 9, 5))
        )
        with pytest.raises(MysqlError, match="READ ONLY"):
            reader.insert(TableRows.from_rows(ERROR_RECORD, [_as_row(_record(3))]))
        with pytest.raises(MysqlError, match="READ ONLY"):
            reader.delete_students([_record(1).student_id])
    finally:
        reader.close()
    assert len(_stored(mysql_user, mysql_database)) == 2
