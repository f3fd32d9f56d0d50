"""Event-time minute windows for the live class board, as pure logic.

Windows are tumbling, `seconds` long, aligned to the epoch in event time.
Per (student, window) a shard keeps the student's totals (`StudentWindows`);
per (class, window) the `class_windows` step keeps the class's
(`ClassWindows`), made of the exact deltas the shards send it after each
batch (a class's students live in many shards). Every total is exact
(integer sums, as in `writech.aggregate`), so a row depends only on the
distinct events in its window, whatever their order, batching or worker,
or a crash and resume: Bytewax restores every step's state from the same
snapshot, so a delta is applied exactly once.

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

from collections.abc import Iterable
from typing import Any, Final

from writech.events import Event, HomeworkSubmit, StrokeOrder, StrokeRaw, WritingQuality
from writech.schema import ClassMinuteRow, StudentMinuteRow

# Sums of scores are integers in units of 2**-UNITS (finer where a value
# needs it): every double of at least 2**-10 is an exact multiple of 2**-62.
UNITS: Final = 62
_SCALE: Final = 2.0**UNITS

# The totals of a window, as one list: these are its slots.
EVENTS, STROKES, HOMEWORK, ORDERS, ORDER_SUM, QUALITIES, QUALITY_SUM, SCALE, CHARACTERS = range(9)
# ... then, in a student's window: the latest (time, event id, id) naming a
# class and a school, and the classes written for (a str, or a set of several);
CLASS_SEEN, SCHOOL_SEEN, CLASSES = 9, 10, 11
# in a class's window, and in a delta a shard sends the class step (the
# class's totals from one batch): the latest naming a school, and the
# students active (in a delta: new to the window).
CLASS_SCHOOL, ACTIVE = 9, 10

Totals = list[Any]
_NOBODY: Final = (-1, "", "")


def _totals(*extra: Any) -> Totals:
    return [0, 0, 0, 0, 0, 0, 0, UNITS, None, *extra]


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


def _count(totals: Totals, event: Event) -> None:
    """Fold one event into a window's totals."""
    totals[EVENTS] += 1
    payload = event.payload
    if isinstance(payload, StrokeRaw):
        totals[STROKES] += payload.stroke_count
    elif isinstance(payload, StrokeOrder):
        scaled = _scaled(totals, payload.score)
        totals[ORDERS] += 1
        totals[ORDER_SUM] += scaled
        characters = totals[CHARACTERS]
        if characters is None:
            characters = totals[CHARACTERS] = {}
        scores = characters.get(payload.character)
        if scores is None:
            characters[payload.character] = [1, scaled]
        else:
            scores[0] += 1
            scores[1] += scaled
    elif isinstance(payload, WritingQuality):
        scaled = _scaled(totals, payload.quality_score)
        totals[QUALITIES] += 1
        totals[QUALITY_SUM] += scaled
    elif isinstance(payload, HomeworkSubmit):
        totals[HOMEWORK] += 1


def _add(totals: Totals, delta: Totals) -> None:
    """Add a delta's totals (in its own units) to a window's."""
    if delta[SCALE] > totals[SCALE]:
        _widen(totals, delta[SCALE])
    shift = totals[SCALE] - delta[SCALE]
    totals[EVENTS] += delta[EVENTS]
    totals[STROKES] += delta[STROKES]
    totals[HOMEWORK] += delta[HOMEWORK]
    totals[ORDERS] += delta[ORDERS]
    totals[ORDER_SUM] += delta[ORDER_SUM] << shift
    totals[QUALITIES] += delta[QUALITIES]
    totals[QUALITY_SUM] += delta[QUALITY_SUM] << shift
    if delta[CHARACTERS]:
        characters = totals[CHARACTERS]
        if characters is None:
            characters = totals[CHARACTERS] = {}
        for name, (count, total) in delta[CHARACTERS].items():
            scores = characters.get(name)
            if scores is None:
                characters[name] = [count, total << shift]
            else:
                scores[0] += count
                scores[1] += total << shift


def _mean(total: int, count: int, units: int) -> float:
    # int / int is correctly rounded: the true mean to the last bit
    return total / (count << units) if count else 0.0


def _measures(
    totals: Totals,
) -> tuple[int, int, int, float, int, float, int, list[str], list[int], list[float]]:
    """`events` to `character_scores`, in the minute tables' column order."""
    units = totals[SCALE]
    characters = totals[CHARACTERS] or {}
    names = sorted(characters)
    return (
        totals[EVENTS],
        totals[STROKES],
        totals[ORDERS],
        _mean(totals[ORDER_SUM], totals[ORDERS], units),
        totals[QUALITIES],
        _mean(totals[QUALITY_SUM], totals[QUALITIES], units),
        totals[HOMEWORK],
        names,
        [characters[name][0] for name in names],
        [_mean(characters[name][1], characters[name][0], units) for name in names],
    )


def _first_time_for(window: Totals, class_id: str) -> bool:
    """Whether the student writes for `class_id` for the first time in this window (noting it)."""
    classes = window[CLASSES]
    if classes == class_id:
        return False
    if isinstance(classes, set):
        if class_id in classes:
            return False
        classes.add(class_id)
    else:
        window[CLASSES] = {classes, class_id} if classes else class_id
    return True


class StudentWindows:
    """The windows of one shard's students, and the watermark that finalises them."""

    def __init__(self, seconds: int, lateness: int) -> None:
        self.seconds = seconds
        self.lateness = lateness
        self.newest = 0  # newest event time seen, in seconds
        self.windows: dict[tuple[str, int], Totals] = {}
        self.dirty: set[tuple[str, int]] = set()
        self.too_late = 0  # events whose window was final already

    def apply(self, events: Iterable[Event]) -> list[Totals]:
        """Count `events` (each counted once already) into their windows; the classes' deltas.

        A delta is `[*totals, latest school seen, new students, class_id, window start]`.
        """
        deltas: dict[tuple[str, int], Totals] = {}
        seconds, windows, dirty = self.seconds, self.windows, self.dirty
        for event in events:
            instant = event.time_us // 1_000_000
            if instant > self.newest:
                self.newest = instant
            start = instant - instant % seconds
            if start + seconds <= self.newest - self.lateness:
                self.too_late += 1
                continue
            key = (event.student_id, start)
            window = windows.get(key)
            if window is None:
                window = windows[key] = _totals(_NOBODY, _NOBODY, "")
            _count(window, event)
            dirty.add(key)
            time_us, class_id, school_id = event.time_us, event.class_id, event.school_id
            # compare times first: a (time, id, value) tuple per event costs more
            if class_id and time_us >= window[CLASS_SEEN][0]:
                window[CLASS_SEEN] = max(window[CLASS_SEEN], (time_us, event.event_id, class_id))
            if school_id and time_us >= window[SCHOOL_SEEN][0]:
                window[SCHOOL_SEEN] = max(window[SCHOOL_SEEN], (time_us, event.event_id, school_id))
            if not class_id:
                continue
            delta = deltas.get((class_id, start))
            if delta is None:
                delta = deltas[(class_id, start)] = _totals(_NOBODY, 0, class_id, start)
            _count(delta, event)
            if school_id and time_us >= delta[CLASS_SCHOOL][0]:
                delta[CLASS_SCHOOL] = max(delta[CLASS_SCHOOL], (time_us, event.event_id, school_id))
            if _first_time_for(window, class_id):
                delta[ACTIVE] += 1
        return list(deltas.values())

    def flush(self) -> list[StudentMinuteRow]:
        """Rows of the windows changed since the last flush; final windows leave the state."""
        seconds, windows = self.seconds, self.windows
        rows: list[StudentMinuteRow] = []
        for student_id, start in self.dirty:
            window = windows[(student_id, start)]
            rows.append(
                (
                    student_id,
                    window[CLASS_SEEN][2],
                    window[SCHOOL_SEEN][2],
                    start,
                    seconds,
                    *_measures(window),
                    window[EVENTS],
                )
            )
        self.dirty.clear()
        cutoff = self.newest - self.lateness
        for key in [key for key in windows if key[1] + seconds <= cutoff]:
            del windows[key]
        return rows

    def forget(self, student_ids: Iterable[str]) -> None:
        """Drop every window of these students (deletion on request, `writech forget`)."""
        forgotten = set(student_ids)
        for key in [key for key in self.windows if key[0] in forgotten]:
            del self.windows[key]
            self.dirty.discard(key)


class ClassWindows:
    """The windows of one class: the `class_windows` step's state for one class key."""

    def __init__(self, seconds: int, lateness: int) -> None:
        self.class_id = ""  # the step's key, learnt from the first delta
        self.seconds = seconds
        self.lateness = lateness
        self.newest = 0  # newest window start seen
        self.windows: dict[int, Totals] = {}
        self.dirty: set[int] = set()
        self.too_late = 0  # deltas for windows final already here

    def apply(self, deltas: Iterable[Totals]) -> None:
        for delta in deltas:
            *_, self.class_id, start = delta
            self.newest = max(self.newest, start)
            window = self.windows.get(start)
            if window is None:
                if start + self.seconds <= self.newest - self.lateness:
                    self.too_late += 1  # a partial row would not replace the final one
                    continue
                window = self.windows[start] = _totals(_NOBODY, 0)
            _add(window, delta)
            window[ACTIVE] += delta[ACTIVE]
            window[CLASS_SCHOOL] = max(window[CLASS_SCHOOL], delta[CLASS_SCHOOL])
            self.dirty.add(start)

    def flush(self) -> list[ClassMinuteRow]:
        rows: list[ClassMinuteRow] = []
        for start in self.dirty:
            window = self.windows[start]
            rows.append(
                (
                    self.class_id,
                    window[CLASS_SCHOOL][2],
                    start,
                    self.seconds,
                    window[ACTIVE],
                    *_measures(window),
                    window[EVENTS],
                )
            )
        self.dirty.clear()
        cutoff = self.newest - self.lateness
        for start in [start for start in self.windows if start + self.seconds <= cutoff]:
            del self.windows[start]
        return rows
