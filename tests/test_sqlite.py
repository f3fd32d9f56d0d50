"""The embedded `error_record` store (SQLite), directly: its writes (idempotent by the
unique key, any string whole, dates and times as stored), its reads (the reports'
wrong questions, against a model of the grouping), read-only opening, and the
`SqliteError` a damaged file or a full disk gives."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import tmpfs
from writech.failures import advice
from writech.reports.model import Period
from writech.reports.rows import QuestionError, Scope
from writech.rows import TableRows
from writech.schema import ERROR_RECORD, error_record_key
from writech.settings import Settings
from writech.stores.base import open_error_store
from writech.stores.sql import EPOCH, EPOCH_DATE
from writech.stores.sqlite import SqliteError, SqliteErrorStore

HOSTILE = [
    "'; DROP TABLE error_record; --",
    'quote " backslash \\ \\n tab \t newline \n',
    "nul \x00 byte",
    "emoji 🧑‍🏫 𝄞 汉字：笔顺",
    "z" * 100_000,
    "",
]
DAY = date(2026, 9, 1)
CREATED = datetime(2026, 9, 1, 0, 30, 15, 123456, tzinfo=UTC)
# The text columns of a record (between its position and its date), as tests leave them.
TEXT = dict(
    zip(
        ERROR_RECORD.column_names[3:11],
        ("stu-1", "class-1", "school-1", "hw-1", "q1", "math", "fractions", "calculation"),
        strict=True,
    )
)


def record(event_id: str, position: int, **text: str) -> tuple[Any, ...]:
    """An error_record row as the dataflow writes it, on `DAY` (see `dated`)."""
    assert text.keys() <= TEXT.keys(), text.keys() - TEXT.keys()
    values = TEXT | text
    key = error_record_key(values["student_id"], event_id, position)
    return dated((key, event_id, position, *values.values(), 0, 0), DAY)


def dated(row: tuple[Any, ...], day: date, created_at: datetime = CREATED) -> tuple[Any, ...]:
    """`row` on `day`, created at `created_at`: as the dataflow writes them, in days and
    microseconds since 1970-01-01."""
    return (*row[:-2], (day - EPOCH_DATE).days, (created_at - EPOCH) // timedelta(microseconds=1))


def rows(records: Sequence[tuple[Any, ...]]) -> TableRows:
    return TableRows.from_rows(ERROR_RECORD, records)


def stored(path: Path) -> list[dict[str, Any]]:
    """Every stored record, read past the store."""
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        found = connection.execute("SELECT * FROM error_record ORDER BY record_key").fetchall()
        return [dict(row) for row in found]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteErrorStore]:
    opened = SqliteErrorStore(tmp_path / "writech.db")
    yield opened
    opened.close()


# -- writes ----------------------------------------------------------------------


def test_dates_and_times_are_stored_as_iso_text(store: SqliteErrorStore) -> None:
    last = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    store.insert(
        rows([record("e1", 0), dated(record("e1", 1), EPOCH_DATE, EPOCH),
              dated(record("e2", 0), last.date(), last)])
    )  # fmt: skip
    found = {
        (r["event_id"], r["position"]): (r["date"], r["created_at"]) for r in stored(store.path)
    }
    assert found == {
        ("e1", 0): ("2026-09-01", "2026-09-01T00:30:15.123456+00:00"),
        ("e1", 1): ("1970-01-01", "1970-01-01T00:00:00+00:00"),
        ("e2", 0): ("2099-12-31", "2099-12-31T23:59:59.999999+00:00"),
    }


def test_a_record_written_again_changes_nothing(store: SqliteErrorStore) -> None:
    first = [record("e1", 0), record("e1", 1), record("e2", 0, student_id="stu-2")]
    store.insert(rows(first))
    before = stored(store.path)
    # the same records, and one of them sent again with other values (a replay
    # never does that; the first write wins all the same)
    store.insert(rows([*first, record("e1", 0, knowledge_point="changed")]))
    assert stored(store.path) == before
    assert len(before) == 3


def test_the_same_event_and_position_of_another_student_is_another_record(
    store: SqliteErrorStore,
) -> None:
    store.insert(rows([record("e1", 0, student_id="a"), record("e1", 0, student_id="b")]))
    assert sorted(r["student_id"] for r in stored(store.path)) == ["a", "b"]


def test_hostile_strings_land_whole(store: SqliteErrorStore) -> None:
    store.insert(
        rows([record(f"e{n} {text}", 0, **dict.fromkeys(TEXT, text))
              for n, text in enumerate(HOSTILE)])
    )  # fmt: skip
    found = {r["event_id"]: r for r in stored(store.path)}
    assert len(found) == len(HOSTILE)
    for n, text in enumerate(HOSTILE):
        row = found[f"e{n} {text}"]
        assert [row[name] for name in TEXT] == [text] * len(TEXT)


def test_an_empty_batch_writes_nothing(store: SqliteErrorStore) -> None:
    store.insert(TableRows.empty(ERROR_RECORD))
    assert stored(store.path) == []


def test_deleting_students_deletes_exactly_their_records(store: SqliteErrorStore) -> None:
    store.insert(
        rows([record("e1", 0, student_id="a"), record("e1", 1, student_id="a"),
              record("e2", 0, student_id="b"), record("e3", 0, student_id="'; --")])
    )  # fmt: skip
    assert store.delete_students(["a", "'; --", "nobody"]) == 3
    assert [r["student_id"] for r in stored(store.path)] == ["b"]
    assert store.delete_students(["a"]) == 0


# -- reads -----------------------------------------------------------------------


def question_errors_model(
    records: Sequence[tuple[Any, ...]], scope: Scope, scope_id: str, period: Period
) -> list[QuestionError]:
    """The wrong questions a report reads, computed in Python: one per (submission,
    question, knowledge point, error type); errors without a question id apart."""
    names = ERROR_RECORD.column_names
    groups: dict[tuple[Any, ...], list[int]] = {}
    for values in records:
        row = dict(zip(names, values, strict=True))
        day = EPOCH_DATE + timedelta(days=row["date"])
        if row[scope] != scope_id or day not in period:
            continue
        key = tuple(row[name] for name in ("event_id", "student_id", "homework_id", "subject",
                                           "question_id", "knowledge_point", "error_type"))  # fmt: skip
        apart = row["position"] if row["question_id"] == "" else -1
        groups.setdefault((*key, apart), []).append(row["position"])
    found = []
    for (event, student, homework, subject, question, point, kind, _), at in groups.items():
        found.append(
            QuestionError(
                event, student, homework, subject, question, point, kind, min(at), len(at)
            )
        )
    return sorted(
        found,
        key=lambda e: (
            e.event_id,
            e.question_id,
            e.knowledge_point,
            e.error_type,
            e.first_position,
        ),
    )


# A submission: its id, student, class, school, homework, day, and its error items.
submissions = st.lists(
    st.tuples(
        st.text(max_size=4),
        st.sampled_from(["stu-1", "stu-2", "学生"]),
        st.sampled_from(["class-1", "class-2"]),
        st.sampled_from(["school-1", "school-2"]),
        st.sampled_from(["hw-1", "hw-2"]),
        st.integers(0, 6),
        st.lists(
            st.tuples(
                st.sampled_from(["", "q1", "q2"]),
                st.sampled_from(["a", "b", "点"]),
                st.sampled_from(["", "t"]),
            ),
            max_size=5,
        ),
    ),
    max_size=12,
    unique_by=lambda submission: submission[0],
)


@settings(max_examples=150, deadline=None)
@given(submissions, st.sampled_from(get_args(Scope)), st.data())
def test_wrong_questions_are_read_grouped_per_submission_question_and_type(
    drawn: list[tuple[Any, ...]], scope: Scope, data: st.DataObject
) -> None:
    records = [
        dated(record(event, position, student_id=student, class_id=klass, school_id=school,
                     homework_id=homework, question_id=question, knowledge_point=point,
                     error_type=kind), DAY + timedelta(days=day))
        for event, student, klass, school, homework, day, items in drawn
        for position, (question, point, kind) in enumerate(items)
    ]  # fmt: skip
    column = ERROR_RECORD.column_names.index(scope)
    scope_id = data.draw(st.sampled_from(sorted({r[column] for r in records} | {"nobody"})))
    first = DAY + timedelta(days=data.draw(st.integers(0, 6)))
    period = Period(first, first + timedelta(days=data.draw(st.integers(0, 6))))
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteErrorStore(Path(folder) / "writech.db")
        try:
            store.insert(rows(records))
            assert store.question_errors(scope, scope_id, period) == question_errors_model(
                records, scope, scope_id, period
            )
        finally:
            store.close()


def test_a_question_listed_twice_is_read_once_with_its_count(store: SqliteErrorStore) -> None:
    store.insert(
        rows(
            [
                record("e1", 0),
                record("e1", 1),
                record("e1", 2, question_id=""),
                record("e1", 3, question_id=""),
            ]
        )
    )
    read = store.question_errors("student_id", "stu-1", Period(DAY, DAY))
    assert [(e.question, e.first_position, e.listed) for e in read] == [
        ("#2", 2, 1),
        ("#3", 3, 1),
        ("q1", 0, 2),
    ]


def test_only_a_report_scope_is_put_into_the_sql(store: SqliteErrorStore) -> None:
    with pytest.raises(ValueError, match="not a report scope"):
        store.question_errors("1 = 1 OR student_id", "x", Period(DAY, DAY))  # type: ignore[arg-type]


def test_hostile_ids_are_read_as_values(store: SqliteErrorStore) -> None:
    store.insert(rows([record("e1", 0, student_id=text) for text in HOSTILE]))
    for text in HOSTILE:
        (read,) = store.question_errors("student_id", text, Period(DAY, DAY))
        assert read.student_id == text


# -- opened read-only, as `writech serve` does ----------------------------------------


def test_a_read_only_store_reads_and_cannot_write(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    writer = open_error_store(settings)
    writer.insert(rows([record("e1", 0)]))
    writer.close()
    before = settings.sqlite_path.read_bytes()
    reader = open_error_store(settings, read_only=True)
    try:
        assert len(reader.question_errors("student_id", "stu-1", Period(DAY, DAY))) == 1
        with pytest.raises(SqliteError, match="readonly"):
            reader.insert(rows([record("e2", 0)]))
        with pytest.raises(SqliteError, match="readonly"):
            reader.delete_students(["stu-1"])
    finally:
        reader.close()
    assert settings.sqlite_path.read_bytes() == before


def test_a_read_only_store_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(SqliteError, match="cannot open"):
        open_error_store(Settings(data_dir=str(tmp_path)), read_only=True)
    assert list(tmp_path.iterdir()) == []


# -- what goes wrong ---------------------------------------------------------------


def test_a_damaged_file_is_a_sqlite_error_naming_it_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "writech.db"
    path.write_bytes(b"not a database, just bytes " * 200)
    with pytest.raises(SqliteError) as raised:
        SqliteErrorStore(path)
    assert str(path) in str(raised.value)
    assert "file is not a database" in str(raised.value)
    assert (advice(raised.value) or "").startswith("a store's files are damaged")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for this test (we are root here) and unmounted after it."""
    with tmpfs(tmp_path / "tiny-disk", "1m") as mount:
        yield mount


def fill(store: SqliteErrorStore) -> tuple[int, SqliteError]:
    """Insert batches of large records until the disk is full: the records written, the error."""
    big = "x" * 50_000
    for batch in range(100):
        try:
            store.insert(rows([record(f"e{batch}", n, knowledge_point=big) for n in range(4)]))
        except SqliteError as error:
            return 4 * batch, error
    pytest.fail("the disk never filled up")


def test_a_full_disk_is_a_sqlite_error_and_the_failed_batch_leaves_nothing(tiny_disk: Path) -> None:
    store = SqliteErrorStore(tiny_disk / "writech.db")
    try:
        written, error = fill(store)
        assert "database or disk is full" in str(error)
        assert str(store.path) in str(error)
        assert (advice(error) or "").startswith("a disk is full")
        assert written > 0, "some batches fitted"
        assert len(stored(store.path)) == written, "the failed batch is not there in part"
    finally:
        store.close()
