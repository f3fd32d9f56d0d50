"""Recovery (SPEC §5, §6): the store, writes that a resume may repeat, bounded state,
and the settings a resume must keep.

A resume re-emits everything the dataflow did after its last snapshot, so
every sink must be idempotent: the same rows written again, older versions
of daily rows after newer ones, the same rows in other batches, must leave
every table as it was. State must not grow with the stream: dates more than
`WRITECH_RETENTION_DAYS` behind a shard's newest date leave the snapshot.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    REPO,
    Tables,
    dataflow_environment,
    init_recovery_store,
    read_tables,
    run_writech,
    snapshots,
)
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.mysql import MysqlUser
from tests.test_end_to_end_kafka import _server_tables
from writech.aggregate import Shard
from writech.events import EventDecoder, RawBatch
from writech.generate import generate
from writech.rows import TableRows
from writech.schema import (
    ANALYTICS_METRICS,
    CLASS_MINUTE_STATS,
    DEAD_LETTER,
    ERROR_RECORD,
    HOMEWORK_RESULT,
    STUDENT_DAILY_STATS,
    STUDENT_MINUTE_STATS,
)
from writech.settings import Settings
from writech.shards import restore_shard
from writech.stores.base import open_clickhouse, open_error_store
from writech.stores.sink import RowsSink
from writech.windows import ClassWindows, StudentWindows

# (table, rows): what the sinks receive, in order.
Emission = tuple[str, list[Any]]


def writech_fails(*args: str, env: dict[str, str] | None = None) -> str:
    """Run `writech` expecting it to refuse (exit 2); return what it said."""
    result = subprocess.run(
        [sys.executable, "-m", "writech", *args],
        cwd=REPO,
        env=dataflow_environment(env or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    return result.stderr


# -- the recovery store ------------------------------------------------------


def test_recovery_init_creates_the_store_once(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    run_writech("recovery", "init", "--dir", str(store), "--partitions", "3")
    assert sorted(part.name for part in store.iterdir()) == [f"part-{n}.sqlite3" for n in range(3)]
    said = writech_fails("recovery", "init", "--dir", str(store), "--partitions", "2")
    assert "already holds a recovery store" in said
    assert len(list(store.iterdir())) == 3  # not touched


def test_replay_names_the_command_that_creates_a_missing_store(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(generate(events=10, seed=1)))
    said = writech_fails("replay", str(events), "-r", str(tmp_path / "nothing"))
    assert f"writech recovery init --dir {tmp_path / 'nothing'}" in said


# -- every sink write is idempotent ------------------------------------------


def clean_run_emissions() -> list[Emission]:
    """What the sinks receive in a run over three days of events, in two steps:
    dead letters, then each step's metrics, error records and changed daily rows."""
    messages = list(
        generate(events=3000, students=40, days=3, malformed=0.05, duplicates=0.05, seed=17)
    )
    batch = RawBatch("events.jsonl", 0, list(range(1, len(messages) + 1)), messages)
    events, dead = EventDecoder(Settings().tz).decode_batch(batch, now=2e9)
    shard, windows, classes = Shard(), StudentWindows(60, 86400), ClassWindows(60, 86400)
    emissions: list[Emission] = [(DEAD_LETTER.name, dead)]
    half = len(events) // 2
    for step in (events[:half], events[half:]):
        out = shard.apply(step)
        contributions = windows.apply(out.counted)
        # one class's windows: one class step's state
        classes.apply("class-0000", contributions.get("class-0000", []))
        emissions += [
            (ANALYTICS_METRICS.name, out.metrics),
            (HOMEWORK_RESULT.name, out.homework),
            (ERROR_RECORD.name, out.errors),
            (STUDENT_DAILY_STATS.name, shard.flush()),
            (STUDENT_MINUTE_STATS.name, windows.flush()),
            (CLASS_MINUTE_STATS.name, classes.flush()),
        ]
    return emissions


def resumed_emissions(clean: list[Emission]) -> list[Emission]:
    """What resumes may send again after all of `clean` was written: everything from
    the start (older daily rows after newer ones), and the second step again in
    other batches, in another order."""
    second_step = clean[7:]
    regrouped = [
        (table, list(reversed(rows))[part::3]) for table, rows in second_step for part in range(3)
    ]
    return clean + regrouped


TABLES_WRITTEN = (
    STUDENT_DAILY_STATS,
    ANALYTICS_METRICS,
    HOMEWORK_RESULT,
    ERROR_RECORD,
    DEAD_LETTER,
    STUDENT_MINUTE_STATS,
    CLASS_MINUTE_STATS,
)


def write(settings: Settings, emissions: list[Emission]) -> None:
    """Write through the dataflow's own sinks, one `write_batch` per emission."""
    sinks = {
        table.name: RowsSink(table.name, lambda: open_clickhouse(settings))
        for table in TABLES_WRITTEN
        if table is not ERROR_RECORD
    }
    sinks[ERROR_RECORD.name] = RowsSink(ERROR_RECORD.name, lambda: open_error_store(settings))
    partitions = {name: sink.build(f"write_{name}", 0, 1) for name, sink in sinks.items()}
    by_name = {table.name: table for table in TABLES_WRITTEN}
    try:
        for table, rows in emissions:
            partitions[table].write_batch([TableRows.from_rows(by_name[table], rows)])
    finally:
        for partition in partitions.values():
            partition.close()


def assert_resumes_change_nothing(settings: Settings, read: Callable[[], Tables]) -> None:
    clean = clean_run_emissions()
    stats_versions: dict[tuple[str, int, str], set[int]] = {}
    for table, rows in clean:
        if table == STUDENT_DAILY_STATS.name:
            for row in rows:
                stats_versions.setdefault((row[0], row[1], row[2]), set()).add(row[-1])
    # Some rows were emitted twice, with a lower and a higher version.
    assert any(len(versions) > 1 for versions in stats_versions.values())
    write(settings, clean)
    after_clean_run = read()
    assert all(after_clean_run.values())

    write(settings, resumed_emissions(clean))

    assert read() == after_clean_run


def test_embedded_writes_are_idempotent(tmp_path: Path) -> None:
    """chDB tables (ReplacingMergeTree) and SQLite's error_record (unique key)."""
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    assert_resumes_change_nothing(settings, lambda: read_tables(tmp_path))


@pytest.mark.services
def test_server_writes_are_idempotent(
    clickhouse_server: ClickHouseServer, mysql_user: MysqlUser, mysql_database: str
) -> None:
    """The ClickHouse server (also deduplication tokens) and MariaDB's error_record."""
    settings = Settings.from_env({}, clickhouse_url=clickhouse_server.url, mysql_url=mysql_database)
    assert_resumes_change_nothing(
        settings, lambda: _server_tables(clickhouse_server, mysql_user, mysql_database)
    )


# -- state stays bounded (SPEC §5) -------------------------------------------


def shards_in(recovery: Path) -> list[Shard]:
    """The aggregation state a resume from `recovery` would start with."""
    return [restore_shard(state, 64)[0] for state in snapshots(recovery, "aggregate").values()]


def replay_in_two_halves(messages: list[bytes], retention: int, folder: Path) -> list[bytes]:
    """Replay the first half of `messages`, then resume with the second half added;
    return the `aggregate` snapshot after each, as the store holds it."""
    folder.mkdir()
    halves = [folder / "first-half.jsonl", folder / "second-half.jsonl"]
    middle = len(messages) // 2
    for path, part in zip(halves, (messages[:middle], messages[middle:]), strict=True):
        path.write_bytes(b"\n".join(part) + b"\n")
    recovery = init_recovery_store(folder / "recovery")
    found = []
    for files in (halves[:1], halves):
        run_writech(
            "replay", "--quiet", *map(str, files), "--data-dir", str(folder / "data"),
            "-r", str(recovery), "-s", "1",
            env={"WRITECH_RETENTION_DAYS": str(retention)},
        )  # fmt: skip
        state = snapshots(recovery, "aggregate")
        assert len(state) == 64
        found.append(b"".join(state.values()))
        for shard in shards_in(recovery):
            assert shard.retention_days == retention
            assert all(shard.newest_day - day <= retention for day in shard.days)
    return found


def test_state_stays_bounded_over_four_weeks(tmp_path: Path) -> None:
    """Four weeks of events, replayed as two fortnights with a resume between them:
    with 3 days of retention the snapshot after four weeks is no larger than after
    two; with 28 it doubles (so the measure would show growth)."""
    messages = list(
        generate(events=40_000, students=200, days=28, malformed=0, duplicates=0, seed=23)
    )
    bounded = replay_in_two_halves(messages, 3, tmp_path / "retention-3")
    unbounded = replay_in_two_halves(messages, 28, tmp_path / "retention-28")

    assert len(bounded[1]) < 1.2 * len(bounded[0])
    assert len(unbounded[1]) > 1.8 * len(unbounded[0])
    assert len(bounded[1]) < 0.3 * len(unbounded[1])


# -- what a resume must keep ---------------------------------------------------


def test_a_resume_under_another_shard_count_is_refused(tmp_path: Path) -> None:
    """Students are hashed into WRITECH_SHARDS keys: under another count their state
    would be split between old and new keys and daily rows rebuilt from part of it."""
    messages = list(generate(events=4000, students=60, days=2, seed=29))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"\n".join(messages[:2000]) + b"\n")
    second.write_bytes(b"\n".join(messages[2000:]) + b"\n")
    recovery = init_recovery_store(tmp_path / "recovery")
    data = tmp_path / "data"
    run_writech("replay", "-q", str(first), "--data-dir", str(data), "-r", str(recovery))

    said = writech_fails(
        "replay", "-q", str(first), str(second), "--data-dir", str(data), "-r", str(recovery),
        env={"WRITECH_SHARDS": "32"},
    )  # fmt: skip
    assert "WRITECH_SHARDS is 32, but the recovery store holds state for 64 shards" in said

    run_writech(
        "replay", "-q", str(first), str(second), "--data-dir", str(data), "-r", str(recovery)
    )
    run_writech("replay", "-q", str(first), str(second), "--data-dir", str(tmp_path / "clean"))
    assert read_tables(data) == read_tables(tmp_path / "clean")
