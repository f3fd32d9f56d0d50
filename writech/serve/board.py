"""The live class board: what it shows, computed from the minute tables' rows.

Pure functions only; `writech.serve.queries` reads the rows, the app
serves the result as JSON and the page draws it.

- The lesson so far: the class's windows of one local day (today, unless
  another day is asked for), from its first window to now.
- Now: the wall clock on a live board (today's); for a past day, the end
  of the class's last window that day, so the board shows how it ended.
- Writing: a student with an event in the last `recent_minutes` minutes
  (a window overlapping them); silent: seen today but not since; not
  today: on the class's list from its daily statistics, with no event today.
- The characters right now: those practised (stroke order) in the last
  `recent_minutes` minutes, lowest mean score first, each with who wrote
  it, their attempts and mean score.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

from msgspec import Struct

State = Literal["writing", "silent", "absent"]
STATES: Final[tuple[State, ...]] = ("writing", "silent", "absent")
CHARACTERS_SHOWN: Final = 8
# Steps the chart's time axis may be labelled at, in minutes.
TICK_STEPS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 180, 240)
MAX_TICKS: Final = 8

# -- rows read from the minute tables ----------------------------------------


class ClassWindow(Struct, frozen=True):
    """One window of `class_minute_stats`: its start in seconds since the epoch, its length."""

    start: int
    seconds: int
    active_students: int
    events: int
    strokes: int
    stroke_order_count: int
    stroke_order_avg: float


class StudentDay(Struct, frozen=True):
    """One student's windows of the day in the class, summed (`student_minute_stats`).

    Named apart from the table's columns: in ClickHouse an alias shadows
    the column of the same name in every other expression of the query.
    """

    student_id: str
    last_window: int  # start of the student's latest window
    window_length: int  # seconds
    events_today: int
    checks_today: int  # stroke-order checks
    accuracy_today: float | None  # their mean score; None without any
    recent_events: int  # in the windows of the last `recent_minutes` minutes
    recent_strokes: int


class CharacterPractice(Struct, frozen=True):
    """The characters one student practised in one recent window (parallel arrays)."""

    student_id: str
    characters: list[str]
    character_attempts: list[int]
    character_scores: list[float]


# -- what the board shows ------------------------------------------------------


class Student(Struct, kw_only=True):
    student_id: str
    name: str | None
    state: State
    last_seen: str | None  # local HH:MM of the end of their latest window
    silent_minutes: int | None  # since then, for the silent
    recent_strokes: int
    events: int  # today
    stroke_order_avg: float | None  # today


class Minute(Struct, kw_only=True):
    start: int  # seconds since the epoch
    label: str  # local HH:MM
    active_students: int
    events: int
    strokes: int
    stroke_order_count: int
    stroke_order_avg: float | None  # None: no stroke-order check in the window


class Tick(Struct, kw_only=True):
    at: int
    label: str


class Chart(Struct, kw_only=True):
    start: int
    end: int
    window_seconds: int
    minutes: list[Minute]
    ticks: list[Tick]


class Writer(Struct, kw_only=True):
    student_id: str
    name: str | None
    attempts: int
    mean_score: float


class Character(Struct, kw_only=True):
    character: str
    attempts: int
    mean_score: float
    writers: list[Writer]  # lowest mean score first


class Board(Struct, kw_only=True):
    class_id: str
    class_name: str | None
    school_id: str
    day: date
    timezone: str
    live: bool  # today's board, following the wall clock
    as_of: int  # the board's "now", seconds since the epoch
    as_of_label: str  # local HH:MM:SS
    recent_minutes: int
    refresh_seconds: float
    counts: dict[State, int]
    students: list[Student]  # writing, silent, then not today; by name within each
    chart: Chart
    characters: list[Character]  # lowest mean score first
    weak_score: float  # a character's mean below this needs practice (the reports' rule)


# -- the rules ----------------------------------------------------------------


def day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """The local day as [start, end) in seconds since the epoch (23 to 25 hours long)."""
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return int(start.timestamp()), int(end.timestamp())


def local_day(instant: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(instant, zone).date()


def clock(instant: int, zone: ZoneInfo, seconds: bool = False) -> str:
    """Local time of day, HH:MM (or HH:MM:SS)."""
    return datetime.fromtimestamp(instant, zone).strftime("%H:%M:%S" if seconds else "%H:%M")


class BoardTime(NamedTuple):
    as_of: int  # the board's "now", seconds since the epoch
    live: bool  # today's board: "now" is the wall clock


def board_time(now: int, day: date, zone: ZoneInfo, windows: Sequence[ClassWindow]) -> BoardTime:
    """The wall clock on today's board; for another day, the end of its last window."""
    start, end = day_bounds(day, zone)
    if start <= now < end:
        return BoardTime(now, live=True)
    if windows:
        last = max(windows, key=lambda w: w.start)
        return BoardTime(last.start + last.seconds, live=False)
    return BoardTime(min(now, end), live=False)


def recent_edge(as_of: int, recent_minutes: int) -> int:
    """A window is recent if it ends after this instant (so it overlaps the last minutes)."""
    return as_of - recent_minutes * 60


def student_state(row: StudentDay | None, as_of: int, recent_minutes: int) -> State:
    if row is None:
        return "absent"
    ends = row.last_window + row.window_length
    return "writing" if ends > recent_edge(as_of, recent_minutes) else "silent"


def students(
    roster: Iterable[str],
    today: Sequence[StudentDay],
    as_of: int,
    recent_minutes: int,
    zone: ZoneInfo,
    names: Mapping[str, str],
) -> list[Student]:
    """Every student of the class (on its list, or seen today), with their state."""
    seen = {row.student_id: row for row in today}
    shown = []
    for student_id in set(roster) | set(seen):
        row = seen.get(student_id)
        state = student_state(row, as_of, recent_minutes)
        ends = row.last_window + row.window_length if row else None
        shown.append(
            Student(
                student_id=student_id,
                name=names.get(student_id),
                state=state,
                last_seen=clock(ends, zone) if ends is not None else None,
                silent_minutes=max(0, (as_of - ends) // 60)
                if state == "silent" and ends is not None
                else None,
                recent_strokes=row.recent_strokes if row else 0,
                events=row.events_today if row else 0,
                stroke_order_avg=_rounded(row.accuracy_today) if row else None,
            )
        )
    # fixed places: a card moves only when its student's state changes
    order = {state: index for index, state in enumerate(STATES)}
    shown.sort(key=lambda s: (order[s.state], s.name or s.student_id, s.student_id))
    return shown


def time_ticks(start: int, end: int, zone: ZoneInfo, most: int = MAX_TICKS) -> list[Tick]:
    """Labels for a time axis from `start` to `end`: round local times, at most `most`."""
    if end <= start:
        return []
    minutes = (end - start) / 60
    step = next((s for s in TICK_STEPS if minutes / s <= most), TICK_STEPS[-1])
    origin = datetime.fromtimestamp(start, zone)
    midnight = int(datetime.combine(origin.date(), time(), zone).timestamp())
    # the first multiple of the step, counted in local minutes since midnight
    first = midnight + -(-(start - midnight) // (step * 60)) * step * 60
    return [Tick(at=at, label=clock(at, zone)) for at in range(first, end + 1, step * 60)][:most]


def chart(
    windows: Sequence[ClassWindow], as_of: int, zone: ZoneInfo, default_seconds: int = 60
) -> Chart:
    """Strokes and stroke-order accuracy per window, from the day's first window to now."""
    ordered = sorted(windows, key=lambda w: w.start)
    seconds = ordered[0].seconds if ordered else default_seconds
    start = ordered[0].start if ordered else as_of - 30 * 60
    end = max([as_of, *(w.start + w.seconds for w in ordered)])
    return Chart(
        start=start,
        end=end,
        window_seconds=seconds,
        minutes=[
            Minute(
                start=w.start,
                label=clock(w.start, zone),
                active_students=w.active_students,
                events=w.events,
                strokes=w.strokes,
                stroke_order_count=w.stroke_order_count,
                stroke_order_avg=_rounded(w.stroke_order_avg) if w.stroke_order_count else None,
            )
            for w in ordered
        ],
        ticks=time_ticks(start, end, zone),
    )


def lowest_characters(
    practice: Iterable[CharacterPractice],
    names: Mapping[str, str],
    limit: int = CHARACTERS_SHOWN,
) -> list[Character]:
    """The characters practised, lowest mean score first, with who wrote them."""
    # character -> student -> (attempts, score × attempts) of each row
    practised: defaultdict[str, defaultdict[str, list[tuple[int, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in practice:
        for character, attempts, score in zip(
            row.characters, row.character_attempts, row.character_scores, strict=True
        ):
            if attempts > 0:
                practised[character][row.student_id].append((attempts, score * attempts))
    found = []
    for character, by_student in practised.items():
        writers = []
        for student_id, rows in by_student.items():
            attempts, mean = _attempts_and_mean(rows)
            writers.append(
                Writer(
                    student_id=student_id,
                    name=names.get(student_id),
                    attempts=attempts,
                    mean_score=round(mean, 1),
                )
            )
        writers.sort(key=lambda w: (w.mean_score, -w.attempts, w.student_id))
        attempts, mean = _attempts_and_mean([pair for rows in by_student.values() for pair in rows])
        found.append(
            Character(
                character=character, attempts=attempts, mean_score=round(mean, 1), writers=writers
            )
        )
    found.sort(key=lambda c: (c.mean_score, -c.attempts, c.character))
    return found[:limit]


def _attempts_and_mean(practice: Sequence[tuple[int, float]]) -> tuple[int, float]:
    """All the attempts, and their mean score, from (attempts, score × attempts) pairs.

    math.fsum rounds the sum once, correctly, whatever the pairs' order: a
    running sum could show a mean such as 16.45 as 16.4 or 16.5 depending
    on the order the rows were read in.
    """
    attempts = sum(count for count, _ in practice)
    return attempts, math.fsum(product for _, product in practice) / attempts


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def assemble(
    *,
    class_id: str,
    school_id: str,
    day: date,
    zone: ZoneInfo,
    when: BoardTime,
    recent_minutes: int,
    refresh_seconds: float,
    windows: Sequence[ClassWindow],
    today: Sequence[StudentDay],
    roster: Iterable[str],
    practice: Iterable[CharacterPractice],
    names: Mapping[str, str],
    class_name: str | None,
    weak_score: float,
) -> Board:
    """The board of one class and day, from the rows read for it."""
    as_of = when.as_of
    shown = students(roster, today, as_of, recent_minutes, zone, names)
    return Board(
        class_id=class_id,
        class_name=class_name,
        school_id=school_id,
        day=day,
        timezone=zone.key,
        live=when.live,
        as_of=as_of,
        as_of_label=clock(as_of, zone, seconds=True),
        recent_minutes=recent_minutes,
        refresh_seconds=refresh_seconds,
        counts={state: sum(s.state == state for s in shown) for state in STATES},
        students=shown,
        chart=chart(windows, as_of, zone),
        characters=lowest_characters(practice, names),
        weak_score=weak_score,
    )
