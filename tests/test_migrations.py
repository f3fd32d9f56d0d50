"""Schema versions and migrations (issue 13): a store made by the first release (commit
3a5933f, "today's schema") upgraded to this release's, embedded and on the servers.

The first release's store is rebuilt here from its DDL, as that release wrote it, and
filled with the rows it wrote for the same events: this release's rows less what it did
not write (homework results, minute windows, stroke-order metrics, dead letters' times)
and its error-record keys, which named no student. An upgraded store must end exactly
as a store created by this release: the same definitions, the same rows once the same
events are replayed into it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest

from tests.helpers import run_writech
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.mysql import MysqlUser
from tests.test_sqlite import record
from writech.generate import generate
from writech.rows import TableRows
from writech.schema import (
    CLICKHOUSE_TABLES,
    ERROR_RECORD,
    ERROR_RECORD_MYSQL_LONG_TEXT,
    SCHEMA_VERSION,
    Layout,
    error_record_key,
)
from writech.settings import Settings
from writech.stores.base import layout_of
from writech.stores.chdb import open_store
from writech.stores.clickhouse import ClickHouseServerStore
from writech.stores.migrations import (
    REBUILD_SUFFIX,
    VERSIONS,
    ClickHouseSchema,
    SchemaError,
    migrate_schema,
    migrate_stores,
)
from writech.stores.mysql import MYSQL, MysqlErrorStore
from writech.stores.sqlite import connect

# -- the first release's schema, as commit 3a5933f created it ---------------------

FIRST_RELEASE_CLICKHOUSE: Final = (
    "CREATE DATABASE IF NOT EXISTS `writech`",
    """CREATE TABLE IF NOT EXISTS `writech`.`student_daily_stats` (
    `student_id` String, `date` Date, `subject` LowCardinality(String),
    `class_id` LowCardinality(String), `school_id` LowCardinality(String),
    `homework_count` UInt32, `homework_completed` UInt32, `homework_avg_score` Float64,
    `study_duration_minutes` UInt64, `stroke_count_total` UInt64, `practice_total_chars` UInt64,
    `practice_count` UInt32, `stroke_order_accuracy` Float64, `writing_quality_count` UInt32,
    `writing_quality_avg` Float64, `writing_speed_avg` Float64, `error_count` UInt32,
    `error_knowledge_points` Array(String), `exam_count` UInt32, `exam_avg_score` Float64,
    `login_count` UInt32, `version` UInt64
) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(date)
ORDER BY (student_id, date, subject) SETTINGS non_replicated_deduplication_window = 1000""",
    """CREATE TABLE IF NOT EXISTS `writech`.`analytics_metrics` (
    `metric_id` String, `student_id` String, `class_id` LowCardinality(String),
    `school_id` LowCardinality(String), `subject` LowCardinality(String),
    `metric_type` LowCardinality(String), `metric_value` Float64, `dimension` String,
    `period` LowCardinality(String), `period_start` Date, `period_end` Date,
    `created_at` DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(period_start)
ORDER BY (student_id, period_start, metric_type, metric_id)
SETTINGS non_replicated_deduplication_window = 1000""",
    """CREATE TABLE IF NOT EXISTS `writech`.`dead_letter` (
    `origin` String, `partition` Int32, `offset` Int64, `reason` LowCardinality(String),
    `message` String, `raw` String, `raw_encoding` LowCardinality(String), `event_id` String
) ENGINE = ReplacingMergeTree ORDER BY (origin, partition, offset)
SETTINGS non_replicated_deduplication_window = 1000""",
)
_RECORD_COLUMNS: Final = """\
    record_key {key} PRIMARY KEY, event_id TEXT NOT NULL, position {int} NOT NULL,
    student_id {student} NOT NULL, class_id TEXT NOT NULL, school_id TEXT NOT NULL,
    homework_id TEXT NOT NULL, question_id TEXT NOT NULL, subject TEXT NOT NULL,
    knowledge_point TEXT NOT NULL, error_type TEXT NOT NULL, date {date} NOT NULL,
    created_at {instant} NOT NULL"""
FIRST_RELEASE_SQLITE: Final = (
    "CREATE TABLE IF NOT EXISTS error_record (\n"
    + _RECORD_COLUMNS.format(key="TEXT", int="INTEGER", student="TEXT", date="TEXT", instant="TEXT")
    + ",\n    UNIQUE (event_id, position)\n)",
    "CREATE INDEX IF NOT EXISTS error_record_student_date ON error_record (student_id, date)",
)
FIRST_RELEASE_MYSQL: Final = (
    "CREATE TABLE IF NOT EXISTS error_record (\n"
    + _RECORD_COLUMNS.format(
        key="CHAR(32) CHARACTER SET ascii",
        int="INT",
        student="VARCHAR(64)",
        date="DATE",
        instant="DATETIME(6)",
    )
    + ",\n    KEY student_date (student_id, date)\n"
    ") ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
)
# The tables the first release wrote, and what it wrote of them.
FIRST_RELEASE_TABLES: Final = ("student_daily_stats", "analytics_metrics", "dead_letter")
UNKNOWN_TIME: Final = "1970-01-01 00:00:00.000000"

# Every test here picks its stores itself, whatever this shell's WRITECH_* say.
EMBEDDED: Final = {"WRITECH_CLICKHOUSE_URL": "", "WRITECH_MYSQL_URL": ""}

Contents = dict[str, list[dict[str, Any]]]


def first_release_key(event_id: str, position: int) -> str:
    """The first release's error-record key: the event and the position, no student."""
    return hashlib.blake2b(f"{event_id}\x1f{position}".encode(), digest_size=16).hexdigest()


def first_release_rows(contents: Contents) -> Contents:
    """What the first release wrote for the events this release wrote `contents` for."""
    return {
        "student_daily_stats": contents["student_daily_stats"],
        "analytics_metrics": [
            row
            for row in contents["analytics_metrics"]
            if row["metric_type"] != "stroke_order_score"
        ],
        "dead_letter": [
            {name: value for name, value in row.items() if name != "produced_at"}
            for row in contents["dead_letter"]
        ],
        "error_record": [
            row | {"record_key": first_release_key(row["event_id"], row["position"])}
            for row in contents["error_record"]
        ],
    }


def inserts(rows: Contents) -> list[str]:
    """INSERT statements of the ClickHouse tables' `rows`, as JSONEachRow."""
    return [
        f"INSERT INTO `writech`.`{table}` FORMAT JSONEachRow\n"
        + "\n".join(json.dumps(row, ensure_ascii=False) for row in rows[table])
        for table in FIRST_RELEASE_TABLES
        if rows[table]
    ]


# chDB runs one engine per process: a store made without writech's schema code
# is made in a process of its own.
_RAW_CHDB: Final = """
import json, sys
from chdb import session
store = session.Session(sys.argv[1])
for statement in json.loads(open(sys.argv[2]).read()):
    store.query(statement)
store.close()
"""


def run_in_chdb(path: Path, statements: list[str]) -> None:
    script = path.parent / "statements.json"
    script.write_text(json.dumps(statements))
    subprocess.run([sys.executable, "-c", _RAW_CHDB, str(path), str(script)], check=True)


def make_first_release_store(data_dir: Path, rows: Contents) -> None:
    """An embedded store (chDB and SQLite) as the first release left it, holding `rows`."""
    data_dir.mkdir(parents=True)
    run_in_chdb(data_dir / "clickhouse", [*FIRST_RELEASE_CLICKHOUSE, *inserts(rows)])
    with sqlite3.connect(data_dir / "writech.db") as connection:
        for statement in FIRST_RELEASE_SQLITE:
            connection.execute(statement)
        names = ERROR_RECORD.column_names
        connection.executemany(
            f"INSERT INTO error_record ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [tuple(row[name] for name in names) for row in rows["error_record"]],
        )
    connection.close()


# -- reading a store ------------------------------------------------------------------


def read_clickhouse(store: Any) -> Contents:
    """Every ClickHouse table, as read through its `_latest` view, in key order."""
    return {
        table.name: store.query(
            f"SELECT * FROM `writech`.`{table.name}_latest` ORDER BY {', '.join(table.order_by)}"
        )
        for table in CLICKHOUSE_TABLES
    }


def read_embedded(data_dir: Path) -> Contents:
    store = open_store(data_dir / "clickhouse")
    try:
        contents = read_clickhouse(store)
    finally:
        store.close()
    with sqlite3.connect(data_dir / "writech.db") as connection:
        connection.row_factory = sqlite3.Row
        contents["error_record"] = [
            dict(row)
            for row in connection.execute("SELECT * FROM error_record ORDER BY record_key")
        ]
    connection.close()
    return contents


def definitions(data_dir: Path) -> dict[str, Any]:
    """What an embedded store is made of: ClickHouse's CREATE statements, SQLite's structure."""
    store = open_store(data_dir / "clickhouse")
    try:
        found: dict[str, Any] = {
            row["name"]: row["create_table_query"]
            for row in store.query(
                "SELECT name, create_table_query FROM system.tables WHERE database = 'writech'"
            )
        }
    finally:
        store.close()
    with sqlite3.connect(data_dir / "writech.db") as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master "
                                                       "WHERE type = 'table' ORDER BY name")]  # fmt: skip
        for table in tables:
            indexes = connection.execute(f"PRAGMA index_list({table})").fetchall()
            found[f"sqlite {table}"] = {
                "columns": connection.execute(f"PRAGMA table_info({table})").fetchall(),
                "indexes": {
                    (unique, tuple(c[2] for c in connection.execute(f"PRAGMA index_info({name})")))
                    for _, name, unique, *_ in indexes
                },
            }
    connection.close()
    return found


def versions(data_dir: Path) -> tuple[list[int], list[int]]:
    """The versions recorded in the embedded ClickHouse and SQLite stores."""
    store = open_store(data_dir / "clickhouse")
    try:
        clickhouse = [int(row["version"]) for row in store.query(
            f"SELECT version FROM writech.{VERSIONS} FINAL ORDER BY version")]  # fmt: skip
    finally:
        store.close()
    with sqlite3.connect(data_dir / "writech.db") as connection:
        sql = [row[0] for row in connection.execute(f"SELECT version FROM {VERSIONS} ORDER BY 1")]
    connection.close()
    return clickhouse, sql


# -- the data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated events with every kind of output: errors, dead letters, exams, characters."""
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    messages = generate(events=4000, students=40, days=3, class_size=20, malformed=0.03, seed=13)
    path.write_bytes(b"".join(message + b"\n" for message in messages))
    return path


@pytest.fixture(scope="module")
def fresh(events: Path, tmp_path_factory: pytest.TempPathFactory) -> Contents:
    """The tables this release makes of the events, in a store it created."""
    data_dir = tmp_path_factory.mktemp("fresh") / "data"
    run_writech("replay", str(events), "--data-dir", str(data_dir), "-q", env=EMBEDDED)
    return read_embedded(data_dir)


@pytest.fixture(scope="module")
def fresh_definitions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("fresh-definitions") / "data"
    run_writech("init-db", "--data-dir", str(data_dir), env=EMBEDDED)
    return definitions(data_dir)


def test_the_first_release_store_is_what_it_was(fresh: Contents) -> None:
    """The control: the rows the first release wrote differ from this release's where the
    migration must act (keys, dead letters' times) or where only a replay can help."""
    first = first_release_rows(fresh)
    assert fresh["error_record"]
    assert fresh["dead_letter"]
    assert fresh["homework_result"]
    assert len(first["analytics_metrics"]) < len(fresh["analytics_metrics"])
    assert {row["record_key"] for row in first["error_record"]}.isdisjoint(
        row["record_key"] for row in fresh["error_record"]
    )


@pytest.mark.parametrize("upgrade", ["writech migrate", "opened by a replay"])
def test_an_embedded_store_of_the_first_release_ends_as_a_fresh_one(
    upgrade: str,
    events: Path,
    fresh: Contents,
    fresh_definitions: dict[str, Any],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    make_first_release_store(data_dir, first_release_rows(fresh))
    assert versions_absent(data_dir)
    replay = ("replay", str(events), "--data-dir", str(data_dir), "-q")
    if upgrade == "writech migrate":
        said = run_writech("migrate", "--data-dir", str(data_dir), env=EMBEDDED).stderr
        assert "rebuilt dead_letter" in said
        assert "created homework_result" in said
        assert "rebuilt error_record, keyed by (student_id, event_id, position)" in said
        assert f"schema version 1 -> {SCHEMA_VERSION}" in said
        # what an upgrade alone gives: the same definitions, the rows it could carry over
        assert definitions(data_dir) == fresh_definitions
        upgraded = read_embedded(data_dir)
        assert upgraded["error_record"] == fresh["error_record"]  # re-keyed
        assert upgraded["student_daily_stats"] == fresh["student_daily_stats"]
        assert upgraded["analytics_metrics"] == first_release_rows(fresh)["analytics_metrics"]
        assert upgraded["dead_letter"] == [
            row | {"produced_at": UNKNOWN_TIME} for row in fresh["dead_letter"]
        ]
        assert upgraded["homework_result"] == []
        # a second run finds nothing to do
        again = run_writech("migrate", "--data-dir", str(data_dir), env=EMBEDDED).stderr
        assert again.strip() == f"every store at schema version {SCHEMA_VERSION}"
        run_writech(*replay, env=EMBEDDED)
    else:
        said = run_writech(*replay, env=EMBEDDED).stderr
        assert f"schema version 1 -> {SCHEMA_VERSION}" in said  # logged as it upgraded
    assert versions(data_dir) == ([SCHEMA_VERSION], [SCHEMA_VERSION])
    assert definitions(data_dir) == fresh_definitions
    assert read_embedded(data_dir) == fresh


def versions_absent(data_dir: Path) -> bool:
    with sqlite3.connect(data_dir / "writech.db") as connection:
        found: int = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = ?", (VERSIONS,)
        ).fetchone()[0]
    connection.close()
    return found == 0


def test_a_fresh_store_is_created_at_the_current_version_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    with caplog.at_level("WARNING"):
        open_store(settings.clickhouse_dir, layout_of(settings)).close()
        connect(settings.sqlite_path).close()
    assert versions(tmp_path / "data") == ([SCHEMA_VERSION], [SCHEMA_VERSION])
    assert caplog.text == ""


def test_a_store_newer_than_the_release_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = open_store(data_dir / "clickhouse")
    store.command(f"INSERT INTO writech.{VERSIONS} VALUES ({SCHEMA_VERSION + 1}, now64(6), 'x')")
    store.close()
    with pytest.raises(SchemaError, match=f"holds schema version {SCHEMA_VERSION + 1}, newer"):
        open_store(data_dir / "clickhouse")
    connection = connect(data_dir / "writech.db")
    connection.execute(f"INSERT INTO {VERSIONS} VALUES ({SCHEMA_VERSION + 1}, '2030-01-01', 'x')")
    connection.close()
    with pytest.raises(SchemaError, match=r"SQLite store at .* newer than this release"):
        connect(data_dir / "writech.db")


def test_migrate_changes_a_ttl_in_place_and_finishes_a_stopped_rebuild(tmp_path: Path) -> None:
    """A changed TTL is an ALTER, not a copy; a scratch table a stopped rebuild left is dropped."""
    settings = Settings(data_dir=str(tmp_path / "data"))
    store = open_store(settings.clickhouse_dir)
    store.command(
        "INSERT INTO writech.dead_letter (origin, offset, reason, produced_at) "
        "VALUES ('f', 1, 'bad_json', now64(6))"
    )
    store.command(f"CREATE TABLE writech.dead_letter{REBUILD_SUFFIX} (x Int8) ENGINE = Log")
    store.close()
    done = migrate_stores(Settings(data_dir=settings.data_dir, dead_letter_ttl_days=7))
    assert [line.partition(": ")[2] for line in done] == [
        "dead_letter: TTL toDateTime(produced_at) + toIntervalDay(7) WHERE produced_at > 0",
        "dead_letter_redrive: TTL toDateTime(redriven_at) + toIntervalDay(7)",
    ]
    store = open_store(settings.clickhouse_dir)
    try:
        (query,) = store.query(
            "SELECT create_table_query FROM system.tables WHERE name = 'dead_letter'"
        )
        assert "toIntervalDay(7)" in query["create_table_query"]
        names = {row["name"] for row in store.query("SELECT name FROM system.tables")}
        assert f"dead_letter{REBUILD_SUFFIX}" not in names
        assert store.query("SELECT origin FROM writech.dead_letter_latest") == [{"origin": "f"}]
    finally:
        store.close()


def test_the_dead_letters_the_first_release_left_outlive_the_ttl(tmp_path: Path) -> None:
    """Letters of unknown production time sit in partition 197001, which the TTL leaves alone."""
    store = open_store(tmp_path / "clickhouse")
    try:
        store.command(
            "INSERT INTO writech.dead_letter (origin, offset, reason, produced_at) VALUES "
            "('old', 1, 'bad_json', 0), ('expired', 1, 'bad_json', now64(6) - INTERVAL 400 DAY)"
        )
        store.command("OPTIMIZE TABLE writech.dead_letter FINAL")
        rows = store.query("SELECT origin, _partition_id AS p FROM writech.dead_letter")
        assert rows == [{"origin": "old", "p": "197001"}]
    finally:
        store.close()


# -- servers ----------------------------------------------------------------------------


@pytest.fixture
def first_release_servers(
    fresh: Contents, clickhouse_server: ClickHouseServer, mysql_user: MysqlUser, mysql_database: str
) -> dict[str, str]:
    """A ClickHouse server and a MySQL database as the first release left them."""
    rows = first_release_rows(fresh)
    client = clickhouse_server.client()
    for statement in [*FIRST_RELEASE_CLICKHOUSE, *inserts(rows)]:
        client.command(statement)
    database = urlsplit(mysql_database).path.strip("/")
    mysql_user.execute(f"USE `{database}`")
    mysql_user.execute(FIRST_RELEASE_MYSQL.replace("error_record", f"`{database}`.error_record", 1))
    names = ERROR_RECORD.column_names
    for row in rows["error_record"]:
        # SQLite's ISO times, as MySQL's DATETIME holds them (UTC, no offset)
        created_at = datetime.fromisoformat(row["created_at"]).replace(tzinfo=None)
        mysql_user.execute(
            f"INSERT INTO `{database}`.error_record ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))})",
            *(row[name] for name in names[:-1]),
            created_at,
        )
    return {"WRITECH_CLICKHOUSE_URL": clickhouse_server.url, "WRITECH_MYSQL_URL": mysql_database}


def writech_failing(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0, result.stderr
    return result


def server_counts(clickhouse_server: ClickHouseServer) -> dict[str, int]:
    client = clickhouse_server.client()
    return {
        table: int(client.query(f"SELECT count() FROM writech.{table}").result_rows[0][0])
        for table in FIRST_RELEASE_TABLES
    }


def test_servers_of_the_first_release_are_refused_until_migrated(
    first_release_servers: dict[str, str],
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    events: Path,
    fresh: Contents,
) -> None:
    env = first_release_servers
    before = server_counts(clickhouse_server)
    refusal = (
        f"holds schema version 1; this release writes version {SCHEMA_VERSION}: "
        "stop the dataflow and run `writech migrate`"
    )
    # the replay command and init-db refuse in one line, before reading anything
    for command in (["replay", str(events), "-q"], ["init-db"]):
        result = writech_failing("-m", "writech", *command, env=env)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert refusal in result.stderr
    # so does the flow that bytewax.run runs (the image's), from its sinks
    flow = writech_failing(
        "-m", "bytewax.run", "writech.dataflow", env=env | {"WRITECH_INPUT_PATHS": str(events)}
    )
    assert refusal in flow.stderr
    assert server_counts(clickhouse_server) == before  # nothing was written
    with pytest.raises(SchemaError, match=r"MySQL at .* holds schema version 1"):
        MysqlErrorStore(Settings(mysql_url=mysql_database))

    said = run_writech("migrate", env=env).stderr
    assert "rebuilt dead_letter" in said
    assert "rebuilt error_record" in said
    run_writech("replay", str(events), "-q", env=env)

    server = ClickHouseServerStore(Settings(clickhouse_url=clickhouse_server.url))
    try:
        assert read_clickhouse(server) == {name: rows for name, rows in fresh.items()
                                           if name != "error_record"}  # fmt: skip
        assert server.query(f"SELECT version FROM writech.{VERSIONS} FINAL") == [
            {"version": SCHEMA_VERSION}
        ]
    finally:
        server.close()
    database = urlsplit(mysql_database).path.strip("/")
    keys = mysql_user.query(f"SELECT record_key FROM `{database}`.error_record ORDER BY 1")
    assert [row["record_key"] for row in keys] == sorted(
        error_record_key(row["student_id"], row["event_id"], row["position"])
        for row in fresh["error_record"]
    )
    assert mysql_user.query(f"SELECT version FROM `{database}`.{VERSIONS}") == [
        {"version": SCHEMA_VERSION}
    ]


def test_a_mysql_store_of_version_2_is_refused_then_migrated_to_text_of_any_length(
    mysql_user: MysqlUser, mysql_database: str
) -> None:
    """Version 3: MySQL's error_record held free text as TEXT (64 KiB), so a longer value
    stopped the run; `writech migrate` makes it LONGTEXT, keeping every record."""
    database = urlsplit(mysql_database).path.strip("/")
    mysql_user.execute(f"USE `{database}`")
    mysql_user.execute(FIRST_RELEASE_MYSQL)  # version 2 had the same table
    mysql_user.execute(MYSQL.versions_ddl)
    mysql_user.execute(MYSQL.record_version, 2, "2026-11-26 00:00:00", "version 2")
    kept = record("e-1", 0)
    long = record("e-2", 0, knowledge_point="知" * 30_000)  # 90,000 bytes
    names = ERROR_RECORD.column_names
    mysql_user.execute(
        f"INSERT INTO error_record ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",
        *kept[:-2], "2026-09-01", "2026-09-01 08:30:15",
    )  # fmt: skip
    settings = Settings(mysql_url=mysql_database)
    refusal = f"holds schema version 2; this release writes version {SCHEMA_VERSION}"
    with pytest.raises(SchemaError, match=refusal):
        MysqlErrorStore(settings)

    store = MysqlErrorStore(settings, upgrade=True)
    try:
        assert store.upgraded == [
            "error_record: free-text columns hold any length (LONGTEXT)",
            f"schema version 2 -> {SCHEMA_VERSION}",
        ]
        store.insert(TableRows.from_rows(ERROR_RECORD, [long]))
    finally:
        store.close()
    point = names.index("knowledge_point")
    stored = mysql_user.query(
        f"SELECT record_key, knowledge_point FROM `{database}`.error_record ORDER BY 1"
    )
    assert sorted((row["record_key"], row["knowledge_point"]) for row in stored) == sorted(
        (row[0], row[point]) for row in (kept, long)
    )
    fresh = mysql_user.create_database()
    try:
        MysqlErrorStore(Settings(mysql_url=mysql_user.url(fresh))).close()
        definitions = [
            mysql_user.query(f"SHOW CREATE TABLE `{name}`.error_record")[0]["Create Table"]
            for name in (database, fresh)
        ]
    finally:
        mysql_user.drop_database(fresh)
    assert definitions[0] == definitions[1]
    assert definitions[0].count("longtext") == len(ERROR_RECORD_MYSQL_LONG_TEXT)


# -- a cluster --------------------------------------------------------------------------


class OneServerForACluster:
    """An embedded engine standing in for a cluster's replica: every statement is kept as
    sent, and run as one server would (ON CLUSTER and the replication taken out)."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        self.session = session.Session(str(path))
        self.sent: list[str] = []

    def command(self, sql: str) -> None:
        self.sent.append(sql)
        one_server = re.sub(r"Replicated(\w+MergeTree)\('[^']*', '[^']*'(, )?", r"\1(", sql)
        one_server = one_server.replace(" ON CLUSTER `writech`", "").replace(
            "replicated_deduplication_window = 1000, "
            "replicated_deduplication_window_seconds = 3600",
            "non_replicated_deduplication_window = 1000",
        )
        self.session.query(one_server)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(
            self.session.query(sql, "JSON", params=params).bytes()
        )["data"]
        return data

    def insert(self, rows: TableRows) -> None:
        raise AssertionError("a migration inserts with INSERT ... SELECT")

    def delete(self, table: str, where: str, params: dict[str, Any]) -> None:
        raise AssertionError("a migration deletes nothing")

    def close(self) -> None:
        self.session.close()


def test_on_a_cluster_every_statement_runs_on_cluster_and_parses(tmp_path: Path) -> None:
    """Replicated DDL cannot run here (no Keeper): a first-release store is migrated with a
    cluster's layout by a stand-in replica, and every statement sent is checked as sent."""
    path = tmp_path / "clickhouse"
    run_in_chdb(path, list(FIRST_RELEASE_CLICKHOUSE))
    replica = OneServerForACluster(path)
    try:
        layout = Layout(cluster="writech", ttl_days={"dead_letter": 30})
        done = migrate_schema(ClickHouseSchema(replica, layout, "a replica"))
        assert "rebuilt dead_letter (0 rows)" in done
        assert f"schema version 1 -> {SCHEMA_VERSION}" in done
        for statement in replica.sent:
            replicated = not statement.startswith("INSERT")  # an insert replicates itself
            assert (" ON CLUSTER `writech`" in statement) == replicated, statement
            if statement.startswith("CREATE TABLE"):
                assert (
                    "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}'"
                    in statement
                )
            escaped = statement.replace("\\", "\\\\").replace("\n", "\\n")  # as a server gets it
            formatted = replica.query("SELECT formatQuery({sql:String}) AS f", {"sql": escaped})
            assert formatted[0]["f"]
        kinds = {statement.split(" ")[0] for statement in replica.sent}
        assert kinds == {"CREATE", "DROP", "INSERT", "EXCHANGE"}
    finally:
        replica.close()
