"""The accepted timestamp grammar (SPEC §1), parsed exactly and fast.

Accepted, and nothing else (ASCII digits only; docs/recovery.md and the
README's dead-letter section state the same):

    YYYY-MM-DD                                   a local date: its midnight
    YYYY-MM-DD(T|t| )hh:mm[:ss[(.|,)f...f]][zone]
    zone = Z | z | (+|-)hh | (+|-)hh:mm | (+|-)hhmm

- seconds 00-59 (no leap second), hours 00-23 (no 24:00), offsets below
  24 hours; a fraction of 1 to 9 digits, truncated to microseconds;
- without a zone the time is a wall-clock time of the school time zone;
- the instant must lie in [1970-01-01T00:00Z, 2106-02-07T06:28:15Z] and
  its local date on or after 1970-01-01: what ClickHouse's `DateTime`
  (the narrowest time column) can hold, so no event is ever clamped into
  another date by a store.

Python's `datetime.fromisoformat` is not used: it also takes week dates,
basic formats, a trailing NUL and other forms a producer should not rely
on. Conversions are cached per minute and zone: the calendar arithmetic
runs once per distinct minute, and the regular expression only for a
text whose minute and zone were not seen yet, or of a rarer shape.
"""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo
from typing import Final

# 2106-02-07T06:28:15Z: the last second of ClickHouse's DateTime (UInt32).
MAX_INSTANT_US: Final = (2**32 - 1) * 1_000_000 + 999_999
MIN_DAY: Final = date(1970, 1, 1).toordinal()

_GRAMMAR: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})"  # date
    r"(?:[Tt ](\d{2}:\d{2})"  # hour and minute
    r"(?::(\d{2})(?:[.,](\d{1,9}))?)?"  # seconds, fraction
    r"([Zz]|[+-]\d{2}(?::?\d{2})?)?)?",  # zone
    re.ASCII,
)
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()
# "00" to "59" (ASCII digits only), read in one lookup
_SECONDS: Final = {f"{second:02d}": second for second in range(60)}
_CACHE_LIMIT: Final = 1 << 16
_FRACTION_MARKS: Final = frozenset(".,")
_FRACTION: Final = re.compile(r"[.,](\d{1,9})", re.ASCII)
# A fraction's first `kept` digits (at most 6) times this are microseconds.
_MICROS_PER_UNIT: Final = (0, 100_000, 10_000, 1_000, 100, 10, 1)
_MINUTE_US: Final = 60_000_000 - 1


class TimestampError(ValueError):
    """A timestamp outside the grammar or the storable range; the message says which."""


class TimestampParser:
    """Parses timestamps of the grammar above into (epoch microseconds, local date ordinal)."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # (date, hh:mm, zone) -> (epoch seconds of the minute's start, local date
        # ordinal at its start, at its end): the two differ only in a zone whose
        # offset has seconds (historic ones), where each instant is converted
        self._minutes: dict[tuple[str, str | None, str | None], tuple[int, int, int]] = {}
        # (date, separator, hh:mm, zone) as text -> (epoch seconds of the minute's
        # start, local date ordinal), for a minute whose seconds all share one local
        # date and are storable: a text with seconds whose surroundings matched a
        # valid one needs only its seconds and fraction checked (see `parse`).
        self._around_seconds: dict[str, tuple[int, int]] = {}

    def parse(self, text: str) -> tuple[int, int]:
        """`text`'s instant in microseconds since the epoch and its local date (as an ordinal)."""
        # The common shapes, `YYYY-MM-DDThh:mm:ss[.f...f][zone]`, without the
        # whole grammar's regular expression: the minute comes from
        # `_around_seconds` by the text around its seconds and fraction, so
        # only the seconds and the fraction's digits are checked here.
        if len(text) >= 19 and text[16] == ":":
            seconds = _SECONDS.get(text[17:19])
            if seconds is not None:
                end, micros = 19, 0
                if text[19:20] in _FRACTION_MARKS:
                    fraction = _FRACTION.match(text, 19)
                    if fraction is None:
                        return self._parse(text)  # which says why
                    end = fraction.end()  # a tenth digit is left to fail the lookup
                    kept = min(end - 20, 6)
                    micros = int(text[20 : 20 + kept]) * _MICROS_PER_UNIT[kept]
                minute = self._around_seconds.get(text[:16] + text[end:])
                if minute is not None:
                    return (minute[0] + seconds) * 1_000_000 + micros, minute[1]
        return self._parse(text)

    def _parse(self, text: str) -> tuple[int, int]:
        match = _GRAMMAR.fullmatch(text)
        if match is None:
            raise TimestampError(
                f"timestamp {text!r} is not ISO 8601 (YYYY-MM-DD[Thh:mm[:ss[.f]][zone]])"
            )
        day_text, minute_text, seconds_text, fraction, zone = match.groups()
        key = (day_text, minute_text, zone)
        minute = self._minutes.get(key)
        if minute is None:
            minute = self._minute(text, day_text, minute_text, zone)
            if len(self._minutes) >= _CACHE_LIMIT:
                self._minutes.clear()
            self._minutes[key] = minute
        start, day, day_at_end = minute
        seconds = int(seconds_text) if seconds_text else 0
        if seconds > 59:
            raise TimestampError(f"timestamp {text!r} has {seconds} seconds")
        instant = (start + seconds) * 1_000_000 + (
            int(fraction[:6].ljust(6, "0")) if fraction else 0
        )
        if instant > MAX_INSTANT_US:
            raise TimestampError(
                f"timestamp {text!r} is after 2106-02-07T06:28:15Z, the last instant the stores hold"
            )
        # every second of the minute has this minute's local date and is storable
        if seconds_text and day == day_at_end and start * 1_000_000 + _MINUTE_US <= MAX_INSTANT_US:
            if len(self._around_seconds) >= _CACHE_LIMIT:
                self._around_seconds.clear()
            self._around_seconds[text[:16] + (zone or "")] = (start, day)
        if day != day_at_end:
            day = self._local_day(start + seconds)
        return instant, day

    def _minute(
        self, text: str, day_text: str, minute_text: str | None, zone: str | None
    ) -> tuple[int, int, int]:
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise TimestampError(f"timestamp {text!r} names no calendar date") from None
        hour, minute = (int(minute_text[:2]), int(minute_text[3:])) if minute_text else (0, 0)
        if hour > 23 or minute > 59:
            raise TimestampError(f"timestamp {text!r} names no time of day")
        if zone is None:  # a wall-clock time of the school: its date is the local date
            try:
                local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)
                start = int(local.timestamp())
            except (OverflowError, ValueError):
                raise TimestampError(f"timestamp {text!r} is out of range") from None
            first = last = day.toordinal()
        else:
            offset = _offset_seconds(text, zone)
            start = (day.toordinal() - _EPOCH_DAY) * 86400 + hour * 3600 + minute * 60 - offset
            first, last = self._local_day(start), self._local_day(start + 59)
        if start < 0 or first < MIN_DAY:
            raise TimestampError(
                f"timestamp {text!r} is before 1970-01-01T00:00Z (or its local date is), "
                "where the stores begin"
            )
        return start, first, last

    def _local_day(self, seconds: int) -> int:
        """The local date (ordinal) of an instant in whole seconds."""
        try:
            return datetime.fromtimestamp(seconds, self.tz).toordinal()
        except (OverflowError, OSError, ValueError):
            return MIN_DAY - 1  # beyond what the platform converts: refused as out of range


def _offset_seconds(text: str, zone: str) -> int:
    if zone in ("Z", "z"):
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise TimestampError(f"timestamp {text!r} has an offset out of range")
    offset = hours * 3600 + minutes * 60
    return -offset if zone[0] == "-" else offset
