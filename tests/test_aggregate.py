"""The aggregation as pure logic (SPEC §3, §5, §9): unit and property tests, no Bytewax."""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import date
from fractions import Fraction
from typing import Any
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference, rows
from tests.cases import message
from tests.helpers import cooling_clock
from writech import aggregate, frozen
from writech.aggregate import Shard, ShardOutput
from writech.events import Event, EventDecoder
from writech.schema import DailyStats, StatsRow

decoder = EventDecoder(ZoneInfo("Asia/Shanghai"))


def decode(raws: list[bytes]) -> list[Event]:
    return [decoder.decode(raw, "test", 0, offset) for offset, raw in enumerate(raws, 1)]


def final_table(
    outputs: list[ShardOutput], leftovers: list[StatsRow]
) -> dict[tuple[str, date, str], DailyStats]:
    """What a ReplacingMergeTree(version) read with FINAL holds after these writes."""
    table: dict[tuple[str, date, str], DailyStats] = {}
    for row in rows.stats([row for out in outputs for row in out.stats] + leftovers):
        key = (row.student_id, row.date, row.subject)
        if key not in table or row.version >= table[key].version:
            table[key] = row
    return table


def run(
    events: list[Event],
    chunks: list[int] | None = None,
    flush_after: set[int] | None = None,
    retention_days: int = 7,
) -> tuple[dict[tuple[str, date, str], DailyStats], list[ShardOutput]]:
    """Apply `events` in chunks of the given sizes, flushing after the chunk numbers given."""
    shard = Shard(retention_days)
    outputs: list[ShardOutput] = []
    sizes = chunks or [len(events)]
    start = 0
    for number, size in enumerate(sizes):
        outputs.append(shard.apply(events[start : start + size]))
        start += size
        if flush_after and number in flush_after:
            outputs.append(ShardOutput(shard.flush(), [], [], []))
    if start < len(events):
        outputs.append(shard.apply(events[start:]))
    return final_table(outputs, shard.flush()), outputs


# -- random event streams, all within a few days (inside retention) ----------

students = st.sampled_from(["stu-a", "stu-b", "stu-c"])
classes = st.sampled_from(["", "class-1", "class-2"])
scores = st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def raw_events(draw: st.DrawFn) -> bytes:
    event_type = draw(st.sampled_from(sorted(reference.TYPES)))
    subject = draw(st.sampled_from(["chinese", "math"]))
    payloads: dict[str, Any] = {
        "stroke_raw": {
            "stroke_count": draw(st.integers(0, 500)),
            "subject": subject,
            "page_id": "p1",
        },
        "grade_result": {
            "score": draw(scores),
            "total_score": 100,
            "subject": subject,
            "homework_id": "hw",
            "errors": [
                {"question_id": "q", "knowledge_point": kp}
                for kp in draw(st.lists(st.sampled_from(["", "拼音", "笔顺"]), max_size=3))
            ],
        },
        "homework_submit": {"subject": subject, "time_cost_minutes": draw(st.integers(0, 1440))},
        "ocr_result": {
            "confidence": draw(st.floats(0, 1)),
            "char_count": draw(st.integers(0, 100)),
        },
        "stroke_order": {"score": draw(scores)},
        "writing_quality": {
            "quality_score": draw(scores),
            "speed": draw(st.floats(0, 60).map(lambda x: round(x, 2))),
        },
        "exam_score": {
            "score": draw(st.floats(0, 120).map(lambda x: round(x, 1))),
            "total_score": 120,
            "subject": subject,
        },
        "login_event": {},
    }
    fields: dict[str, Any] = {
        "student_id": draw(students),
        "class_id": draw(classes),
        "timestamp": f"2026-09-0{draw(st.integers(1, 4))}T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00+08:00",
    }
    raw = message(event_type, payloads[event_type], **fields)
    if draw(st.booleans()):
        # a producer's id: the same id always means the same event
        return message(event_type, payloads[event_type], **fields, event_id=f"e-{hash_of(raw)}")
    return raw


def hash_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


streams = st.lists(raw_events(), min_size=1, max_size=40)


def as_reference(
    table: dict[tuple[str, date, str], DailyStats],
) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (student, day.isoformat(), subject): {
            name: getattr(row, name)
            for name in DailyStats.__struct_fields__
            if name not in ("student_id", "date", "subject")
        }
        for (student, day, subject), row in table.items()
    }


def assert_matches_reference(
    table: dict[tuple[str, date, str], DailyStats], raws: list[bytes]
) -> None:
    expected = reference.expected(raws)
    actual = as_reference(table)
    assert actual.keys() == expected.stats.keys()
    for key, values in expected.stats.items():
        for name, value in values.items():
            assert actual[key][name] == pytest.approx(value, abs=1e-6), (key, name)


@settings(max_examples=150, deadline=None)
@given(streams)
def test_matches_an_independent_computation(raws: list[bytes]) -> None:
    table, _ = run(decode(raws))
    assert_matches_reference(table, raws)


@settings(max_examples=150, deadline=None)
@given(streams, st.data())
def test_result_does_not_depend_on_batching_or_flushes(
    raws: list[bytes], data: st.DataObject
) -> None:
    events = decode(raws)
    chunks = data.draw(st.lists(st.integers(1, 5), max_size=len(events)))
    flushes = data.draw(st.sets(st.integers(0, max(len(chunks) - 1, 0))))
    assert run(events, chunks, flushes)[0] == run(events)[0]


@settings(max_examples=150, deadline=None)
@given(streams, st.data())
def test_result_does_not_depend_on_redelivery(raws: list[bytes], data: st.DataObject) -> None:
    again = data.draw(st.lists(st.sampled_from(raws), max_size=len(raws)))
    mixed = data.draw(st.permutations(raws + again))
    table, outputs = run(decode(mixed))
    assert table == run(decode(raws))[0]
    distinct = reference.expected(raws).processed
    assert sum(out.processed for out in outputs) == distinct
    assert sum(out.duplicates for out in outputs) == len(mixed) - distinct


@settings(max_examples=150, deadline=None)
@given(streams, st.data())
def test_result_does_not_depend_on_order_within_retention(
    raws: list[bytes], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(raws))
    assert run(decode(shuffled))[0] == run(decode(raws))[0]


@settings(max_examples=60, deadline=None)
@given(streams, st.data())
def test_snapshot_and_resume_continue_exactly(raws: list[bytes], data: st.DataObject) -> None:
    """A shard pickled mid-stream (a recovery snapshot) resumes to the same result."""
    events = decode(raws)
    cut = data.draw(st.integers(0, len(events)))
    shard = Shard()
    first = shard.apply(events[:cut])
    resumed: Shard = pickle.loads(pickle.dumps(shard))
    second = resumed.apply(events[cut:])
    assert final_table([first, second], resumed.flush()) == run(events)[0]


@settings(max_examples=150, deadline=None)
@given(streams, st.data())
def test_dates_cold_between_flushes_change_no_result(
    raws: list[bytes], data: st.DataObject
) -> None:
    """Every date goes cold at every flush, comes back for the events after, and
    resumes from a snapshot taken cold: the rows are those of a run without."""
    mixed = data.draw(st.permutations(raws + data.draw(st.lists(st.sampled_from(raws)))))
    events = decode(mixed)
    chunks = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=len(events)))
    resume_at = data.draw(st.integers(0, len(chunks) - 1))
    shard, outputs, start = Shard(), [], 0
    with patch.object(frozen, "COOL_AFTER_SECONDS", -1.0):  # cold at every flush
        for number, size in enumerate(chunks):
            outputs.append(shard.apply(events[start : start + size]))
            start += size
            retained = shard.retained_rows
            outputs.append(ShardOutput(shard.flush(), [], [], []))
            assert not shard.days  # every date went cold
            assert len(shard.cold) == len({event.day for event in events[:start]})
            assert shard.retained_rows == retained
            if number == resume_at:
                shard = pickle.loads(pickle.dumps(shard))
        outputs.append(shard.apply(events[start:]))
        table = final_table(outputs, shard.flush())
    assert table == run(decode(raws))[0]
    distinct = reference.expected(raws).processed
    assert sum(out.processed for out in outputs) == distinct


def test_a_cold_date_leaves_with_its_identities_past_retention() -> None:
    with patch.object(frozen, "COOL_AFTER_SECONDS", -1.0):
        shard = Shard(retention_days=7)
        shard.apply(decode([day_event(1, event_id="a"), day_event(1, event_id="b")]))
        shard.flush()
        assert list(shard.cold) == [date(2026, 9, 1).toordinal()]
        out = shard.apply(decode([day_event(9, event_id="c")]))
        assert out.stats == []  # flushed before it went cold
        assert (shard.retained_rows, shard.retained_event_ids) == (1, 1)
        assert not shard.cold
        late = shard.apply(decode([day_event(1, event_id="a")]))
        assert [letter[3] for letter in late.dead_letters] == ["too_late"]


def test_forgetting_reaches_cold_dates_and_keeps_them_cold() -> None:
    with patch.object(frozen, "COOL_AFTER_SECONDS", -1.0):
        shard = Shard()
        shard.apply(
            decode(
                [
                    day_event(1, student_id="stu-a", event_id="1"),
                    day_event(2, student_id="stu-a", event_id="2"),
                    day_event(2, student_id="stu-b", event_id="3"),
                ]
            )
        )
        shard.flush()
        assert shard.students() == {"stu-a", "stu-b"}
        assert shard.forget(["stu-a"]) == 2
        assert (len(shard.cold), shard.retained_rows, shard.students()) == (2, 1, {"stu-b"})
        resumed: Shard = pickle.loads(pickle.dumps(shard))
        assert resumed.students() == {"stu-b"}
        again = resumed.apply(decode([day_event(2, student_id="stu-b", event_id="4")]))
        assert again.processed == 1
        (row,) = rows.stats(resumed.flush())
        assert (row.student_id, row.login_count) == ("stu-b", 2)


# -- retention and late events (SPEC §5) -----------------------------------


def day_event(day: int, event_type: str = "login_event", **fields: Any) -> bytes:
    return message(event_type, {}, timestamp=f"2026-09-{day:02d}T10:00:00+08:00", **fields)


def test_dates_past_retention_are_flushed_then_evicted() -> None:
    shard = Shard(retention_days=7)
    shard.apply(decode([day_event(1, event_id="a"), day_event(1, event_id="b")]))
    assert shard.retained_rows == 1
    assert shard.retained_event_ids == 2
    out = shard.apply(decode([day_event(9, event_id="c")]))  # 8 days on: day 1 goes
    assert [(row.date, row.login_count) for row in rows.stats(out.stats)] == [(date(2026, 9, 1), 2)]
    assert shard.retained_rows == 1
    assert shard.retained_event_ids == 1
    assert [row.date for row in rows.stats(shard.flush())] == [date(2026, 9, 9)]


def test_event_for_an_evicted_date_is_dead_lettered_too_late() -> None:
    shard = Shard(retention_days=7)
    shard.apply(decode([day_event(1, event_id="a"), day_event(9, event_id="b")]))
    shard.flush()
    late = decode([day_event(1, event_id="late")])
    out = shard.apply(late)
    assert out.processed == 0
    (letter,) = rows.dead_letters(out.dead_letters)
    assert (letter.reason, letter.event_id, letter.raw) == (
        "too_late",
        "late",
        late[0].raw.decode(),
    )
    assert out.stats == []  # the complete row of day 1 is not overwritten
    assert shard.flush() == []


def test_event_exactly_retention_days_behind_is_still_counted() -> None:
    shard = Shard(retention_days=7)
    shard.apply(decode([day_event(8, event_id="new")]))
    out = shard.apply(decode([day_event(1, event_id="old")]))
    assert out.processed == 1
    assert out.dead_letters == []


def test_state_stays_bounded_over_many_weeks() -> None:
    shard = Shard(retention_days=3)
    for day in range(1, 29):
        events = [
            message(
                "login_event", {}, student_id=f"s{n}", timestamp=f"2026-09-{day:02d}T10:00:00+08:00"
            )
            for n in range(20)
        ]
        shard.apply(decode(events))
        shard.flush()
        assert shard.retained_rows <= 4 * 20
        assert shard.retained_event_ids <= 4 * 20


# -- the seed's defects (SPEC §9) -------------------------------------------


def stats_of(raws: list[bytes]) -> dict[tuple[str, date, str], DailyStats]:
    return run(decode(raws))[0]


def test_each_average_has_its_own_count() -> None:
    """§9.3: the seed averaged writing quality over the stroke-order count."""
    (row,) = stats_of(
        [
            message("stroke_order", {"score": 90}),
            message("stroke_order", {"score": 70}),
            message("stroke_order", {"score": 50}),
            message("writing_quality", {"quality_score": 80, "speed": 10}),
        ]
    ).values()
    assert row.practice_count == 3
    assert row.stroke_order_accuracy == pytest.approx(70)
    assert row.writing_quality_count == 1
    assert row.writing_quality_avg == pytest.approx(80)
    assert row.writing_speed_avg == pytest.approx(10)


def test_daily_totals_survive_flushes() -> None:
    """§9.4: the seed cleared its buffer on flush and rebuilt totals from zero."""
    events = decode(
        [message("stroke_raw", {"stroke_count": n, "subject": "math"}) for n in (10, 20, 30)]
    )
    table, outputs = run(events, chunks=[1, 1, 1], flush_after={0, 1, 2})
    (row,) = table.values()
    assert row.stroke_count_total == 60
    assert [r.stroke_count_total for out in outputs for r in rows.stats(out.stats)] == [10, 30, 60]


def test_scores_are_normalised_by_total_score() -> None:
    """§9.5: the seed read total_score and ignored it."""
    (row,) = stats_of(
        [
            message("grade_result", {"score": 45, "total_score": 50, "subject": "math"}),
            message("grade_result", {"score": 60, "total_score": 120, "subject": "math"}),
        ]
    ).values()
    assert row.homework_avg_score == pytest.approx((90 + 50) / 2)
    out = Shard().apply(
        decode([message("exam_score", {"score": 135, "total_score": 150, "subject": "math"})])
    )
    assert rows.metrics(out.metrics)[0].metric_value == pytest.approx(90)


def test_logins_and_ocr_characters_are_counted() -> None:
    """§9.6: the seed dropped login events and ignored ocr_result.char_count."""
    table = stats_of(
        [
            message("login_event"),
            message("ocr_result", {"confidence": 0.9, "char_count": 120}),
        ]
    )
    assert table[("stu-x", date(2026, 9, 2), "")].login_count == 1
    assert table[("stu-x", date(2026, 9, 2), "chinese")].practice_total_chars == 120


def test_homework_submissions_and_grades_are_counted_apart() -> None:
    (row,) = stats_of(
        [
            message("homework_submit", {"subject": "math", "time_cost_minutes": 30}),
            message("homework_submit", {"subject": "math", "time_cost_minutes": 15}),
            message("grade_result", {"score": 80, "subject": "math"}),
        ]
    ).values()
    assert (row.homework_count, row.homework_completed, row.study_duration_minutes) == (2, 1, 45)


def test_error_records_and_knowledge_points() -> None:
    raw = message(
        "grade_result",
        {
            "subject": "chinese",
            "homework_id": "hw-1",
            "errors": [
                {"question_id": "q1", "knowledge_point": "笔顺", "error_type": "stroke"},
                {"question_id": "q2", "knowledge_point": ""},
                {"question_id": "q3", "knowledge_point": "拼音"},
                {"question_id": "q4", "knowledge_point": "笔顺"},
            ],
        },
        event_id="g-1",
    )
    shard = Shard()
    out = shard.apply(decode([raw]))
    records = rows.errors(out.errors)
    assert [(e.position, e.knowledge_point, e.question_id) for e in records] == [
        (0, "笔顺", "q1"),
        (2, "拼音", "q3"),
        (3, "笔顺", "q4"),
    ]
    assert len({e.record_key for e in records}) == 3
    (row,) = rows.stats(shard.flush())
    assert (row.error_count, row.error_knowledge_points) == (3, ["拼音", "笔顺"])


def test_a_row_snapshotted_with_an_empty_set_of_knowledge_points_resumes() -> None:
    """Earlier releases kept an empty set in every row; a row resumed from their
    snapshots still gathers the knowledge points that come later."""

    def graded(event_id: str, knowledge_point: str) -> bytes:
        errors = [{"question_id": "q1", "knowledge_point": knowledge_point}]
        payload = {"subject": "chinese", "homework_id": event_id, "errors": errors}
        return message("grade_result", payload, event_id=event_id)

    shard = Shard()
    shard.apply(decode([graded("g-1", "")]))
    (day,) = shard.days.values()
    (row,) = day.live_rows().values()
    assert row.knowledge_points is None  # no set until the row's first knowledge point
    row.knowledge_points = set()  # as the earlier releases kept it
    day.thaw()
    resumed: Shard = pickle.loads(pickle.dumps(shard))
    assert [stats.error_knowledge_points for stats in rows.stats(resumed.flush())] == [[]]
    resumed.apply(decode([graded("g-2", "笔顺")]))
    (row_now,) = rows.stats(resumed.flush())
    assert (row_now.homework_completed, row_now.error_knowledge_points) == (2, ["笔顺"])


def test_class_is_that_of_the_latest_event_whatever_the_arrival_order() -> None:
    early = message(
        "login_event", class_id="class-old", timestamp="2026-09-02T08:00:00+08:00", event_id="1"
    )
    late = message(
        "login_event", class_id="class-new", timestamp="2026-09-02T18:00:00+08:00", event_id="2"
    )
    unnamed = message(
        "login_event", class_id="", timestamp="2026-09-02T20:00:00+08:00", event_id="3"
    )
    for order in ([early, late, unnamed], [unnamed, late, early], [late, early, unnamed]):
        (row,) = stats_of(order).values()
        assert row.class_id == "class-new"


def test_metric_rows_carry_the_event_id_and_local_date() -> None:
    raw = message(
        "stroke_raw",
        {"stroke_count": 12, "page_id": "p-9", "subject": "math"},
        timestamp="2026-09-02T17:00:00Z",
        event_id="m-1",
    )
    (metric,) = rows.metrics(Shard().apply(decode([raw])).metrics)
    assert (metric.metric_id, metric.metric_type, metric.metric_value, metric.dimension) == (
        "m-1",
        "stroke_count",
        12.0,
        "p-9",
    )
    assert metric.period_start == metric.period_end == date(2026, 9, 3)  # 01:00 in Shanghai
    assert json.loads(raw)["timestamp"].startswith(metric.created_at.strftime("%Y-%m-%dT%H:%M"))


# -- identity: (student, event id), across dates (SPEC §2 as amended) ---------


def test_a_resent_event_with_a_corrected_clock_counts_once_on_its_first_date() -> None:
    shard = Shard(retention_days=7)
    first = day_event(2, "grade_result", event_id="hw-1")
    corrected = day_event(3, "grade_result", event_id="hw-1")
    out = shard.apply(decode([first, corrected]))
    assert (out.processed, out.duplicates) == (1, 1)
    assert [(row.date, row.homework_completed) for row in rows.stats(shard.flush())] == [
        (date(2026, 9, 2), 1)
    ]
    later = shard.apply(decode([day_event(4, "grade_result", event_id="hw-1")]))
    assert (later.processed, later.duplicates) == (0, 1)
    assert shard.flush() == []


def test_a_repeat_of_a_counted_event_is_a_duplicate_even_past_retention() -> None:
    shard = Shard(retention_days=7)
    shard.apply(decode([day_event(9, event_id="a")]))
    out = shard.apply(decode([day_event(1, event_id="a")]))  # same identity, date long evicted
    assert (out.duplicates, out.dead_letters) == (1, [])


def test_identities_expire_with_the_retention_window() -> None:
    shard = Shard(retention_days=3)
    shard.apply(decode([day_event(1, event_id="a")]))
    shard.apply(decode([day_event(9, event_id="b")]))  # day 1 and its identities go
    assert shard.retained_event_ids == 1
    assert shard.apply(decode([day_event(9, event_id="a")])).processed == 1  # a new event now


def test_one_event_id_of_two_students_is_two_events_in_every_output() -> None:
    shard = Shard()
    errors = {"errors": [{"knowledge_point": "拼音", "question_id": "q1"}]}
    raws = [
        message("grade_result", errors, event_id="shared", student_id="stu-a"),
        message("grade_result", errors, event_id="shared", student_id="stu-b"),
        message("exam_score", {"score": 80}, event_id="shared-exam", student_id="stu-a"),
        message("exam_score", {"score": 90}, event_id="shared-exam", student_id="stu-b"),
    ]
    out = shard.apply(decode(raws))
    assert out.processed == 4
    assert len({record.record_key for record in rows.errors(out.errors)}) == 2
    assert {(m.student_id, m.metric_id) for m in rows.metrics(out.metrics)} == {
        ("stu-a", "shared-exam"),
        ("stu-b", "shared-exam"),
    }
    assert {(h.student_id, h.event_id) for h in rows.homework(out.homework)} == {
        ("stu-a", "shared"),
        ("stu-b", "shared"),
    }
    assert sorted(row.error_count for row in rows.stats(shard.flush()) if row.error_count) == [1, 1]


def test_identity_state_survives_a_snapshot() -> None:
    shard = Shard()
    shard.apply(decode([day_event(2, event_id="a")]))
    resumed: Shard = pickle.loads(pickle.dumps(shard))
    assert resumed.retained_event_ids == 1
    assert resumed.apply(decode([day_event(3, event_id="a")])).duplicates == 1


def test_rows_changed_before_a_snapshot_are_flushed_once_as_later_events_left_them() -> None:
    """The changed rows a snapshot holds by key are the resumed days' own rows again:
    a copy would be flushed beside the row the later events change."""
    shard = Shard()
    shard.apply(decode([day_event(2, event_id="a"), day_event(2, event_id="b", student_id="s2")]))
    resumed: Shard = pickle.loads(pickle.dumps(shard))
    resumed.apply(decode([day_event(2, event_id="c")]))
    flushed = rows.stats(resumed.flush())
    assert sorted((row.student_id, row.login_count) for row in flushed) == [
        ("s2", 1),
        ("stu-x", 2),
    ]
    assert resumed.flush() == []


# -- exact means (SPEC §3: a true running mean) -----------------------------


small_values = st.one_of(
    st.floats(min_value=0, max_value=1, allow_subnormal=True),
    st.sampled_from([1e-7, 3e-9, 5e-324, 2.2250738585072014e-308, 1e-6 / 3, 0.1, 99.99]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(small_values, min_size=1, max_size=30), st.randoms())
def test_means_are_the_correctly_rounded_true_mean_in_any_order(
    values: list[float], random: Any
) -> None:
    def mean_of(order: list[float]) -> float:
        shard = Shard()
        raws = [
            message("writing_quality", {"quality_score": 50, "speed": v}, event_id=f"w{i}")
            for i, v in enumerate(order)
        ]
        shard.apply(decode(raws))
        (row,) = rows.stats(shard.flush())
        return row.writing_speed_avg

    exact = float(sum(map(Fraction, values)) / len(values))
    shuffled = values[:]
    random.shuffle(shuffled)
    assert mean_of(values) == exact
    assert mean_of(shuffled) == exact


def test_a_mean_below_a_millionth_is_not_zero() -> None:
    shard = Shard()
    shard.apply(
        decode(
            [
                message("writing_quality", {"speed": 4e-7}, event_id="a"),
                message("writing_quality", {"speed": 2e-7}, event_id="b"),
            ]
        )
    )
    (row,) = rows.stats(shard.flush())
    assert row.writing_speed_avg == float(Fraction(4e-7) / 2 + Fraction(2e-7) / 2)


def test_forgetting_a_student_drops_their_rows_and_keeps_the_others() -> None:
    shard = Shard()
    shard.apply(
        decode([day_event(2, student_id="stu-a", event_id="1"), day_event(2, event_id="2")])
    )
    assert shard.forget(["stu-a"]) == 1
    assert [row.student_id for row in rows.stats(shard.flush())] == ["stu-x"]
    resumed: Shard = pickle.loads(pickle.dumps(shard))
    again = resumed.apply(decode([day_event(2, student_id="stu-a", event_id="1")]))
    assert again.duplicates == 1  # a re-delivered event of theirs is not counted again


def test_a_date_brought_back_waits_twice_as_long_before_going_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = cooling_clock(monkeypatch, aggregate, patience=3.0)
    shard = Shard()
    day = date(2026, 9, 1).toordinal()
    for patience, event_id in ((3, "a"), (6, "b"), (12, "c")):
        # the first event opens the date, each later one brings it back
        shard.apply(decode([day_event(1, event_id=event_id)]))
        assert day in shard.days
        shard.flush()  # finds it changed
        for second in range(1, patience + 2):  # cold once unchanged for longer than its patience
            clock[0] += 1.0
            shard.flush()
            assert (day in shard.cold) == (second > patience), (patience, second)
    assert shard.retained_rows == 1
