"""The timestamp grammar (writech.timestamps) against Python's own calendar arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import reference
from writech.timestamps import MAX_INSTANT_US, TimestampError, TimestampParser

ZONES = ["Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "UTC"]
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2105, 12, 31))
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@given(moment=moments, offset=offsets, zone=st.sampled_from(ZONES))
def test_an_instant_with_an_offset_is_exact_and_dated_in_the_school_zone(
    moment: datetime, offset: int, zone: str
) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    sign = "-" if offset < 0 else "+"
    text = f"{moment.isoformat(timespec='microseconds')}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    instant, day = TimestampParser(ZoneInfo(zone)).parse(text)
    assert instant == _micros(aware)
    assert date.fromordinal(day) == aware.astimezone(ZoneInfo(zone)).date()


@given(moment=moments, zone=st.sampled_from(ZONES))
def test_a_naive_time_is_a_wall_clock_time_of_the_school(moment: datetime, zone: str) -> None:
    instant, day = TimestampParser(ZoneInfo(zone)).parse(moment.isoformat(sep=" "))
    assert instant == _micros(moment.replace(tzinfo=ZoneInfo(zone)))
    assert date.fromordinal(day) == moment.date()


@given(st.text(max_size=40))
def test_anything_else_is_refused_with_a_reason_or_matches_python(text: str) -> None:
    parser = TimestampParser(ZoneInfo("Asia/Shanghai"))
    try:
        instant, _ = parser.parse(text)
    except TimestampError:
        return  # the messages are checked by tests/test_events.py
    # accepted: then it is a form Python reads to the same instant
    parsed = datetime.fromisoformat(text.replace(",", "."))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(instant - _micros(parsed)) < 1_000  # Python rounds a 7th-9th fraction digit


def test_the_cache_does_not_mix_zones_or_seconds() -> None:
    parser = TimestampParser(ZoneInfo("Asia/Shanghai"))
    base, _ = parser.parse("2026-09-02T09:00:00Z")
    assert parser.parse("2026-09-02T09:00:59Z")[0] == base + 59_000_000
    assert parser.parse("2026-09-02T09:00:00+01:00")[0] == base - 3_600_000_000
    assert parser.parse("2026-09-02T09:00:00")[0] == base - 8 * 3_600_000_000


def test_the_last_instant_the_stores_hold() -> None:
    parser = TimestampParser(ZoneInfo("UTC"))
    assert parser.parse("2106-02-07T06:28:15.999999Z")[0] == MAX_INSTANT_US
    with pytest.raises(TimestampError, match="2106"):
        parser.parse("2106-02-07T06:28:16Z")


def test_a_cached_minute_never_lets_a_later_second_past_the_last_instant() -> None:
    parser = TimestampParser(ZoneInfo("UTC"))
    assert parser.parse("2106-02-07T06:28:10Z")[0] == MAX_INSTANT_US - 5_999_999
    for late in ("2106-02-07T06:28:16Z", "2106-02-07T06:28:59.5Z"):
        with pytest.raises(TimestampError, match="2106"):
            parser.parse(late)


timestamp_like = st.builds(
    "".join,
    st.lists(
        st.sampled_from(
            [
                *"0123456789-:Tt Zz+.,W\n\x00",
                *("2026-09-02", "T09:00", ":30", ".123", "+08:00", "+0800"),
            ]
        ),
        max_size=12,
    ),
)


@given(timestamp_like)
def test_the_grammar_agrees_with_the_independent_reference(text: str) -> None:
    """Differential: writech.timestamps against tests/reference.py's piecewise reading."""
    zone = ZoneInfo("Asia/Shanghai")
    instant: int | None
    expected: int | None
    try:
        instant, _ = TimestampParser(zone).parse(text)
    except TimestampError:
        instant = None
    try:
        moment = reference._timestamp(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        expected = _micros(moment)
        if not 0 <= expected <= MAX_INSTANT_US or moment.astimezone(zone).year < 1970:
            expected = None
    except (ValueError, OverflowError):
        expected = None
    assert instant == expected, text


@given(
    st.lists(
        st.sampled_from(["2026-09-02T09:00:", "2026-09-02 23:59:", "2026-09-03T00:00:"]), max_size=6
    ),
    st.lists(
        st.sampled_from(["00", "07", "59", "60", "9", "٣٤", "0a", "1", "99"]),
        min_size=6,
        max_size=6,
    ),
    st.lists(
        st.sampled_from(
            ["", ".5", ",25", ".123", ".123456", ".123456789", ".1234567890", ".", ".٣", ".1a"]
        ),
        min_size=6,
        max_size=6,
    ),
    st.sampled_from(["", "Z", "+08:00", "-0530", "+05", "z"]),
)
def test_the_cached_path_answers_as_a_fresh_parse(
    prefixes: list[str], seconds: list[str], fractions: list[str], zone: str
) -> None:
    """Texts around seconds and fractions already seen skip the regular expression:
    same answers, same refusals."""
    shared = TimestampParser(ZoneInfo("America/New_York"))
    for prefix, second, fraction in zip(prefixes * 2, seconds * 2, fractions * 2, strict=False):
        text = f"{prefix}{second}{fraction}{zone}"
        fresh = TimestampParser(ZoneInfo("America/New_York"))
        try:
            expected: tuple[int, int] | None = fresh.parse(text)
        except TimestampError:
            expected = None
        try:
            found: tuple[int, int] | None = shared.parse(text)
        except TimestampError:
            found = None
        assert found == expected, text
