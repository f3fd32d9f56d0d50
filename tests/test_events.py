"""SPEC §1: every rule, a message that breaks it, and the reason it gets."""

from __future__ import annotations

import base64
import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests import rows
from tests.cases import INVALID, VALID, message
from writech import events
from writech.events import (
    UTF8_BOM,
    EventDecoder,
    GradeResult,
    Invalid,
    RawBatch,
    StrokeRaw,
    dead_letter,
    dedup_key_of,
    event_id_of,
    is_text,
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


def test_future_skew_is_relative_to_when_the_message_was_produced() -> None:
    produced = 1_800_000_000.0
    later = date.fromtimestamp(produced) + timedelta(days=3)
    raw = message("login_event", timestamp=f"{later.isoformat()}T00:00:00Z")
    with pytest.raises(Invalid) as caught:
        decoder.decode(raw, now=produced)
    assert caught.value.reason == "bad_timestamp"
    assert decoder.decode(raw, now=produced + 3 * 86400).student_id == "stu-x"


def test_a_batch_is_judged_by_its_produced_at_not_the_wall_clock() -> None:
    """Issue item: a message's fate must not depend on when it is read (a resume re-reads it)."""
    produced = 1_800_000_000.0
    ahead = message("login_event", timestamp="2030-01-01T00:00:00Z")  # years after `produced`
    batch = RawBatch("events.jsonl", 0, [1], [ahead], produced_at=[produced])
    for reading_time in (produced, produced + 10 * 365 * 86400):  # read now, or a decade later
        events, dead = decoder.decode_batch(batch, now=reading_time)
        assert events == []
        assert [letter.reason for letter in rows.dead_letters(dead)] == ["bad_timestamp"]


def test_a_large_configured_skew_never_moves_an_event_to_another_date() -> None:
    """Dates past what the stores hold are refused, not clamped, whatever the skew allows."""
    lenient = EventDecoder(SHANGHAI, max_future_skew=timedelta(days=365 * 1000))
    for timestamp in ("2149-06-07T00:00:00Z", "2200-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        with pytest.raises(Invalid) as caught:
            lenient.decode(message("login_event", timestamp=timestamp))
        assert caught.value.reason == "bad_timestamp"
    last = lenient.decode(message("login_event", timestamp="2106-02-07T06:28:15Z"))
    assert date.fromordinal(last.day) == date(2106, 2, 7)


def test_routing_never_raises_on_a_poison_message() -> None:
    poison = message("login_event").replace(b"}", b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert decoder.student_of(poison) == ""
    events, dead = decoder.decode_batch(RawBatch("events.jsonl", 0, [9], [poison]))
    assert events == []
    assert [(letter.reason, letter.offset) for letter in rows.dead_letters(dead)] == [
        ("bad_json", 9)
    ]


def test_a_message_starting_with_a_byte_order_mark_says_so() -> None:
    """RFC 8259: a JSON message must not carry one (a file may start with one: the files
    source drops it there). Said plainly, where msgspec said "invalid character"."""
    marked = UTF8_BOM + message("login_event")
    assert decoder.student_of(marked) == ""
    events, dead = decoder.decode_batch(RawBatch("events.jsonl", 0, [1, 2], [marked, UTF8_BOM]))
    assert events == []
    said = (
        "starts with a byte order mark (U+FEFF), which a JSON message must not carry "
        "(RFC 8259); only a file may start with one"
    )
    assert [(letter.reason, letter.message, letter.raw) for letter in rows.dead_letters(dead)] == [
        ("bad_json", said, marked.decode()),
        ("bad_json", said, UTF8_BOM.decode()),
    ]


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


def test_events_of_one_student_share_their_id_strings() -> None:
    fresh = EventDecoder(SHANGHAI)
    first = fresh.decode(message("login_event", event_id="e-1"))
    second = fresh.decode(message("stroke_raw", {"stroke_count": 1}, event_id="e-2"))
    assert first.student_id is second.student_id
    assert first.class_id is second.class_id
    assert first.school_id is second.school_id


def test_the_shared_ids_stay_bounded_under_a_flood_of_new_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "_SHARED_IDS_LIMIT", 10)
    fresh = EventDecoder(SHANGHAI)
    decoded = [
        fresh.decode(message("login_event", student_id=f"stu-{n}", class_id=f"class-{n}"))
        for n in range(50)
    ]
    assert len(fresh._ids) < 10 + 3  # cleared before an event adds its three
    assert [event.student_id for event in decoded] == [f"stu-{n}" for n in range(50)]
    assert [event.class_id for event in decoded] == [f"class-{n}" for n in range(50)]


def test_timestamps_are_exact_to_the_microsecond() -> None:
    event = decoder.decode(message("login_event", timestamp="2026-09-02T09:00:00.9999999+08:00"))
    assert event.time_us == 1_788_310_800_999_999  # truncated, never rounded into the next second


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
    (letter,) = rows.dead_letters(dead)
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


@pytest.mark.parametrize(
    ("value", "carried"),
    [("stu-000012", True), ("笔顺", True), ("", True), ("stu-\udcff", False), ("\ud800", False)],
)
def test_text_a_message_can_carry_is_utf8_without_lone_surrogates(
    value: str, carried: bool
) -> None:
    assert is_text(value) is carried
    if not carried:  # and the decoder indeed refuses such a string in a message
        raw = json.dumps({"event_type": "login_event", "student_id": value}).encode()
        with pytest.raises(Invalid) as refused:
            decoder.decode(raw)
        assert refused.value.reason == "bad_json"
