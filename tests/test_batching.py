"""The steps between the source and the stores, without Bytewax: routing messages to
their shard (`split_by_shard`, `decode_by_shard`), the columns rows travel in
(`TableRows`) and the gathering of rows into few inserts (`RowBatcher`)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cases import INVALID, TS, message
from writech.aggregate import Shard
from writech.batching import RowBatcher
from writech.events import EventDecoder, RawBatch, dead_letter
from writech.rows import TableRows
from writech.schema import ERROR_RECORD, TABLES, Table
from writech.shards import (
    ClassWindowLogic,
    ShardLogic,
    decode_by_shard,
    shard_key,
    split_by_shard,
)
from writech.windows import ClassWindows, StudentWindows

decoder = EventDecoder(ZoneInfo("Asia/Shanghai"))
# When the messages of `tests.cases` were produced: their timestamp.
PRODUCED = datetime.fromisoformat(TS).timestamp()

# -- rows of any table, as the aggregation builds them ----------------------------

_TEXT = st.text(max_size=12)
_FLOATS = st.floats(allow_nan=False)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "String": _TEXT,
    "LowCardinality(String)": _TEXT,
    "Int32": st.integers(-(2**31), 2**31 - 1),
    "Int64": st.integers(-(2**63), 2**63 - 1),
    "UInt32": st.integers(0, 2**32 - 1),
    "UInt64": st.integers(0, 2**64 - 1),
    "Float64": _FLOATS,
    "Date": st.integers(0, 2**16 - 1),  # days since 1970-01-01
    "DateTime('UTC')": st.integers(0, 2**32 - 1),  # seconds
    "DateTime64(6, 'UTC')": st.integers(0, 2**62),  # microseconds
    "Array(Float64)": st.lists(_FLOATS, max_size=3),
    "Array(LowCardinality(String))": st.lists(_TEXT, max_size=3),
    "Array(UInt32)": st.lists(st.integers(0, 2**32 - 1), max_size=3),
}
Row = tuple[Any, ...]


def rows_of(table: Table, max_size: int = 6) -> st.SearchStrategy[list[Row]]:
    return st.lists(st.tuples(*(VALUES[kind] for kind in table.column_types)), max_size=max_size)


@st.composite
def table_and_batches(draw: st.DrawFn) -> tuple[Table, list[list[Row]]]:
    """A table and the rows of several shard outputs for it."""
    table = draw(st.sampled_from(TABLES))
    return table, draw(st.lists(rows_of(table), max_size=6))


def test_every_column_type_has_values() -> None:
    assert {kind for table in TABLES for kind in table.column_types} <= VALUES.keys()


# -- TableRows ---------------------------------------------------------------------


@given(table_and_batches())
def test_table_rows_give_back_the_rows_they_were_made_of(
    drawn: tuple[Table, list[list[Row]]],
) -> None:
    table, batches = drawn
    for rows in batches:
        made = TableRows.from_rows(table, rows)
        assert len(made) == len(rows)
        assert len(made.columns) == len(table.columns)
        assert list(made.rows()) == rows
        for index, name in enumerate(table.column_names):
            assert made.column(name) == [row[index] for row in rows]


@given(table_and_batches())
def test_extending_appends_the_rows_in_order(drawn: tuple[Table, list[list[Row]]]) -> None:
    table, batches = drawn
    gathered = TableRows.empty(table)
    for rows in batches:
        gathered.extend(TableRows.from_rows(table, rows))
    assert list(gathered.rows()) == [row for rows in batches for row in rows]


@given(table_and_batches())
def test_pickled_rows_come_back_equal_through_one_msgpack_document(
    drawn: tuple[Table, list[list[Row]]],
) -> None:
    table, batches = drawn
    rows = [row for batch in batches for row in batch]
    made = TableRows.from_rows(table, rows)
    _, (name, packed) = made.__reduce__()
    assert name == table.name
    assert isinstance(packed, bytes)
    back = pickle.loads(pickle.dumps(made, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.table is table
    assert back.columns == made.columns
    assert list(back.rows()) == rows


# -- RowBatcher ----------------------------------------------------------------------

START = datetime(2026, 9, 2, 1, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=2)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The batcher's clock, set by the test (`clock[0]`)."""
    moment = [START]
    monkeypatch.setattr("writech.batching.now", lambda: moment[0])
    return moment


def records(first: int, count: int) -> TableRows:
    """`count` error_record rows, numbered from `first` (their position)."""
    return TableRows.from_rows(
        ERROR_RECORD,
        [
            (f"{n:032x}", "e", n, "s", "c", "k", "h", "q", "math", "kp", "t", 20_000, 0)
            for n in range(first, first + count)
        ],
    )


def emitted(batches: Any) -> list[int]:
    return [position for rows in batches for position in rows.column("position")]


def test_rows_are_gathered_and_emitted_together_once_the_interval_is_up(
    clock: list[datetime],
) -> None:
    batcher = RowBatcher(None, INTERVAL, max_rows=100)
    assert batcher.notify_at() is None
    out, retain = batcher.on_batch([records(0, 3)])
    assert (list(out), retain) == ([], RowBatcher.RETAIN)
    assert batcher.notify_at() == START + INTERVAL
    clock[0] = START + INTERVAL / 2
    out, _ = batcher.on_batch([records(3, 2), records(5, 1)])
    assert list(out) == []
    assert batcher.notify_at() == START + INTERVAL, "more rows do not postpone the write"
    out, retain = batcher.on_notify()
    (rows,) = out
    assert emitted([rows]) == list(range(6))
    assert retain == RowBatcher.RETAIN
    assert batcher.notify_at() is None
    assert list(batcher.on_notify()[0]) == []


@pytest.mark.usefixtures("clock")
def test_max_rows_pending_are_emitted_at_once() -> None:
    batcher = RowBatcher(None, INTERVAL, max_rows=5)
    assert list(batcher.on_batch([records(0, 4)])[0]) == []
    out, _ = batcher.on_batch([records(4, 1), records(5, 2)])
    assert emitted(out) == list(range(5))
    assert batcher.notify_at() is not None
    assert emitted(batcher.on_notify()[0]) == [5, 6]


@pytest.mark.usefixtures("clock")
def test_a_batch_of_many_rows_is_emitted_in_inserts_of_about_max_rows() -> None:
    """A flush of every shard arrives as one batch: it must not make one huge insert."""
    batcher = RowBatcher(None, INTERVAL, max_rows=5)
    out, _ = batcher.on_batch([records(0, 4), records(4, 3), records(7, 4), records(11, 1)])
    assert [emitted([rows]) for rows in out] == [list(range(7)), list(range(7, 12))]
    assert batcher.notify_at() is None


@pytest.mark.usefixtures("clock")
def test_the_end_of_the_input_emits_what_is_pending() -> None:
    batcher = RowBatcher(None, INTERVAL, max_rows=100)
    assert list(batcher.on_eof()[0]) == []
    batcher.on_batch([records(0, 2)])
    assert emitted(batcher.on_eof()[0]) == [0, 1]
    assert batcher.notify_at() is None


def test_a_clock_that_steps_back_holds_no_rows_back(clock: list[datetime]) -> None:
    """Notifications go by the wall clock: a time set before the clock stepped back an hour
    would have held the rows for that hour."""
    batcher = RowBatcher(None, INTERVAL, max_rows=100)
    batcher.on_batch([records(0, 3)])
    clock[0] = START - timedelta(hours=1)
    assert batcher.notify_at() == clock[0] + INTERVAL
    clock[0] = START + INTERVAL / 2  # and forward again: the time first set stands
    assert batcher.notify_at() == START + INTERVAL
    shard = ShardLogic(Shard(7), StudentWindows(60, 3600), EventDecoder(UTC), INTERVAL, 64)
    shard.on_batch([RawBatch("f", 0, [1], [message("login_event")])])
    classes = ClassWindowLogic(ClassWindows(60, 3600), INTERVAL)
    classes.on_batch([("c", [(0, 1, 0, 0, "", "", 0, "e")])])
    clock[0] = START - timedelta(hours=1)
    assert shard.notify_at() == classes.notify_at() == clock[0] + INTERVAL


def test_a_resumed_batcher_writes_its_pending_rows_after_an_interval(clock: list[datetime]) -> None:
    batcher = RowBatcher(None, INTERVAL, max_rows=100)
    batcher.on_batch([records(0, 3)])
    clock[0] = START + timedelta(hours=1)
    resumed = RowBatcher(batcher.snapshot(), INTERVAL, max_rows=100)
    assert resumed.notify_at() == clock[0] + INTERVAL
    assert emitted(resumed.on_notify()[0]) == [0, 1, 2]


# One step of the batching step's life: rows arrive, the interval is up, or
# the process dies and resumes from the batcher's snapshot.
Step = tuple[str, list[int]]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("rows"), st.lists(st.integers(0, 6), min_size=1, max_size=4)),
        st.just(("notify", [])),
        st.just(("resume", [])),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(steps, st.integers(1, 10))
def test_every_row_is_emitted_once_in_order_across_snapshots_and_resumes(
    history: list[Step], max_rows: int
) -> None:
    batcher = RowBatcher(None, INTERVAL, max_rows)
    fed: list[int] = []
    out: list[int] = []
    for step, counts in history:
        if step == "rows":
            values = []
            for count in counts:  # a batch of several shards' rows
                values.append(records(len(fed), count))
                fed += range(len(fed), len(fed) + count)
            batches, _ = batcher.on_batch(values)
        elif step == "notify":
            batches, _ = batcher.on_notify()
        else:
            batches, batcher = [], RowBatcher(batcher.snapshot(), INTERVAL, max_rows)
        batches = list(batches)
        assert all(len(rows) for rows in batches), "no empty inserts"
        assert all(len(rows) < max_rows + 6 for rows in batches), "no insert much over max_rows"
        out += emitted(batches)
        pending = len(fed) - len(out)
        assert out == fed[: len(out)]
        assert pending < max_rows, "max_rows pending are written at once"
        assert (batcher.notify_at() is None) == (pending == 0)
    out += emitted(batcher.on_eof()[0])
    assert out == fed


# -- routing messages to shards --------------------------------------------------------

STUDENTS = ["stu-1", "stu-2", "学生-3", "s" * 64, "s" * 65, "x\\y\n"]
messages = st.one_of(
    st.builds(
        lambda kind, student, number: message(
            kind, student_id=student, event_id=f"e{number}", class_id="class-x"
        ),
        st.sampled_from(["login_event", "stroke_raw", "grade_result"]),
        st.sampled_from(STUDENTS),
        st.integers(0, 20),
    ),
    # names a student, yet is no event: dead-lettered where it is decoded
    st.builds(
        lambda student: message(student_id=student, timestamp="yesterday"),
        st.sampled_from(STUDENTS),
    ),
    st.sampled_from([raw for _, raw, _ in INVALID]),
)


@st.composite
def raw_batches(draw: st.DrawFn, stamped: bool | None = None) -> RawBatch:
    """A source batch: messages at increasing offsets, maybe stamped, maybe with rejections."""
    raws = draw(st.lists(messages, max_size=25))
    first = draw(st.integers(0, 1000))
    offsets = [first + 3 * index for index in range(len(raws))]
    if stamped is None:
        stamped = draw(st.booleans())
    produced_at = (
        [draw(st.floats(PRODUCED - 3 * 86400, PRODUCED + 3 * 86400)) for _ in raws]
        if stamped
        else []
    )
    rejected = [
        dead_letter("topic", 2, first - 1 - n, b"\xff", "broker_error", "broker said no", "", 0)
        for n in range(draw(st.integers(0, 2)))
    ]
    return RawBatch("topic", 2, offsets, raws, rejected, produced_at)


@given(raw_batches(), st.integers(1, 8))
def test_raw_routing_puts_each_message_in_its_students_shard_once_in_order(
    batch: RawBatch, shards: int
) -> None:
    groups = split_by_shard(shards, batch, decoder.student_of)
    keys = [key for key, _ in groups]
    assert len(set(keys)) == len(keys)
    nobody = shard_key("", shards)
    index = {offset: i for i, offset in enumerate(batch.offsets)}
    routed: list[int] = []
    for key, group in groups:
        assert (group.origin, group.partition) == (batch.origin, batch.partition)
        assert group.offsets == sorted(group.offsets), "in the batch's order"
        where = [index[offset] for offset in group.offsets]
        assert group.messages == [batch.messages[i] for i in where]
        assert group.produced_at == (
            [batch.produced_at[i] for i in where] if batch.produced_at else []
        )
        assert all(shard_key(decoder.student_of(raw), shards) == key for raw in group.messages)
        assert group.rejected == (batch.rejected if key == nobody else [])
        assert group.messages or (key == nobody and batch.rejected), "no empty groups"
        routed += group.offsets
    assert sorted(routed) == batch.offsets, "every message exactly once"
    if batch.rejected:
        assert nobody in keys


@given(raw_batches(stamped=True), st.integers(1, 8))
def test_decoded_routing_groups_the_events_by_shard_and_the_dead_letters_under_nobody(
    batch: RawBatch, shards: int
) -> None:
    events, dead = decoder.decode_batch(batch)
    groups = decode_by_shard(shards, batch, decoder)
    keys = [key for key, _ in groups]
    assert len(set(keys)) == len(keys)
    nobody = shard_key("", shards)
    index = {offset: i for i, offset in enumerate(batch.offsets)}
    routed = []
    for key, group in groups:
        assert group.dead_letters == (dead if key == nobody else [])
        assert group.events or group.dead_letters, "no empty groups"
        assert [e.offset for e in group.events] == sorted(e.offset for e in group.events)
        for event in group.events:
            assert shard_key(event.student_id, shards) == key
            assert event.raw == batch.messages[index[event.offset]]
            assert event.produced_at == batch.produced_at[index[event.offset]]
        routed += group.events
    assert sorted(routed, key=lambda e: e.offset) == events, "every event exactly once"
    # a group for each shard with events, and nobody's for dead letters (with
    # one shard, or a student hashing there, that may be a shard with events)
    expected = {shard_key(event.student_id, shards) for event in events}
    assert set(keys) == expected | ({nobody} if dead else set())


@given(raw_batches(stamped=True), st.integers(1, 8))
def test_raw_and_decoded_routing_send_an_event_to_the_same_shard(
    batch: RawBatch, shards: int
) -> None:
    raw_key = {
        offset: key
        for key, group in split_by_shard(shards, batch, decoder.student_of)
        for offset in group.offsets
    }
    for key, group in decode_by_shard(shards, batch, decoder):
        for event in group.events:
            assert raw_key[event.offset] == key
