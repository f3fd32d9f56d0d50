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
a window's state is one flat `msgspec.Struct` without garbage-collector
tracking (`gc=False`), its sums plain integers and its characters' totals
two dicts of integers (which CPython does not track either): the collector
never scans the windows. As lists, with one more list per character, they
were 1.3 of the 3.1 million containers the collector scanned again and
again, for garbage they never hold.

Windows stay in the state for the whole lateness (7 days by default), but
only the newest hour's change when events come in time order. So windows
are kept by the hour they start in, and an hour of windows idle by
`writech.frozen.Cooling`'s rule (no flush found it changed for a second,
twice as long each time an event brought it back; or, until an event
brings it back, ended an hour before the newest event) is kept as its
encoded bytes alone (the form its snapshots take: msgspec's JSON of the
windows as arrays, compressed with zstd; about 1.3 µs a window, where
pickling one took 4.9) until an event needs it again: about 30 bytes a
window against about 400 as objects (and 96 pickled). By the hour, not
by the day: a live class keeps its current hour as objects, not its
whole school day, and a replay (a day of events in seconds) the hours
of event time one flush interval runs through and one more, where a
second's patience alone kept about a third of a day.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from sys import intern
from time import monotonic
from typing import Any, Final, Generic, TypeVar

import msgspec
import pyarrow as pa
from msgspec import Struct

from writech.events import Event, HomeworkSubmit, StrokeOrder, StrokeRaw, WritingQuality
from writech.frozen import Cooling
from writech.schema import ClassMinuteRow, StudentMinuteRow

K = TypeVar("K")
V = TypeVar("V")

# Sums of scores are integers in units of 2**-UNITS (finer where a value
# needs it): every double of at least 2**-10 is an exact multiple of 2**-62.
UNITS: Final = 62
_SCALE: Final = 2.0**UNITS


# Encoded as arrays (`array_like`): a window's frozen bytes name no fields.
class Window(Struct, gc=False, array_like=True):
    """The totals of one window: what its row shows, as exact integers."""

    events: int = 0
    strokes: int = 0
    homework: int = 0
    orders: int = 0
    order_sum: int = 0  # in units of 2**-units, as every sum of scores
    qualities: int = 0
    quality_sum: int = 0
    units: int = UNITS
    # by character practised (stroke order): attempts, and the sum of scores
    attempts: dict[str, int] | None = None
    score_sums: dict[str, int] | None = None
    # the school of the latest event naming one, by (time, event id)
    school_time: int = -1
    school_event: str = ""
    school_id: str = ""


class StudentWindow(Window, gc=False, array_like=True):
    """A student's window, with the class of its latest event naming one, and the
    classes it was written for (one id, or a set of several)."""

    class_time: int = -1
    class_event: str = ""
    class_id: str = ""
    classes: str | set[str] = ""


class ClassWindow(Window, gc=False, array_like=True):
    """A class's window, with the students active in it."""

    active: int = 0


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


def _widen(window: Window, units: int) -> None:
    """Finer units for every sum of `window` (characters included), all exact."""
    shift = units - window.units
    window.order_sum <<= shift
    window.quality_sum <<= shift
    if window.score_sums:
        window.score_sums = {name: total << shift for name, total in window.score_sums.items()}
    window.units = units


def _scaled(window: Window, value: float) -> int:
    """`value` exactly in the units of `window` (widened if `value` needs finer ones)."""
    scaled = value * _SCALE
    if scaled.is_integer() and window.units == UNITS:
        return int(scaled)
    numerator, denominator = value.as_integer_ratio()
    needed = denominator.bit_length() - 1  # value == numerator * 2**-needed
    if needed > window.units:
        _widen(window, needed)
    return numerator << (window.units - needed)


def _count(window: Window, kind: int, value: Any, character: str) -> None:
    """Fold one event, as its kind and value, into a window's totals."""
    window.events += 1
    if kind == STROKES_KIND:
        window.strokes += value
    elif kind == ORDER_KIND:
        scaled = _scaled(window, value)
        window.orders += 1
        window.order_sum += scaled
        attempts, sums = window.attempts, window.score_sums
        if attempts is None or sums is None:
            window.attempts, window.score_sums = {character: 1}, {character: scaled}
        else:
            attempts[character] = attempts.get(character, 0) + 1
            sums[character] = sums.get(character, 0) + scaled
    elif kind == QUALITY_KIND:
        scaled = _scaled(window, value)
        window.qualities += 1
        window.quality_sum += scaled
    elif kind == HOMEWORK_KIND:
        window.homework += 1


def _mean(total: int, count: int, units: int) -> float:
    # int / int is correctly rounded: the true mean to the last bit
    return total / (count << units) if count else 0.0


# The character columns of a window without stroke-order practice (most of
# them): one shared empty tuple, no three new lists per row.
_NO_CHARACTERS: Final[tuple[()]] = ()


def _row(key: tuple[Any, ...], window: Window) -> tuple[Any, ...]:
    """`key` (the row's first columns), then `events` to `version`, in column order."""
    units, events, qualities = window.units, window.events, window.qualities
    quality = window.quality_sum / (qualities << units) if qualities else 0.0
    attempts, sums = window.attempts, window.score_sums
    if attempts is None or sums is None:
        return (
            *key, events, window.strokes, 0, 0.0, qualities, quality,
            window.homework, _NO_CHARACTERS, _NO_CHARACTERS, _NO_CHARACTERS, events,
        )  # fmt: skip
    names = sorted(attempts)
    return (
        *key,
        events,
        window.strokes,
        window.orders,
        _mean(window.order_sum, window.orders, units),
        qualities,
        quality,
        window.homework,
        names,
        [attempts[name] for name in names],
        [_mean(sums[name], attempts[name], units) for name in names],
        events,
    )


def _first_time_for(window: StudentWindow, class_id: str) -> int:
    """Whether the student writes for `class_id` for the first time in this window (noting it)."""
    classes = window.classes
    if classes == class_id:
        return 0
    if isinstance(classes, set):
        if class_id in classes:
            return 0
        classes.add(class_id)
    else:
        window.classes = {classes, class_id} if classes else class_id
    return 1


# Windows are kept by the hour they start in (its number: start // HOUR).
HOUR: Final = 3600
# An hour's windows by start: a student's, by student id; or a class's window.
# JSON, since sums of scores outgrow msgpack's 64-bit integers; then zstd.
_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(dict[int, dict[str, StudentWindow] | ClassWindow])
_ZSTD: Final = pa.Codec("zstd", compression_level=1)
_ZSTD_TAG: Final = b"Z"  # then the JSON's size (8 bytes, little-endian), then its zstd frame


class _Windows(Cooling, Generic[K, V]):
    """The windows starting in one hour: encoded once until one of them changes."""

    __slots__ = ("windows",)

    def __init__(self) -> None:
        super().__init__()
        self.windows: dict[K, V] = {}

    def state(self) -> dict[K, V]:
        return self.windows

    def restore(self, state: dict[K, V]) -> None:
        if any(isinstance(window, list) for window in state.values()):
            state = _from_slot_lists(state)
            self.thaw()  # its next snapshot is in this release's form
        self.windows = state
        self.rest()

    def dumps(self) -> bytes:
        encoded = _ENCODER.encode(self.windows)
        compressed: bytes = _ZSTD.compress(encoded, asbytes=True)
        return _ZSTD_TAG + len(encoded).to_bytes(8, "little") + compressed

    @classmethod
    def loads(cls, frozen: bytes) -> Any:
        if frozen[:1] != _ZSTD_TAG:  # a pickle: snapshots made up to commit 5088478 hold one
            return pickle.loads(frozen)
        size = int.from_bytes(frozen[1:9], "little")
        encoded = _ZSTD.decompress(memoryview(frozen)[9:], decompressed_size=size, asbytes=True)
        return _shared(_DECODER.decode(encoded))


def _shared(windows: dict[int, Any]) -> dict[int, Any]:
    """Decoded windows with one string per id, as the windows the decoder filled keep them."""
    for start, found in windows.items():
        if isinstance(found, ClassWindow):
            found.school_id = intern(found.school_id)
            continue
        for window in found.values():
            window.school_id, window.class_id = intern(window.school_id), intern(window.class_id)
            classes = window.classes
            window.classes = (
                {intern(name) for name in classes} if isinstance(classes, set) else intern(classes)
            )
        windows[start] = {intern(student_id): window for student_id, window in found.items()}
    return windows


def _open_hour(
    hours: dict[int, _Windows[K, V]], cold: dict[int, bytes], waited: dict[int, float], number: int
) -> _Windows[K, V]:
    """Hour `number`, live: as it was kept cold (then twice as patient as it was), or new."""
    frozen = cold.pop(number, None)
    if frozen is None:
        hour: _Windows[K, V] = _Windows()
    else:
        hour = _Windows.unfrozen(frozen)
        hour.brought_back(waited.pop(number, hour.patience))
    hours[number] = hour
    return hour


def _settle_hours(
    hours: dict[int, _Windows[Any, Any]],
    cold: dict[int, bytes],
    waited: dict[int, float],
    final_before: int,
    newest: int,
    now: float,
) -> None:
    """After a flush at `now`: the hours all of whose windows are final (they ended by
    `final_before`, the watermark less the window's length) leave, cold or not; hours
    idle by `Cooling`'s rule go cold, those that ended an hour before `newest` (the
    newest event time or window start) counting as left behind."""
    for held in (hours, cold, waited):
        for number in [number for number in held if (number + 1) * HOUR <= final_before]:
            del held[number]
    for number, hour in list(hours.items()):
        if hour.idle(now, (number + 2) * HOUR <= newest):
            cold[number] = hour.freeze()
            waited[number] = hour.patience
            del hours[number]


def _live(hours: dict[int, _Windows[K, V]], cold: dict[int, bytes]) -> Iterator[dict[K, V]]:
    """Every hour's windows, the cold hours' decoded (not kept live)."""
    for hour in hours.values():
        yield hour.windows
    for frozen in cold.values():
        yield _Windows.loads(frozen)


def _by_hour(state: dict[str, Any]) -> dict[str, Any]:
    """An owner's state as snapshots made up to commit eade4c0 hold it, by the hour.

    There windows were kept by the UTC day they start on (`days`, `cold`,
    `waited`): each day's windows are split by hour, the live ones live and
    the cold ones encoded again, so that a resume holds no more as objects
    than the snapshot did.
    """
    days, cold_days = state.pop("days"), state.pop("cold", {})  # `cold` since 5088478
    state.pop("waited", None)  # since 5dfdd08
    hours: dict[int, _Windows[Any, Any]] = {}
    cold: dict[int, bytes] = {}
    for day in days.values():
        hours.update(_split(day.windows))
    for frozen in cold_days.values():
        cold.update(
            (number, hour.freeze()) for number, hour in _split(_Windows.loads(frozen)).items()
        )
    return state | {"hours": hours, "cold": cold, "waited": {}}


def _split(windows: dict[int, Any]) -> dict[int, _Windows[Any, Any]]:
    hours: dict[int, _Windows[Any, Any]] = {}
    for start, found in windows.items():
        hour = hours.get(start // HOUR)
        if hour is None:
            hour = hours[start // HOUR] = _Windows()
        hour.windows[start] = found
    return hours


# The totals a window's first slots held, in their order.
_TOTALS: Final = Window.__struct_fields__[:8]


def _from_slot_lists(state: dict[Any, Any]) -> dict[Any, Any]:
    """A day's windows as snapshots made up to commit 7d6b404 hold them, in this release's form.

    There a window was a list of slots, keyed by (student_id, start) or by
    start: the totals `events` to `units` in `Window`'s order; the
    characters as {character: [attempts, sum]} or None; the school's
    (time, event id, id); then, in a student's window, the class's
    (time, event id, id) and the classes written for, in a class's window
    the students active. Main carried that form, so a resume must read it.
    """
    converted: dict[Any, Any] = {}
    for key, slots in state.items():
        characters = slots[8] or {}
        common: dict[str, Any] = {
            **dict(zip(_TOTALS, slots[:8], strict=True)),
            "attempts": {name: totals[0] for name, totals in characters.items()} or None,
            "score_sums": {name: totals[1] for name, totals in characters.items()} or None,
            "school_time": slots[9],
            "school_event": slots[10],
            "school_id": intern(slots[11]),
        }
        if isinstance(key, tuple):
            student_id, start = key
            classes = slots[15]
            converted.setdefault(start, {})[intern(student_id)] = StudentWindow(
                **common,
                class_time=slots[12],
                class_event=slots[13],
                class_id=intern(slots[14]),
                classes={intern(name) for name in classes}
                if isinstance(classes, set)
                else intern(classes),
            )
        else:
            converted[key] = ClassWindow(**common, active=slots[12])
    return converted


def _note_school(window: Window, time_us: int, event_id: str, school_id: str) -> None:
    """Keep `school_id` if it comes from a later event (by time, then id) than the one kept."""
    if time_us > window.school_time or (
        time_us == window.school_time and event_id > window.school_event
    ):
        window.school_time, window.school_event, window.school_id = time_us, event_id, school_id


class _ByHour:
    """Base of the windows' owners, which keep them by the hour (`hours`, `cold`, `waited`),
    and the windows changed since the last flush by key (`dirty`), so that a flush
    needs no lookups."""

    dirty: Mapping[Any, Window]

    def __getstate__(self) -> dict[str, Any]:
        # The changed windows by key alone, as snapshots have always held them:
        # the windows themselves are in their hours' bytes, and a copy here
        # would come back apart from the window later events change.
        return self.__dict__ | {"dirty": set(self.dirty)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # snapshots made up to commit eade4c0 keep windows by the day
        self.__dict__.update(_by_hour(state) if "days" in state else state)
        # a changed window's hour is live: hours go cold only at a flush
        self.dirty = {key: self._window(key) for key in self.dirty}

    def _window(self, key: Any) -> Window:
        """The live window changed since the last flush under `key`."""
        raise NotImplementedError


class StudentWindows(_ByHour):
    """The windows of one shard's students, and the watermark that finalises them.

    Windows are kept by the hour they start in, so that a snapshot encodes
    only the hours that changed, idle hours are kept as bytes (`cold`) and
    final windows leave an hour at a time; in an hour, by start, then by
    student.
    Nested, a window costs no key tuple, and its student's id is one shared
    string (the decoder shares ids), not one per window.
    """

    def __init__(self, seconds: int, lateness: int) -> None:
        self.seconds = seconds
        self.lateness = lateness
        self.newest = 0  # newest event time seen, in seconds
        self.hours: dict[int, _Windows[int, dict[str, StudentWindow]]] = {}  # by start // HOUR
        self.cold: dict[int, bytes] = {}  # idle hours, frozen
        self.waited: dict[int, float] = {}  # the patience each cold hour had
        self.dirty: dict[tuple[str, int], StudentWindow] = {}  # by (student_id, start)
        self.too_late = 0  # events whose window was final already

    def apply(self, events: Iterable[Event]) -> dict[str, list[Contribution]]:
        """Count `events` (each counted once already) into their windows; by class, their
        contributions to the classes' windows."""
        contributions: dict[str, list[Contribution]] = {}
        seconds, hours, dirty = self.seconds, self.hours, self.dirty
        for event in events:
            time_us = event.time_us
            instant = time_us // 1_000_000
            if instant > self.newest:
                self.newest = instant
            start = instant - instant % seconds
            if start + seconds <= self.newest - self.lateness:
                self.too_late += 1
                continue
            hour = hours.get(start // HOUR)
            if hour is None:
                hour = _open_hour(hours, self.cold, self.waited, start // HOUR)
            hour.frozen = None  # changed: its next snapshot encodes it again
            minute = hour.windows.get(start)
            if minute is None:
                minute = hour.windows[start] = {}
            student_id = event.student_id
            window = minute.get(student_id)
            if window is None:
                window = minute[student_id] = StudentWindow()
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
            dirty[(student_id, start)] = window
            # the decoder's shared strings: windows keep them, one per id
            class_id, school_id = event.class_id, event.school_id
            event_id = event.event_id
            # the latest event naming a school or class, inline: it is the same one
            # event after event, so the comparison is all that usually runs
            if school_id and (
                time_us > window.school_time
                or (time_us == window.school_time and event_id > window.school_event)
            ):
                window.school_time, window.school_event, window.school_id = (
                    time_us, event_id, school_id,
                )  # fmt: skip
            if not class_id:
                continue
            if time_us > window.class_time or (
                time_us == window.class_time and event_id > window.class_event
            ):
                window.class_time, window.class_event, window.class_id = (
                    time_us, event_id, class_id,
                )  # fmt: skip
            new = 0 if window.classes == class_id else _first_time_for(window, class_id)
            contribution = (start, new, kind, value, character, school_id, time_us, event_id)
            found = contributions.get(class_id)
            if found is None:
                contributions[class_id] = [contribution]
            else:
                found.append(contribution)
        return contributions

    def flush(self) -> list[StudentMinuteRow]:
        """Rows of the windows changed since the last flush; hours of final windows leave."""
        seconds, hours, now = self.seconds, self.hours, monotonic()
        rows: list[StudentMinuteRow] = []
        for (student_id, start), window in self.dirty.items():
            hours[start // HOUR].changed = now
            columns = (student_id, window.class_id, window.school_id, start, seconds)
            rows.append(_row(columns, window))
        self.dirty.clear()
        final_before = self.newest - self.lateness - seconds
        _settle_hours(hours, self.cold, self.waited, final_before, self.newest, now)
        return rows

    def _window(self, key: tuple[str, int]) -> StudentWindow:
        student_id, start = key
        return self.hours[start // HOUR].windows[start][student_id]

    def window_keys(self) -> Iterator[tuple[str, int]]:
        """(student_id, window start) of every window in the state."""
        for windows in _live(self.hours, self.cold):
            for start, minute in windows.items():
                for student_id in minute:
                    yield student_id, start

    def forget(self, forgotten: Callable[[str], bool]) -> None:
        """Drop every window of the students `forgotten` names (deletion on request,
        `writech forget`), decoding each cold hour once."""
        for hour in self.hours.values():
            self._forget_in(hour, forgotten)
        for number, frozen in self.cold.items():  # one at a time, and cold again
            hour = _Windows.unfrozen(frozen)
            if self._forget_in(hour, forgotten):
                self.cold[number] = hour.freeze()

    def _forget_in(
        self, hour: _Windows[int, dict[str, StudentWindow]], forgotten: Callable[[str], bool]
    ) -> bool:
        """Drop the windows of `forgotten` students from `hour`; whether it held any."""
        held = False
        for start, minute in hour.windows.items():
            for student_id in [student_id for student_id in minute if forgotten(student_id)]:
                del minute[student_id]
                self.dirty.pop((student_id, start), None)
                held = True
        if held:
            hour.thaw()
        return held


class ClassWindows(_ByHour):
    """The windows of one class: the `class_windows` step's state for one class key."""

    def __init__(self, seconds: int, lateness: int) -> None:
        self.class_id = ""  # the step's key, learnt from the first delta
        self.seconds = seconds
        self.lateness = lateness
        self.newest = 0  # newest window start seen
        self.hours: dict[int, _Windows[int, ClassWindow]] = {}  # by start // HOUR
        self.cold: dict[int, bytes] = {}  # idle hours, frozen
        self.waited: dict[int, float] = {}  # the patience each cold hour had
        self.dirty: dict[int, ClassWindow] = {}  # by start
        self.too_late = 0  # deltas for windows final already here

    def apply(self, class_id: str, contributions: Iterable[Contribution]) -> None:
        self.class_id = class_id  # the step's key
        hours, seconds = self.hours, self.seconds
        for start, new, kind, value, character, school_id, time_us, event_id in contributions:
            if start > self.newest:
                self.newest = start
            hour = hours.get(start // HOUR)
            if hour is None:
                hour = _open_hour(hours, self.cold, self.waited, start // HOUR)
            window = hour.windows.get(start)
            if window is None:
                if start + seconds <= self.newest - self.lateness:
                    self.too_late += 1  # a partial row would not replace the final one
                    continue
                window = hour.windows[start] = ClassWindow()
            hour.frozen = None
            _count(window, kind, value, character)
            window.active += new
            if school_id:
                _note_school(window, time_us, event_id, school_id)
            self.dirty[start] = window

    def _window(self, key: int) -> ClassWindow:
        return self.hours[key // HOUR].windows[key]

    def window_starts(self) -> Iterator[int]:
        """The start of every window of this class in the state."""
        for windows in _live(self.hours, self.cold):
            yield from windows

    def flush(self) -> list[ClassMinuteRow]:
        rows: list[ClassMinuteRow] = []
        now = monotonic()
        for start, window in self.dirty.items():
            self.hours[start // HOUR].changed = now
            key = (self.class_id, window.school_id, start, self.seconds, window.active)
            rows.append(_row(key, window))
        self.dirty.clear()
        final_before = self.newest - self.lateness - self.seconds
        _settle_hours(self.hours, self.cold, self.waited, final_before, self.newest, now)
        return rows
