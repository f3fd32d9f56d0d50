"""Event-time minute windows for the live class board, as pure logic.

Windows are tumbling, `seconds` long, aligned to the epoch in event time.
Per (student, window) a shard keeps the student's totals (`StudentWindows`);
per (class, window) the `class_windows` step keeps the class's
(`ClassWindows`), made of the contributions the shards send it after each
batch, one small tuple per event (a class's students live in many shards).
Every total is exact (integer sums, as in `writech.aggregate`), so a row
depends only on the distinct events in its window, whatever their order,
batching or worker, or a crash and resume: Bytewax restores every step's
state from the same snapshot, so a contribution is counted exactly once.

A window's row is written whenever it changed, at most once per flush
interval, as an upsert whose `version` is its number of distinct events:
rows of windows still open let the board follow a lesson as it happens.
The watermark is the newest event time seen minus `lateness` (by default
the retention of SPEC §5): a window accepts late events until the
watermark passes its end, then it is final and leaves the state. A later
event still counts in its daily row if §5 allows, but no longer changes
its window (`too_late` counts those).

Windows are many (with events spread over a day, about one per event), so
a window's state is one flat list, its sums plain integers: a slotted
object with nested parts cost three times the memory and time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from writech.events import Event, HomeworkSubmit, StrokeOrder, StrokeRaw, WritingQuality
from writech.frozen import Frozen
from writech.schema import ClassMinuteRow, StudentMinuteRow

# Sums of scores are integers in units of 2**-UNITS (finer where a value
# needs it): every double of at least 2**-10 is an exact multiple of 2**-62.
UNITS: Final = 62
_SCALE: Final = 2.0**UNITS

# The totals of a window, as one list: these are its slots.
EVENTS, STROKES, HOMEWORK, ORDERS, ORDER_SUM, QUALITIES, QUALITY_SUM, SCALE, CHARACTERS = range(9)
# ... then the school of the latest event naming one, as its (time, event id, id);
SCHOOL_TIME, SCHOOL_EVENT, SCHOOL = 9, 10, 11
# in a student's window: the same for the class, and the classes written for
# (a str, or a set of several); in a class's window: the students active.
CLASS_TIME, CLASS_EVENT, CLASS, CLASSES = 12, 13, 14, 15
ACTIVE = 12

Totals = list[Any]

# What an event adds to a window, by payload type: a kind, and its value.
OTHER, STROKES_KIND, ORDER_KIND, QUALITY_KIND, HOMEWORK_KIND = range(5)
_KINDS: Final[dict[type[Any], int]] = {
    StrokeRaw: STROKES_KIND,
    StrokeOrder: ORDER_KIND,
    WritingQuality: QUALITY_KIND,
    HomeworkSubmit: HOMEWORK_KIND,
}

# An event's contribution to its class's window, which a shard sends the
# class step: (window start, 1 if the student is new to the window, kind,
# value, character, school id, time_us, event id).
Contribution = tuple[int, int, int, Any, str, str, int, str]


def _totals(*extra: Any) -> Totals:
    return [0, 0, 0, 0, 0, 0, 0, UNITS, None, -1, "", "", *extra]


def _note(totals: Totals, at: int, time_us: int, event_id: str, value: str) -> None:
    """Keep `value` at `at` if it comes from a later event (by time, then id) than the one kept."""
    kept = totals[at]
    if time_us > kept or (time_us == kept and event_id > totals[at + 1]):
        totals[at], totals[at + 1], totals[at + 2] = time_us, event_id, value


def _widen(totals: Totals, units: int) -> None:
    """Finer units for every sum of `totals` (characters included), all exact."""
    shift = units - totals[SCALE]
    totals[ORDER_SUM] <<= shift
    totals[QUALITY_SUM] <<= shift
    for scores in (totals[CHARACTERS] or {}).values():
        scores[1] <<= shift
    totals[SCALE] = units


def _scaled(totals: Totals, value: float) -> int:
    """`value` exactly in the units of `totals` (widened if `value` needs finer ones)."""
    scaled = value * _SCALE
    if scaled.is_integer() and totals[SCALE] == UNITS:
        return int(scaled)
    numerator, denominator = value.as_integer_ratio()
    needed = denominator.bit_length() - 1  # value == numerator * 2**-needed
    if needed > totals[SCALE]:
        _widen(totals, needed)
    units: int = totals[SCALE]
    return numerator << (units - needed)


def _count(totals: Totals, kind: int, value: Any, character: str) -> None:
    """Fold one event, as its kind and value, into a window's totals."""
    totals[EVENTS] += 1
    if kind == STROKES_KIND:
        totals[STROKES] += value
    elif kind == ORDER_KIND:
        scaled = _scaled(totals, value)
        totals[ORDERS] += 1
        totals[ORDER_SUM] += scaled
        characters = totals[CHARACTERS]
        if characters is None:
            characters = totals[CHARACTERS] = {}
        scores = characters.get(character)
        if scores is None:
            characters[character] = [1, scaled]
        else:
            scores[0] += 1
            scores[1] += scaled
    elif kind == QUALITY_KIND:
        scaled = _scaled(totals, value)
        totals[QUALITIES] += 1
        totals[QUALITY_SUM] += scaled
    elif kind == HOMEWORK_KIND:
        totals[HOMEWORK] += 1


def _mean(total: int, count: int, units: int) -> float:
    # int / int is correctly rounded: the true mean to the last bit
    return total / (count << units) if count else 0.0


# The character columns of a window without stroke-order practice (most of
# them): one shared empty tuple, no three new lists per row.
_NO_CHARACTERS: Final[tuple[()]] = ()


def _row(key: tuple[Any, ...], totals: Totals) -> tuple[Any, ...]:
    """`key` (the row's first columns), then `events` to `version`, in column order."""
    units = totals[SCALE]
    characters = totals[CHARACTERS]
    qualities = totals[QUALITIES]
    quality = totals[QUALITY_SUM] / (qualities << units) if qualities else 0.0
    if characters is None:
        return (
            *key, totals[EVENTS], totals[STROKES], 0, 0.0, qualities, quality,
            totals[HOMEWORK], _NO_CHARACTERS, _NO_CHARACTERS, _NO_CHARACTERS, totals[EVENTS],
        )  # fmt: skip
    names = sorted(characters)
    return (
        *key,
        totals[EVENTS],
        totals[STROKES],
        totals[ORDERS],
        _mean(totals[ORDER_SUM], totals[ORDERS], units),
        qualities,
        quality,
        totals[HOMEWORK],
        names,
        [characters[name][0] for name in names],
        [_mean(characters[name][1], characters[name][0], units) for name in names],
        totals[EVENTS],
    )


def _first_time_for(window: Totals, class_id: str) -> int:
    """Whether the student writes for `class_id` for the first time in this window (noting it)."""
    classes = window[CLASSES]
    if classes == class_id:
        return 0
    if isinstance(classes, set):
        if class_id in classes:
            return 0
        classes.add(class_id)
    else:
        window[CLASSES] = {classes, class_id} if classes else class_id
    return 1


class _Windows(Frozen):
    """The windows starting on one UTC day: pickled once until one of them changes."""

    __slots__ = ("windows",)

    def __init__(self) -> None:
        super().__init__()
        self.windows: dict[Any, Totals] = {}

    def state(self) -> dict[Any, Totals]:
        return self.windows

    def restore(self, state: dict[Any, Totals]) -> None:
        self.windows = state


class StudentWindows:
    """The windows of one shard's students, and the watermark that finalises them.

    Windows are kept by the UTC day they start on, so that a snapshot pickles
    only the days that changed and final windows leave a day at a time.
    """

    def __init__(self, seconds: int, lateness: int) -> None:
        self.seconds = seconds
        self.lateness = lateness
        self.newest = 0  # newest event time seen, in seconds
        self.days: dict[int, _Windows] = {}  # by start // 86400; keys (student_id, start)
        self.dirty: set[tuple[str, int]] = set()
        self.too_late = 0  # events whose window was final already

    def apply(self, events: Iterable[Event]) -> dict[str, list[Contribution]]:
        """Count `events` (each counted once already) into their windows; by class, their
        contributions to the classes' windows."""
        contributions: dict[str, list[Contribution]] = {}
        seconds, days, dirty = self.seconds, self.days, self.dirty
        for event in events:
            time_us = event.time_us
            instant = time_us // 1_000_000
            if instant > self.newest:
                self.newest = instant
            start = instant - instant % seconds
            if start + seconds <= self.newest - self.lateness:
                self.too_late += 1
                continue
            day = days.get(start // 86400)
            if day is None:
                day = days[start // 86400] = _Windows()
            day.frozen = None  # changed: its next snapshot pickles it again
            key = (event.student_id, start)
            window = day.windows.get(key)
            if window is None:
                window = day.windows[key] = _totals(-1, "", "", "")
            payload = event.payload
            kind = _KINDS.get(type(payload), OTHER)
            value: Any = 0
            character = ""
            if kind == STROKES_KIND:
                value = payload.stroke_count  # type: ignore[union-attr]
            elif kind == ORDER_KIND:
                value, character = payload.score, payload.character  # type: ignore[union-attr]
            elif kind == QUALITY_KIND:
                value = payload.quality_score  # type: ignore[union-attr]
            _count(window, kind, value, character)
            dirty.add(key)
            class_id, school_id, event_id = event.class_id, event.school_id, event.event_id
            # the latest event naming a school or class, inline: it is the same one
            # event after event, so the comparison is all that usually runs
            if school_id and (
                time_us > window[SCHOOL_TIME]
                or (time_us == window[SCHOOL_TIME] and event_id > window[SCHOOL_EVENT])
            ):
                window[SCHOOL_TIME], window[SCHOOL_EVENT], window[SCHOOL] = (
                    time_us, event_id, school_id,
                )  # fmt: skip
            if not class_id:
                continue
            if time_us > window[CLASS_TIME] or (
                time_us == window[CLASS_TIME] and event_id > window[CLASS_EVENT]
            ):
                window[CLASS_TIME], window[CLASS_EVENT], window[CLASS] = (
                    time_us, event_id, class_id,
                )  # fmt: skip
            new = 0 if window[CLASSES] == class_id else _first_time_for(window, class_id)
            contribution = (start, new, kind, value, character, school_id, time_us, event_id)
            found = contributions.get(class_id)
            if found is None:
                contributions[class_id] = [contribution]
            else:
                found.append(contribution)
        return contributions

    def flush(self) -> list[StudentMinuteRow]:
        """Rows of the windows changed since the last flush; days of final windows leave."""
        seconds, days = self.seconds, self.days
        rows: list[StudentMinuteRow] = []
        for key in self.dirty:
            student_id, start = key
            window = days[start // 86400].windows[key]
            rows.append(_row((student_id, window[CLASS], window[SCHOOL], start, seconds), window))
        self.dirty.clear()
        _drop_final_days(days, self.newest - self.lateness)
        return rows

    def window_keys(self) -> Iterator[tuple[str, int]]:
        """(student_id, window start) of every window in the state."""
        for day in self.days.values():
            yield from day.windows

    def forget(self, student_ids: Iterable[str]) -> None:
        """Drop every window of these students (deletion on request, `writech forget`)."""
        forgotten = set(student_ids)
        for day in self.days.values():
            for key in [key for key in day.windows if key[0] in forgotten]:
                del day.windows[key]
                self.dirty.discard(key)
            day.thaw()


def _drop_final_days(days: dict[int, _Windows], cutoff: int) -> None:
    """Drop the days all of whose windows ended before `cutoff` (the watermark)."""
    for number in [number for number in days if (number + 1) * 86400 <= cutoff]:
        del days[number]


class ClassWindows:
    """The windows of one class: the `class_windows` step's state for one class key."""

    def __init__(self, seconds: int, lateness: int) -> None:
        self.class_id = ""  # the step's key, learnt from the first delta
        self.seconds = seconds
        self.lateness = lateness
        self.newest = 0  # newest window start seen
        self.days: dict[int, _Windows] = {}  # by start // 86400; keys: window starts
        self.dirty: set[int] = set()
        self.too_late = 0  # deltas for windows final already here

    def apply(self, class_id: str, contributions: Iterable[Contribution]) -> None:
        self.class_id = class_id  # the step's key
        days, seconds = self.days, self.seconds
        for start, new, kind, value, character, school_id, time_us, event_id in contributions:
            if start > self.newest:
                self.newest = start
            day = days.get(start // 86400)
            if day is None:
                day = days[start // 86400] = _Windows()
            window = day.windows.get(start)
            if window is None:
                if start + seconds <= self.newest - self.lateness:
                    self.too_late += 1  # a partial row would not replace the final one
                    continue
                window = day.windows[start] = _totals(0)
            day.frozen = None
            _count(window, kind, value, character)
            window[ACTIVE] += new
            if school_id:
                _note(window, SCHOOL_TIME, time_us, event_id, school_id)
            self.dirty.add(start)

    def flush(self) -> list[ClassMinuteRow]:
        rows: list[ClassMinuteRow] = []
        for start in self.dirty:
            window = self.days[start // 86400].windows[start]
            key = (self.class_id, window[SCHOOL], start, self.seconds, window[ACTIVE])
            rows.append(_row(key, window))
        self.dirty.clear()
        _drop_final_days(self.days, self.newest - self.lateness)
        return rows
