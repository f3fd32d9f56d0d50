"""SPEC §1: every rule, a message that breaks it, and the reason it gets."""

from __future__ import annotations

import base64
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.cases import INVALID, VALID, message
from writech.events import (
    EventDecoder,
    GradeResult,
    Invalid,
    RawBatch,
    StrokeRaw,
    dead_letter,
    dedup_key_of,
    event_id_of,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
decoder = EventDecoder(SHANGHAI)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(raw, reason) for _, raw, reason in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_message_is_rejected_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Invalid) as caught:
        decoder.decode(raw)
    assert caught.value.reason == reason
    assert caught.value.message  # a human explanation, not just a code


@pytest.mark.parametrize("raw", [raw for _, raw in VALID], ids=[case[0] for case in VALID])
def test_valid_edge_case_is_accepted(raw: bytes) -> None:
    event = decoder.decode(raw)
    assert event.student_id
    assert event.raw == raw


def test_too_large_message_is_rejected_before_parsing() -> None:
    small = EventDecoder(SHANGHAI, max_message_bytes=100)
    raw = message("login_event", note="x" * 200)
    with pytest.raises(Invalid) as caught:
        small.decode(raw)
    assert caught.value.reason == "too_large"
    assert "100" in caught.value.message


def test_naive_timestamp_is_read_in_the_school_time_zone() -> None:
    late_evening = decoder.decode(message("login_event", timestamp="2026-09-02T23:30:00"))
    assert date.fromordinal(late_evening.day) == date(2026, 9, 2)
    # the same wall time in New York is the next day in Shanghai
    new_york = EventDecoder(ZoneInfo("America/New_York")).decode(
        message("login_event", timestamp="2026-09-02T23:30:00")
    )
    assert new_york.time_us - late_evening.time_us == 12 * 3600 * 1_000_000


def test_local_date_follows_the_school_time_zone() -> None:
    # 16:30 UTC is 00:30 the next day in Shanghai
    event = decoder.decode(message("login_event", timestamp="2026-09-02T16:30:00Z"))
    assert date.fromordinal(event.day) == date(2026, 9, 3)
    before_midnight = decoder.decode(
        message("login_event", timestamp="2026-09-02T15:59:59.999999Z")
    )
    assert date.fromordinal(before_midnight.day) == date(2026, 9, 2)


def test_local_date_across_a_daylight_saving_change() -> None:
    berlin = EventDecoder(ZoneInfo("Europe/Berlin"))
    # clocks went back at 01:00 UTC on 2026-10-25; 22:30 UTC is 23:30 local (UTC+1)
    assert date.fromordinal(
        berlin.decode(message("login_event", timestamp="2026-10-25T22:30:00Z")).day
    ) == date(2026, 10, 25)
    # the day before, 22:30 UTC is already 00:30 local (UTC+2)
    assert date.fromordinal(
        berlin.decode(message("login_event", timestamp="2026-10-24T22:30:00Z")).day
    ) == date(2026, 10, 25)
    # inside the quarter hour of the change
    assert date.fromordinal(
        berlin.decode(message("login_event", timestamp="2026-10-25T00:59:59Z")).day
    ) == date(2026, 10, 25)


def test_future_skew_is_relative_to_the_wall_clock() -> None:
    now = 1_800_000_000.0  # an explicit wall clock
    tomorrow = date.fromtimestamp(now) + timedelta(days=3)
    raw = message("login_event", timestamp=f"{tomorrow.isoformat()}T00:00:00Z")
    with pytest.raises(Invalid):
        decoder.decode(raw, now=now)
    assert decoder.decode(raw, now=now + 3 * 86400).student_id == "stu-x"


def test_old_events_are_not_rejected_by_wall_clock() -> None:
    """SPEC §9.2: the seed dropped everything older than 7 days; a backfill must not be."""
    event = decoder.decode(message("login_event", timestamp="2019-03-01T08:00:00+08:00"))
    assert date.fromordinal(event.day) == date(2019, 3, 1)


def test_event_id_is_a_hash_of_the_whole_message_when_absent() -> None:
    """SPEC §9.1: the seed hashed the first 50 characters, so events of one student at one time collided."""
    first = message("stroke_raw", {"stroke_count": 1}, event_id=...)
    second = message("stroke_raw", {"stroke_count": 2}, event_id=...)
    assert first[:50] == second[:50]
    a, b = decoder.decode(first), decoder.decode(second)
    assert a.event_id == event_id_of(first) != b.event_id == event_id_of(second)
    assert a.dedup_key != b.dedup_key


def test_given_event_id_is_kept_and_scoped_to_the_student() -> None:
    mine = decoder.decode(message("login_event", event_id="e-1"))
    theirs = decoder.decode(message("login_event", event_id="e-1", student_id="stu-y"))
    assert mine.event_id == theirs.event_id == "e-1"
    assert mine.dedup_key == dedup_key_of("stu-x", "e-1") != theirs.dedup_key


def test_payload_defaults_apply() -> None:
    stroke = decoder.decode(message("stroke_raw")).payload
    assert stroke == StrokeRaw(stroke_count=0, page_id="", subject="unknown")
    grade = decoder.decode(message("grade_result", {"errors": [{}]})).payload
    assert isinstance(grade, GradeResult)
    assert (grade.score, grade.total_score, grade.subject, grade.errors[0].knowledge_point) == (
        0.0,
        100.0,
        "unknown",
        "",
    )


def test_decode_batch_dead_letters_keep_raw_bytes_and_position() -> None:
    good = message("login_event")
    not_utf8 = b'{"event_type": "\xff"}'
    events, dead = decoder.decode_batch(RawBatch("school.jsonl", 0, [3, 7], [good, not_utf8]))
    assert [event.offset for event in events] == [3]
    (letter,) = dead
    assert (letter.origin, letter.partition, letter.offset, letter.reason) == (
        "school.jsonl",
        0,
        7,
        "bad_json",
    )
    assert letter.raw_encoding == "base64"
    assert base64.b64decode(letter.raw) == not_utf8


def test_decode_batch_keeps_source_rejections() -> None:
    broker = dead_letter("events", 2, 41, b"", "broker_error", "partition leader unavailable")
    batch = RawBatch("events", 2, [42], [message("login_event")], rejected=[broker])
    events, dead = decoder.decode_batch(batch)
    assert [event.offset for event in events] == [42]
    assert dead == [broker]
