"""The table registry's DDL (issue 13): time columns, partitions, TTLs, codecs, indexes,
views, replicated DDL, and the error records' key. Pure: what chDB makes of the
statements is tested in tests/test_migrations.py."""

from __future__ import annotations

import re
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writech.aggregate import Shard
from writech.events import EventDecoder, RawBatch
from writech.generate import generate
from writech.schema import (
    CLICKHOUSE_TABLES,
    DEAD_LETTER,
    ERROR_RECORD,
    STUDENT_DAILY_STATS,
    TABLES,
    DailyStats,
    Layout,
    Table,
    error_record_key,
)
from writech.settings import Settings, SettingsError
from writech.stores.base import layout_of
from writech.stores.migrations import Definition

TEMPORAL: Final = re.compile(r"^(Date|DateTime\('UTC'\)|DateTime64\(6, 'UTC'\))$")
CLUSTER: Final = Layout(cluster="writech")


@pytest.mark.parametrize("table", CLICKHOUSE_TABLES, ids=lambda table: table.name)
def test_every_table_is_partitioned_by_the_month_of_a_time_column(table: Table) -> None:
    found = re.fullmatch(r"toYYYYMM\((\w+)\)", table.partition_by)
    assert found, table.partition_by
    assert TEMPORAL.match(dict(table.columns)[found[1]])


@given(days=st.dictionaries(st.sampled_from([t.name for t in TABLES]), st.integers(0, 3650)))
def test_a_ttl_is_in_the_ddl_exactly_where_days_are_configured(days: dict[str, int]) -> None:
    layout = Layout(ttl_days=days)
    for table in CLICKHOUSE_TABLES:
        ttl = re.search(r"\nTTL (.*)\n", table.ddl(layout=layout))
        kept = days.get(table.name, 0) if table.ttl else 0
        assert (ttl[1] if ttl else None) == (table.ttl.format(days=kept) if kept else None)


def test_dead_letters_expire_by_production_except_those_of_unknown_time() -> None:
    ddl = DEAD_LETTER.ddl(layout=Layout(ttl_days={DEAD_LETTER.name: 30}))
    assert "\nPARTITION BY toYYYYMM(produced_at)\n" in ddl
    assert "\nTTL toDateTime(produced_at) + INTERVAL 30 DAY WHERE produced_at > 0\n" in ddl
    assert "ENGINE = ReplacingMergeTree(produced_at)\n" in ddl
    assert "`raw` String CODEC(ZSTD(3))" in ddl
    assert "`message` String CODEC(ZSTD(3))" in ddl


def test_class_and_school_filters_have_skipping_indexes() -> None:
    ddl = STUDENT_DAILY_STATS.ddl()
    for column in ("class_id", "school_id"):
        assert f"INDEX `{column}_bloom` `{column}` TYPE bloom_filter GRANULARITY 1" in ddl
    assert "`error_knowledge_points` Array(LowCardinality(String))" in ddl


@pytest.mark.parametrize("table", CLICKHOUSE_TABLES, ids=lambda table: table.name)
def test_replicated_ddl_on_a_cluster(table: Table) -> None:
    ddl = table.ddl(layout=CLUSTER)
    assert ddl.startswith(
        f"CREATE TABLE IF NOT EXISTS `writech`.`{table.name}` ON CLUSTER `writech` ("
    )
    engine = re.search(r"ENGINE = (\w+)\((.*)\)\n", ddl)
    assert engine
    assert engine[1] == "ReplicatedReplacingMergeTree"
    parameters = ["'/clickhouse/tables/{uuid}/{shard}'", "'{replica}'"]
    assert engine[2].split(", ") == parameters + ([table.version] if table.version else [])
    # a retried insert is dropped by every replica: the window lives in Keeper
    assert "replicated_deduplication_window = 1000" in ddl
    assert "non_replicated" not in ddl
    assert all(
        " ON CLUSTER `writech` AS SELECT " in view for view in table.views(layout=CLUSTER).values()
    )


def test_one_server_gets_plain_engines() -> None:
    for table in CLICKHOUSE_TABLES:
        ddl = table.ddl()
        assert "ON CLUSTER" not in ddl
        assert "Replicated" not in ddl
        assert "non_replicated_deduplication_window = 1000" in ddl


def test_the_views_read_the_upserted_truth() -> None:
    views = STUDENT_DAILY_STATS.views()
    assert views["student_daily_stats_latest"].endswith(
        "AS SELECT * FROM `writech`.`student_daily_stats` FINAL"
    )
    by_class = views["student_daily_stats_by_class_id"]
    # the students the class ever had (no FINAL: the index finds them), then their rows
    # with FINAL, then the class again: a student's newest row may name another class
    assert (
        "FINAL WHERE `student_id` IN (SELECT `student_id` FROM `writech`.`student_daily_stats` "
        "WHERE `class_id` = {class_id:String}) AND `class_id` = {class_id:String}"
    ) in by_class


def test_readers_find_their_view() -> None:
    assert STUDENT_DAILY_STATS.read_from("class_id") == (
        "`writech`.`student_daily_stats_by_class_id`(class_id = {id:String})"
    )
    assert STUDENT_DAILY_STATS.read_from("school_id", "school") == (
        "`writech`.`student_daily_stats_by_school_id`(school_id = {school:String})"
    )
    # the key's own column finds its rows by the primary key
    assert STUDENT_DAILY_STATS.read_from("student_id") == "`writech`.`student_daily_stats_latest`"
    assert STUDENT_DAILY_STATS.read_from() == "`writech`.`student_daily_stats_latest`"


def test_a_table_naming_columns_it_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no columns \['klass'\]"):
        Table(
            name="t",
            row=DailyStats,
            columns=STUDENT_DAILY_STATS.columns,
            order_by=("student_id",),
            filtered_by=("klass",),
        )


def test_the_settings_give_the_layout() -> None:
    layout = layout_of(Settings(stats_ttl_days=400, dead_letter_ttl_days=0))
    assert layout.cluster == ""
    assert dict(layout.ttl_days) == {
        "student_daily_stats": 400,
        "analytics_metrics": 400,
        "homework_result": 400,
    }
    cluster = layout_of(Settings(clickhouse_url="http://h:8123", clickhouse_cluster="c"))
    assert cluster.on_cluster == " ON CLUSTER `c`"
    assert cluster.ttl_days == {"dead_letter": 30, "dead_letter_redrive": 30}
    with pytest.raises(SettingsError, match="WRITECH_CLICKHOUSE_CLUSTER: the embedded store"):
        layout_of(Settings(clickhouse_cluster="c"))


# A server's create_table_query of a replicated table, as ClickHouse formats it.
REPLICATED: Final = (
    "CREATE TABLE writech.dead_letter__rebuild (`origin` String) ENGINE = "
    "ReplicatedReplacingMergeTree('/clickhouse/tables/0b5e2bbd-3b0c-4f0e-9d0b-7d2f6a1c9e11/"
    "{shard}', '{replica}', produced_at) PARTITION BY toYYYYMM(produced_at) ORDER BY origin "
    "TTL toDateTime(produced_at) + toIntervalDay(30) WHERE produced_at > 0 "
    "SETTINGS ttl_only_drop_parts = 1, index_granularity = 8192"
)


def test_definitions_compare_without_name_replica_path_or_ttl() -> None:
    rebuilt = Definition.of(REPLICATED)
    live = Definition.of(
        REPLICATED.replace("dead_letter__rebuild", "dead_letter").replace("0b5e2bbd", "99999999")
    )
    assert rebuilt == live
    assert rebuilt.statement.startswith(
        "CREATE TABLE (`origin` String) ENGINE = ReplicatedReplacingMergeTree(produced_at) "
    )
    assert rebuilt.ttl == "toDateTime(produced_at) + toIntervalDay(30) WHERE produced_at > 0"
    longer = Definition.of(REPLICATED.replace("toIntervalDay(30)", "toIntervalDay(90)"))
    assert longer != rebuilt
    assert longer.without_ttl() == rebuilt.without_ttl()
    assert " TTL " not in rebuilt.without_ttl()
    assert Definition.of(REPLICATED.replace(" TTL ", " X ")).ttl == ""


def test_the_error_record_key_is_the_one_the_aggregation_writes() -> None:
    messages = list(generate(events=3000, students=20, days=2, seed=3))
    batch = RawBatch("events.jsonl", 0, list(range(1, len(messages) + 1)), messages)
    events, _ = EventDecoder(Settings().tz).decode_batch(batch, now=2e9)
    rows = Shard().apply(events).errors
    assert rows
    assert ERROR_RECORD.column_names[:4] == ("record_key", "event_id", "position", "student_id")
    for key, event_id, position, student_id, *_ in rows:
        assert key == error_record_key(student_id, event_id, position)


# ids as messages can carry them: UTF-8 text (a lone surrogate is `bad_json`)
ids = st.text(st.characters(codec="utf-8", exclude_characters="\x1f"), max_size=64)


@given(
    first=st.tuples(ids, ids, st.integers(0, 100)), second=st.tuples(ids, ids, st.integers(0, 100))
)
def test_error_records_of_different_identities_get_different_keys(
    first: tuple[str, str, int], second: tuple[str, str, int]
) -> None:
    """Identity is (student, event id, position): two students' errors in events with one id
    no longer share a key. (Ids holding the separator \\x1f could still collide.)"""
    if first != second:
        assert error_record_key(*first) != error_record_key(*second)
    assert re.fullmatch(r"[0-9a-f]{32}", error_record_key(*first))
