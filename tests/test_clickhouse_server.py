"""The ClickHouse server store (clickhouse-connect over HTTP), against the chDB-backed HTTP fixture."""

from __future__ import annotations

import http.client
import logging
import os
import subprocess
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.services.clickhouse_http import ClickHouseServer
from tests.services.tls import self_signed_certificate
from writech.aggregate import Shard
from writech.events import EventDecoder, RawBatch, dead_letter
from writech.generate import generate
from writech.rows import TableRows
from writech.schema import (
    ANALYTICS_METRICS,
    DEAD_LETTER,
    STUDENT_DAILY_STATS,
    DeadLetterRow,
    Table,
)
from writech.settings import Settings, SettingsError
from writech.stores import chdb
from writech.stores.clickhouse import ClickHouseError, ClickHouseServerStore, insert_token
from writech.stores.clickhouse import open_store as open_server_store

pytestmark = pytest.mark.services


def open_store(url: str, deadline: float = 30.0) -> ClickHouseServerStore:
    """The server store at `url`, giving up after `deadline` seconds of failures."""
    return open_server_store(Settings(clickhouse_url=url, store_deadline=deadline, store_timeout=5))


HOSTILE = [
    "'; DROP TABLE x; --",
    'quote " backslash \\ \\n tab \t',
    "nul \x00 byte",
    "emoji 🧑‍🏫 𝄞",
    "y" * 10_000,
]


def _rows() -> dict[Table, TableRows]:
    """Rows of every table, as the pipeline makes them from generated events."""
    messages = list(generate(events=1500, students=40, days=3, malformed=0.05, seed=5))
    messages += [b"{" + text.encode() for text in HOSTILE]  # dead letters with hostile raw bytes
    batch = RawBatch("events.jsonl", 0, list(range(1, len(messages) + 1)), messages)
    events, dead = EventDecoder(Settings().tz).decode_batch(batch, now=2e9)
    shard = Shard()
    metrics = shard.apply(events).metrics
    return {
        STUDENT_DAILY_STATS: TableRows.from_rows(STUDENT_DAILY_STATS, shard.flush()),
        ANALYTICS_METRICS: TableRows.from_rows(ANALYTICS_METRICS, metrics),
        DEAD_LETTER: TableRows.from_rows(DEAD_LETTER, dead),
    }


QUERIES = {
    STUDENT_DAILY_STATS: "SELECT * FROM writech.student_daily_stats FINAL ORDER BY student_id, date, subject",
    ANALYTICS_METRICS: "SELECT * FROM writech.analytics_metrics FINAL ORDER BY metric_id",
    DEAD_LETTER: "SELECT * FROM writech.dead_letter FINAL ORDER BY origin, partition, offset",
}


def _dead_letter_rows(count: int) -> list[DeadLetterRow]:
    return [dead_letter("t", 0, n, b"raw %d" % n, "bad_json", "m") for n in range(count)]


def _dead_letters(count: int) -> TableRows:
    return TableRows.from_rows(DEAD_LETTER, _dead_letter_rows(count))


def _count(server: ClickHouseServer, table: str) -> int:
    """Rows as stored, without FINAL: a duplicate insert would show here."""
    return int(server.client().query(f"SELECT count() FROM writech.{table}").result_rows[0][0])


def test_reads_like_the_embedded_store(clickhouse_server: ClickHouseServer, tmp_path: Path) -> None:
    """Same rows in, same dicts out: report code works on either store."""
    rows = _rows()
    assert all(map(len, rows.values()))
    server = open_store(clickhouse_server.url)
    embedded = chdb.open_store(tmp_path / "chdb")
    try:
        for table_rows in rows.values():
            server.insert(table_rows)
            embedded.insert(table_rows)
        for table, sql in QUERIES.items():
            assert server.query(sql) == embedded.query(sql), table.name
        by_day = (
            "SELECT date, count() AS rows, sum(version) AS events FROM writech.student_daily_stats "
            "FINAL WHERE date >= {since:Date} AND subject = {subject:String} GROUP BY date ORDER BY date"
        )
        params = {"since": "2026-09-02", "subject": "chinese"}
        found = server.query(by_day, params)
        assert found == embedded.query(by_day, params)
        assert found
        assert isinstance(found[0]["events"], int)  # 64-bit integers unquoted
        raws = {row["raw"] for row in server.query(QUERIES[DEAD_LETTER])}
        assert {"{" + text for text in HOSTILE} <= raws
    finally:
        server.close()
        embedded.close()


@pytest.mark.parametrize("after_commit", [False, True], ids=["rejected", "answer lost"])
def test_a_retried_insert_is_not_duplicated(
    clickhouse_server: ClickHouseServer, after_commit: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Rejected inserts, or ones whose answer was lost after they were written, are retried;
    the content-derived token makes the server drop the repeats."""
    store = open_store(clickhouse_server.url)
    letters = _dead_letters(500)
    clickhouse_server.fail_next_inserts(3, after_commit=after_commit)
    with caplog.at_level(logging.WARNING, logger="writech.stores.retry"):
        store.insert(letters)
    store.close()
    assert _count(clickhouse_server, "dead_letter") == 500
    assert "insert into dead_letter failed (attempt 1)" in caplog.text


def test_the_fixture_loses_answers_after_writing(clickhouse_server: ClickHouseServer) -> None:
    """The control for the test above: a lost answer did write its rows, so the retry
    really was a repeat the server had to drop."""
    open_store(clickhouse_server.url).close()
    clickhouse_server.fail_next_inserts(1, after_commit=True)
    request = urllib.request.Request(
        f"http://127.0.0.1:{clickhouse_server.port}/",
        data=b"INSERT INTO writech.dead_letter (origin, reason) FORMAT JSONEachRow\n"
        b'{"origin": "t", "reason": "bad_json"}',
        headers={"X-ClickHouse-User": "writech", "X-ClickHouse-Key": clickhouse_server.password},
    )
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(request, timeout=10)
    assert _count(clickhouse_server, "dead_letter") == 1


def test_the_fixture_honours_the_deduplication_token(clickhouse_server: ClickHouseServer) -> None:
    """Different rows under one token: the second insert is dropped, as by a server."""
    client = clickhouse_server.client()
    open_store(clickhouse_server.url).close()
    for offset in (1, 2):
        # produced now: a letter older than the table's TTL would be dropped on insert
        row = ("t", 0, offset, "bad_json", "m", "raw", "utf8", "", datetime.now(UTC))
        client.insert("dead_letter", [row], database="writech",
                      settings={"insert_deduplication_token": "same"})  # fmt: skip
    assert _count(clickhouse_server, "dead_letter") == 1


def test_the_token_is_the_content() -> None:
    letters = _dead_letter_rows(3)

    def token(table: Table, rows: list[DeadLetterRow]) -> str:
        return insert_token(TableRows.from_rows(table, rows))

    assert token(DEAD_LETTER, letters) == token(DEAD_LETTER, list(letters))
    assert token(DEAD_LETTER, letters) != token(DEAD_LETTER, letters[:2])
    assert token(DEAD_LETTER, letters) != token(ANALYTICS_METRICS, letters)


def test_retries_are_bounded_in_time(clickhouse_server: ClickHouseServer) -> None:
    store = open_store(clickhouse_server.url, deadline=6.5)
    clickhouse_server.fail_next_inserts(1000)
    with pytest.raises(
        ClickHouseError, match=r"insert into dead_letter failed \d+ time\(s\) over \d+ s.*241"
    ):
        store.insert(_dead_letters(1))
    store.close()


def test_an_outage_is_ridden_out(clickhouse_server: ClickHouseServer) -> None:
    store = open_store(clickhouse_server.url)
    clickhouse_server.stop()
    restart = threading.Timer(1.0, clickhouse_server.start)
    restart.start()
    try:
        store.insert(_dead_letters(10))  # refused until the server is back
    finally:
        restart.join()
    store.close()
    assert _count(clickhouse_server, "dead_letter") == 10


def test_a_server_that_stays_down_fails_after_the_last_attempt(
    clickhouse_server: ClickHouseServer,
) -> None:
    url = clickhouse_server.url
    clickhouse_server.stop()
    with pytest.raises(ClickHouseError, match=r"connect failed \d+ time\(s\)") as failure:
        open_store(url, deadline=6)
    assert clickhouse_server.password not in str(failure.value)


def test_bad_credentials_fail_at_once_without_the_password(
    clickhouse_server: ClickHouseServer,
) -> None:
    wrong = "Wr0ng-secret"
    # "connect failed: ", not "connect failed 2 time(s)": no retry
    with pytest.raises(ClickHouseError, match="connect failed: ") as failure:
        open_store(clickhouse_server.url_with(wrong))
    message = str(failure.value)
    assert "516" in message
    assert "Authentication failed" in message
    assert f"writech:***@127.0.0.1:{clickhouse_server.port}" in message
    assert wrong not in message
    assert clickhouse_server.password not in message


def test_an_unknown_database_fails_at_once(clickhouse_server: ClickHouseServer) -> None:
    store = open_store(clickhouse_server.url)
    clickhouse_server.client().command("DROP DATABASE writech")
    with pytest.raises(
        ClickHouseError, match=r"insert into dead_letter failed: .*UNKNOWN_DATABASE"
    ):
        store.insert(_dead_letters(1))
    store.close()


def test_the_url_may_name_only_the_writech_database(clickhouse_server: ClickHouseServer) -> None:
    with pytest.raises(SettingsError, match="WRITECH_CLICKHOUSE_URL: the tables live in database"):
        open_store(clickhouse_server.url_with(clickhouse_server.password, database="analytics"))
    with pytest.raises(SettingsError, match="WRITECH_CLICKHOUSE_URL: expected") as failure:
        open_store("tcp://writech:s3cret@127.0.0.1:9000")
    assert "s3cret" not in str(failure.value)


def test_https_with_a_private_certificate_authority(tmp_path: Path) -> None:
    try:
        certificate, key = self_signed_certificate(tmp_path)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot make a test certificate: {exc}", pytrace=False)
    server = ClickHouseServer(tmp_path / "tls-server", tls=(certificate, key))
    server.start()
    try:
        assert server.url.startswith("https://")
        store = open_store(server.url)  # ?ca_cert=<the certificate>
        store.insert(_dead_letters(3))
        assert store.query("SELECT count() AS n FROM writech.dead_letter") == [{"n": 3}]
        store.close()
        untrusted = server.url.partition("?")[0]
        with pytest.raises(ClickHouseError, match="CERTIFICATE_VERIFY_FAILED"):
            open_store(untrusted, deadline=1)
    finally:
        server.stop()


def test_the_url_takes_only_tls_parameters(clickhouse_server: ClickHouseServer) -> None:
    with pytest.raises(SettingsError, match=r"unknown parameter.*compression"):
        open_store(clickhouse_server.url + "?compression=lz4")


def test_a_certificate_or_port_the_url_names_is_checked_at_once(
    clickhouse_server: ClickHouseServer, tmp_path: Path
) -> None:
    """Not a connection error retried until the deadline: a setting to fix, in one line."""
    missing, fifo = tmp_path / "ca.pem", tmp_path / "fifo"
    os.mkfifo(fifo)  # stat, never open: reading a FIFO would block
    for parameters, complaint in [
        (f"?ca_cert={missing}", rf"ca_cert names '{missing}', which cannot be read \(No such"),
        (f"?client_cert={tmp_path}", f"client_cert names '{tmp_path}', which is not a file"),
        (f"?client_cert_key={fifo}", f"client_cert_key names '{fifo}', which is not a file"),
    ]:
        with pytest.raises(SettingsError, match=f"WRITECH_CLICKHOUSE_URL: {complaint}"):
            open_store(clickhouse_server.url + parameters, deadline=60)
    port = urlsplit(clickhouse_server.url).port
    with pytest.raises(SettingsError, match="the port must be a number from 1 to 65535"):
        open_store(clickhouse_server.url.replace(f":{port}", ":65536"), deadline=60)
    # clickhouse-connect's name for the certifi package's bundle is not a path
    store = open_store(clickhouse_server.url + "?ca_cert=certifi")
    assert store.query("SELECT 1 AS one") == [{"one": 1}]
    store.close()


def test_the_schema_is_applied_only_where_missing(clickhouse_server: ClickHouseServer) -> None:
    """Tables in place (`writech init-db`), the dataflow's user runs no DDL and needs no CREATE grant."""
    store = open_store(clickhouse_server.url)
    assert store.missing_tables() == []
    clickhouse_server.client().command("DROP TABLE writech.dead_letter")
    assert store.missing_tables() == ["dead_letter"]
    store.close()
    open_store(clickhouse_server.url).close()
    assert _count(clickhouse_server, "dead_letter") == 0  # there again, empty
