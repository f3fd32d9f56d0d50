"""The dataflow in this process: `writech.flow.build_flow` fed by Bytewax's testing
source, run by `bytewax.testing`, written into the embedded stores, and checked
against the independent computation (tests/reference.py) and against itself: the
routing (decoded in one process, raw between workers), batches and flushes do not
change the tables, a second run changes nothing, every message read is counted
once, and a run without a recovery store makes empty snapshots."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, cluster_main, run_main

from tests import reference
from tests.cases import INVALID, VALID
from tests.helpers import Tables, read_tables, snapshots
from writech import counters
from writech.events import RawBatch
from writech.flow import WRITTEN_TABLES, build_flow
from writech.generate import generate
from writech.settings import Settings
from writech.shards import restore_shard

ORIGIN = "events.jsonl"
# When the input was produced, as a file source gives it (the file's modification
# time): the same in every run, so that a second run writes the very same rows.
PRODUCED = datetime.now(UTC).timestamp()
SHARDS = 8


def workload() -> list[bytes]:
    """Every event type, invalid messages of every kind, duplicates within and across batches."""
    generated = list(
        generate(events=1500, students=40, days=3, malformed=0.03, duplicates=0.03, seed=23)
    )
    hand_made = [raw for _, raw, _ in INVALID] + [raw for _, raw in VALID]
    return generated + hand_made + generated[:80]  # a re-sent stretch, batches later


MESSAGES = workload()


def batches(messages: list[bytes], size: int) -> list[RawBatch]:
    """The messages as a file source reads them: batches of `size`, 1-based line numbers."""
    return [
        RawBatch(
            ORIGIN,
            0,
            list(range(start + 1, start + 1 + len(chunk))),
            chunk,
            produced_at=[PRODUCED] * len(chunk),
        )
        for start in range(0, len(messages), size)
        if (chunk := messages[start : start + size])
    ]


@dataclass(frozen=True)
class Layout:
    """How a run is laid out: routing, workers, batch and insert sizes."""

    single_process: bool
    workers: int
    batch_size: int
    sink_batch_rows: int

    def __str__(self) -> str:
        routing = "decoded" if self.single_process else "raw"
        return f"{routing}-{self.workers}w-batch{self.batch_size}-insert{self.sink_batch_rows}"


LAYOUTS = [
    Layout(single_process=True, workers=1, batch_size=200, sink_batch_rows=50_000),
    Layout(single_process=False, workers=2, batch_size=97, sink_batch_rows=50),
    Layout(single_process=True, workers=2, batch_size=500, sink_batch_rows=7),
]


def settings_in(data_dir: Path, layout: Layout) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        shards=SHARDS,
        flush_interval=0.01,
        sink_batch_rows=layout.sink_batch_rows,
    )


def execute(flow: Dataflow, workers: int, **options: Any) -> None:
    if workers == 1:
        run_main(flow, **options)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers, **options)


def counted() -> Counter[str]:
    """What this process's counters say so far: processed, duplicates, dead letters by reason."""
    found: Counter[str] = Counter(counters.dead_lettered_by_reason())
    found["processed"] = int(counters.value("writech_events_processed_total"))
    found["duplicates"] = int(counters.value("writech_events_duplicate_total"))
    return found


@dataclass(frozen=True)
class Run:
    tables: Tables
    counted: Counter[str]  # what the counters added during the run


def run(data_dir: Path, layout: Layout, messages: list[bytes] = MESSAGES) -> Run:
    """One run of the flow over `messages` into the stores under `data_dir`."""
    before = counted()
    source = TestingSource(batches(messages, layout.batch_size))
    flow = build_flow(
        settings_in(data_dir, layout), source, single_process=layout.single_process, recovery=False
    )
    execute(flow, layout.workers)
    return Run(read_tables(data_dir), counted() - before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[Layout, tuple[Run, Run]]:
    """Each layout's first run into fresh stores, and a second run into the same stores."""
    found = {}
    for layout in LAYOUTS:
        data_dir = tmp_path_factory.mktemp(str(layout))
        found[layout] = (run(data_dir, layout), run(data_dir, layout))
    return found


@pytest.fixture(scope="module")
def expected() -> reference.Expected:
    return reference.expected(MESSAGES)


# -- the tables ----------------------------------------------------------------------


def _approx(found: dict[Any, dict[str, Any]], wanted: dict[Any, dict[str, Any]]) -> None:
    assert found.keys() == wanted.keys()
    for key, values in wanted.items():
        for name, value in values.items():
            if isinstance(value, float):
                assert found[key][name] == pytest.approx(value, rel=1e-12, abs=1e-9), (key, name)
            else:
                assert found[key][name] == value, (key, name)


def _window_start(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_the_tables_are_those_of_the_independent_computation(
    runs: dict[Layout, tuple[Run, Run]], layout: Layout, expected: reference.Expected
) -> None:
    tables = runs[layout][0].tables
    _approx(
        {(r["student_id"], r["date"], r["subject"]): r for r in tables["student_daily_stats"]},
        expected.stats,
    )
    _approx(
        {(r["student_id"], r["metric_id"]): r for r in tables["analytics_metrics"]},
        expected.metrics,
    )
    _approx({(r["event_id"], r["position"]): r for r in tables["error_record"]}, expected.errors)
    assert Counter(r["reason"] for r in tables["dead_letter"]) == expected.dead_letters
    # a student's window has no count of active students (one, by definition)
    student_minutes = {
        key: {name: value for name, value in values.items() if name != "active_students"}
        for key, values in expected.student_minutes.items()
    }
    _approx(
        {(r["student_id"], _window_start(r["window_start"])): r
         for r in tables["student_minute_stats"]},
        student_minutes,
    )  # fmt: skip
    _approx(
        {(r["class_id"], _window_start(r["window_start"])): r
         for r in tables["class_minute_stats"]},
        expected.class_minutes,
    )  # fmt: skip
    assert len(tables["homework_result"]) > 0


@pytest.mark.parametrize("layout", LAYOUTS[1:], ids=str)
def test_every_layout_writes_the_same_tables(
    runs: dict[Layout, tuple[Run, Run]], layout: Layout
) -> None:
    assert runs[layout][0].tables == runs[LAYOUTS[0]][0].tables


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_a_second_run_changes_no_table(runs: dict[Layout, tuple[Run, Run]], layout: Layout) -> None:
    first, second = runs[layout]
    assert second.tables == first.tables
    assert all(first.tables[table.name] for table in WRITTEN_TABLES), "every table has rows"


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_every_message_read_is_counted_once(
    runs: dict[Layout, tuple[Run, Run]], layout: Layout, expected: reference.Expected
) -> None:
    for each in runs[layout]:
        numbers = each.counted
        dead = sum(count for reason, count in numbers.items()
                   if reason not in ("processed", "duplicates"))  # fmt: skip
        assert numbers["processed"] + numbers["duplicates"] + dead == len(MESSAGES)
        assert numbers["processed"] == expected.processed
        assert numbers["duplicates"] == expected.duplicates
        assert dead == sum(expected.dead_letters.values())


# -- snapshots -----------------------------------------------------------------------


SNAPSHOTTED = batches(MESSAGES[:600], 200)


def run_with_recovery(folder: Path, *, recovery: bool) -> Path:
    """A run snapshotting into a fresh recovery store under `folder`; the store."""
    store = folder / "recovery"
    store.mkdir(parents=True)
    init_db_dir(store, 1)
    flow = build_flow(
        settings_in(folder / "data", LAYOUTS[0]),
        TestingSource(SNAPSHOTTED),
        single_process=True,
        recovery=recovery,
    )
    run_main(
        flow, epoch_interval=timedelta(seconds=0.05), recovery_config=RecoveryConfig(str(store))
    )
    return store


STATEFUL_STEPS = ("aggregate", "class_windows", "batch_rows")


def test_a_run_without_a_recovery_store_makes_empty_snapshots(tmp_path: Path) -> None:
    store = run_with_recovery(tmp_path, recovery=False)
    for step in STATEFUL_STEPS:
        states = snapshots(store, step)
        assert states, step
        assert set(states.values()) == {b""}, step
    assert snapshots(store, "read") == {"iterable": len(SNAPSHOTTED)}, "the input's position"


def test_a_run_with_a_recovery_store_snapshots_its_state(tmp_path: Path) -> None:
    store = run_with_recovery(tmp_path, recovery=True)
    shards = snapshots(store, "aggregate")
    assert len(shards) == SHARDS
    for state in shards.values():
        assert restore_shard(state, SHARDS).shard.retained_rows > 0
    assert all(snapshots(store, step) for step in STATEFUL_STEPS)
    assert all(state for step in STATEFUL_STEPS for state in snapshots(store, step).values())


def test_a_run_aborted_mid_way_resumes_from_its_snapshots_to_the_same_tables(
    runs: dict[Layout, tuple[Run, Run]], tmp_path: Path
) -> None:
    layout = LAYOUTS[0]
    store = tmp_path / "recovery"
    store.mkdir()
    init_db_dir(store, 1)
    read = batches(MESSAGES, layout.batch_size)
    half = len(read) // 2
    items: list[RawBatch | TestingSource.ABORT] = [*read[:half], TestingSource.ABORT()]
    items += read[half:]
    settings = settings_in(tmp_path / "data", layout)

    def run_to_the_abort_or_the_end() -> Tables:  # an abort fires once
        flow = build_flow(settings, TestingSource(items), single_process=True)
        run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(store)))
        return read_tables(tmp_path / "data")

    aborted = run_to_the_abort_or_the_end()
    complete = runs[layout][0].tables
    assert len(aborted["student_daily_stats"]) < len(complete["student_daily_stats"])
    assert run_to_the_abort_or_the_end() == complete
