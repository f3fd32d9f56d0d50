"""Minute windows (the live class board's tables) against an independent computation.

The reference (tests/reference.py) groups the distinct valid events by
(student, minute) and (class, minute) with plain loops; the pipeline's
windows must hold the same totals whatever the order, the batching, the
workers, or a snapshot and resume in between.
"""

from __future__ import annotations

import contextlib
import gzip
import pickle
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference
from tests.cases import message
from tests.helpers import REPO, cooling_clock, read_tables, run_writech
from writech import frozen
from writech import windows as windows_module
from writech.aggregate import Shard
from writech.events import Event, EventDecoder, Invalid
from writech.generate import generate
from writech.privacy import ForgetRequests, forget_in_state, student_hash
from writech.schema import ClassMinuteRow, StudentMinuteRow
from writech.windows import ClassWindows, StudentWindow, StudentWindows, _Windows

decoder = EventDecoder(ZoneInfo("Asia/Shanghai"))
MEASURES = (
    "events", "strokes", "stroke_order_count", "stroke_order_avg", "writing_quality_count",
    "writing_quality_avg", "homework_submitted", "characters", "character_attempts",
    "character_scores", "version",
)  # fmt: skip


def run_windows(
    events: list[Event],
    chunks: int = 1,
    resume_after: int | None = None,
    flushed: Callable[[StudentWindows, dict[str, ClassWindows]], None] = lambda *_: None,
) -> tuple[dict[tuple[str, int], StudentMinuteRow], dict[tuple[str, int], ClassMinuteRow]]:
    """Shard + windows over `events` in `chunks` batches; the final rows by key (highest version).

    `flushed` sees the windows after each batch's flush."""
    shard = Shard()
    students = StudentWindows(60, 10**9)
    classes: dict[str, ClassWindows] = {}
    student_rows: dict[tuple[str, int], StudentMinuteRow] = {}
    class_rows: dict[tuple[str, int], ClassMinuteRow] = {}
    size = max(1, len(events) // chunks)
    for number, start in enumerate(range(0, len(events), size)):
        if resume_after is not None and number == resume_after:
            shard, students = pickle.loads(pickle.dumps((shard, students)))
            classes = pickle.loads(pickle.dumps(classes))
        contributions = students.apply(shard.apply(events[start : start + size]).counted)
        for class_id, found in contributions.items():
            classes.setdefault(class_id, ClassWindows(60, 10**9)).apply(class_id, found)
        for row in students.flush():
            student_rows[(row[0], row[3])] = row
        for windows in classes.values():
            for crow in windows.flush():
                class_rows[(crow[0], crow[2])] = crow
        flushed(students, classes)
    return student_rows, class_rows


def assert_matches(
    rows: dict[tuple[str, int], Any], expected: dict[tuple[str, int], dict[str, Any]], first: int
) -> None:
    assert rows.keys() == expected.keys()
    for key, values in expected.items():
        row = rows[key]
        for offset, name in enumerate(MEASURES):
            value = row[first + offset]
            if name.startswith("character"):  # sequences (an empty tuple where none)
                value = list(value)
            if isinstance(value, float) or name == "character_scores":
                assert value == pytest.approx(values[name], rel=1e-12), (key, name)
            else:
                assert value == values[name], (key, name)


def workload(seed: int, count: int = 3000) -> list[bytes]:
    return list(generate(events=count, students=60, days=2, class_size=15, seed=seed))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(0, 39))
def test_windows_match_the_reference_in_any_order_and_batching(
    seed: int, chunks: int, resume_after: int
) -> None:
    raws = workload(seed)
    expected = reference.expected(raws)
    events = [decoder.decode(raw, now=2e9) for raw in raws if _valid(raw)]
    random.Random(seed).shuffle(events)  # first occurrences change, so do the reference's
    expected = reference.expected([event.raw for event in events])
    students, classes = run_windows(events, chunks, resume_after % chunks if chunks > 1 else None)
    assert_matches(students, expected.student_minutes, 5)
    assert_matches(classes, expected.class_minutes, 5)
    for key, row in classes.items():
        assert row[4] == expected.class_minutes[key]["active_students"], key


def test_idle_hours_kept_as_bytes_come_back_for_late_events_and_change_no_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(frozen, "COOL_AFTER_SECONDS", 0.0)  # cold after one idle flush
    raws = list(generate(events=4000, students=60, days=4, class_size=15, seed=11))
    events = sorted(
        (decoder.decode(raw, now=2e9) for raw in raws if _valid(raw)), key=lambda e: e.time_us
    )
    # every tenth event arrives after all the others: into hours kept cold by then
    arrival = [event for n, event in enumerate(events) if n % 10] + events[::10]
    expected = reference.expected([event.raw for event in arrival])
    cold: list[tuple[int, int]] = []

    def note_cold(students: StudentWindows, classes: dict[str, ClassWindows]) -> None:
        cold.append((len(students.cold), sum(len(found.cold) for found in classes.values())))
        # an hour is live or cold, never both
        assert not students.hours.keys() & students.cold.keys()
        for found in classes.values():
            assert not found.hours.keys() & found.cold.keys()

    students, classes = run_windows(arrival, chunks=60, resume_after=45, flushed=note_cold)
    assert_matches(students, expected.student_minutes, 5)
    assert_matches(classes, expected.class_minutes, 5)
    # the path was taken: hours went cold while the ordered events went on, and
    # the late ones (from chunk 54) brought them back
    assert max(found for found, _ in cold[:54]) >= 2
    assert max(found for _, found in cold[:54]) >= 2
    assert min(found for found, _ in cold[54:]) < max(found for found, _ in cold[:54])


def test_an_hour_goes_cold_after_its_idle_seconds_and_twice_as_many_once_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = cooling_clock(monkeypatch, windows_module, patience=4.0, most=16.0)
    raws = list(generate(events=6000, students=20, days=2, class_size=10, seed=5))
    events = [decoder.decode(raw, now=2e9) for raw in raws if _valid(raw)]

    def hour(event: Event) -> int:
        return event.time_us // 3_600_000_000

    counts = Counter(map(hour, events))
    # two adjacent hours, so that event time never leaves the first one behind
    first_hour = max(
        (n for n in counts if n + 1 in counts), key=lambda n: counts[n] + counts[n + 1]
    )
    second_hour = first_hour + 1
    events = [event for event in events if hour(event) in (first_hour, second_hour)]
    events = list({event.dedup_key: event for event in reversed(events)}.values())  # no repeats
    random.Random(5).shuffle(events)  # out of order: each batch touches both hours
    earlier = [event for event in events[200:] if hour(event) == first_hour]
    later = [event for event in events[200:] if hour(event) == second_hour]
    shard, windows = Shard(), StudentWindows(60, 10**9)
    # the two hours touched in turns, a flush a second apart: both stay objects
    for start in range(0, 200, 20):
        windows.apply(shard.apply(events[start : start + 20]).counted)
        windows.flush()
        clock[0] += 1.0
    assert not windows.cold
    assert windows.hours.keys() == {first_hour, second_hour}
    # From here on the second hour changes every second and the first only when
    # a late event comes: it goes cold after 4 idle seconds, then, each time
    # it was brought back, after twice as many as before, up to 16.
    remaining = iter(earlier)
    for patience in (4, 8, 16, 16):
        for second in range(patience + 1):
            windows.apply(shard.apply(later[:1]).counted)
            later = later[1:]
            windows.flush()
            assert (first_hour in windows.cold) == (second == patience), (patience, second)
            clock[0] += 1.0
        windows.apply(shard.apply([next(remaining)]).counted)  # a late event brings it back
        assert first_hour in windows.hours
        windows.flush()
        clock[0] += 1.0


def test_an_hour_left_behind_by_event_time_goes_cold_at_once_until_an_event_brings_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay or a catch-up runs through hours of event time a second: an hour that
    ended an hour before the newest event goes cold at the next flush, changed or not;
    once a late event has brought it back, its patience rules, as for any hour."""
    clock = cooling_clock(monkeypatch, windows_module, patience=4.0, most=16.0)

    def at(hour: int, minute: int, event_id: str) -> Event:
        stamp = datetime(2026, 9, 2, hour, minute, tzinfo=UTC).isoformat()
        return decoder.decode(message("login_event", {}, timestamp=stamp, event_id=event_id))

    one, two, three = (at(hour, 0, "-").time_us // 3_600_000_000 for hour in (1, 2, 3))
    shard, windows = Shard(), StudentWindows(60, 10**9)
    windows.apply(shard.apply([at(1, 10, "a"), at(2, 30, "b")]).counted)
    windows.flush()
    assert (set(windows.hours), set(windows.cold)) == ({one, two}, set())
    windows.apply(shard.apply([at(1, 50, "c"), at(3, 5, "d")]).counted)
    windows.flush()  # 03:05: hour 1 ended more than an hour ago, hour 2 did not
    assert (set(windows.hours), set(windows.cold)) == ({two, three}, {one})
    windows.apply(shard.apply([at(1, 20, "e")]).counted)  # late: brought back
    assert len(windows.flush()) == 1
    assert one in windows.hours, "back for late events: its patience (8 s) rules now"
    clock[0] += 7.5
    windows.flush()
    assert one in windows.hours
    clock[0] += 1.0
    windows.flush()
    assert one in windows.cold


def test_windows_ending_after_their_hour_stay_until_final() -> None:
    """An hour leaves the state once its last window has ended, not when the hour has."""

    def at(hour: int, minute: int, event_id: str) -> Event:
        stamp = datetime(2026, 9, 2, hour, minute, tzinfo=UTC).isoformat()
        raw = message("stroke_raw", {"stroke_count": 5}, timestamp=stamp, event_id=event_id)
        return decoder.decode(raw)

    # 25-minute windows, 10 minutes late at most: 01:45-02:10 starts in hour 1
    shard, windows = Shard(), StudentWindows(1500, lateness=600)
    for event in (at(1, 55, "a"), at(1, 59, "b"), at(2, 15, "c")):
        windows.apply(shard.apply([event]).counted)
        windows.flush()
    # the watermark (02:05) is past hour 1's end but not its last window's
    windows.apply(shard.apply([at(1, 58, "d")]).counted)
    (row,) = windows.flush()  # still open: rewritten with all three of its events
    assert (row[3] % 86400, row[5]) == (6300, 3)
    assert windows.too_late == 0
    windows.apply(shard.apply([at(2, 40, "e")]).counted)
    windows.flush()  # the watermark at 02:30: final, and the hour has left
    assert 1 not in {number % 24 for number in windows.hours}
    windows.apply(shard.apply([at(1, 57, "f")]).counted)
    assert windows.too_late == 1


def test_the_keys_and_deletion_of_windows_reach_hours_kept_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(frozen, "COOL_AFTER_SECONDS", 0.0)
    raws = list(generate(events=1500, students=20, days=3, class_size=10, seed=3))
    events = sorted(
        (decoder.decode(raw, now=2e9) for raw in raws if _valid(raw)), key=lambda e: e.time_us
    )
    shard, windows, classes = Shard(), StudentWindows(60, 10**9), ClassWindows(60, 10**9)
    class_id = events[0].class_id
    for start in range(0, len(events), 100):
        contributions = windows.apply(shard.apply(events[start : start + 100]).counted)
        classes.apply(class_id, contributions.get(class_id, []))
        windows.flush()
        classes.flush()
    assert windows.cold  # the first hours went cold
    assert classes.cold
    every = {(event.student_id, event.time_us // 60_000_000 * 60) for event in events}
    assert set(windows.window_keys()) == every
    starts = {e.time_us // 60_000_000 * 60 for e in events if e.class_id == class_id}
    assert sorted(classes.window_starts()) == sorted(starts)
    forgotten = events[0].student_id  # a student of the first hour, kept cold
    cold = set(windows.cold)
    decoded: list[bytes] = []
    loads = _Windows.loads

    def counted(frozen: bytes) -> Any:
        decoded.append(frozen)
        return loads(frozen)

    requests = ForgetRequests({"r": student_hash(forgotten)}, {student_hash(forgotten): 1.0})
    with monkeypatch.context() as patched:
        patched.setattr(_Windows, "loads", counted)
        forget_in_state(shard, windows, frozenset(), requests)
    assert len(decoded) == len(cold)  # each cold hour decoded once (it was twice)
    assert set(windows.cold) == cold  # dropped from the hours' bytes, not brought back whole
    assert forgotten not in shard.students()
    windows = pickle.loads(pickle.dumps(windows))
    assert {key for key in windows.window_keys() if key[0] == forgotten} == set()
    assert set(windows.window_keys()) == {key for key in every if key[0] != forgotten}


def _valid(raw: bytes) -> bool:
    try:
        decoder.decode(raw, now=2e9)
    except Exception:
        return False
    return True


def test_a_late_event_corrects_its_window_within_the_lateness_and_not_after() -> None:
    def at(minute: int, second: int, event_id: str) -> bytes:
        stamp = datetime(2026, 9, 2, 1, minute, second, tzinfo=UTC).isoformat()
        return message("stroke_raw", {"stroke_count": 5}, timestamp=stamp, event_id=event_id)

    shard, windows = Shard(), StudentWindows(60, lateness=300)
    first = [decoder.decode(raw) for raw in (at(0, 10, "a"), at(3, 0, "b"))]
    windows.apply(shard.apply(first).counted)
    windows.flush()
    late = windows.apply(shard.apply([decoder.decode(at(0, 50, "c"))]).counted)
    (row,) = windows.flush()  # within 5 minutes: minute 0 is rewritten with both events
    assert (row[3] % 3600, row[5], row[6], row[-1]) == (0, 2, 10, 2)
    assert [start % 3600 for found in late.values() for start, *_ in found] == [0]
    windows.apply(shard.apply([decoder.decode(at(20, 0, "d"))]).counted)
    windows.flush()  # the watermark passes minute 0 + 5 min: it is final and leaves the state
    windows.apply(shard.apply([decoder.decode(at(0, 30, "e"))]).counted)
    assert windows.too_late == 1
    assert [row[3] % 3600 for row in windows.flush()] == []


def test_replay_writes_the_windows_of_the_reference(tmp_path: Path) -> None:
    raws = workload(seed=5, count=4000)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(raws) + b"\n")
    run_writech("replay", "-q", str(source), "--data-dir", str(tmp_path / "data"), "-w", "2")
    tables = read_tables(tmp_path / "data")
    expected = reference.expected(raws)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def start(text: str) -> int:
        return int((datetime.fromisoformat(text).replace(tzinfo=UTC) - epoch).total_seconds())

    students = {
        (r["student_id"], start(r["window_start"])): r for r in tables["student_minute_stats"]
    }
    classes = {(r["class_id"], start(r["window_start"])): r for r in tables["class_minute_stats"]}
    assert students.keys() == expected.student_minutes.keys()
    assert classes.keys() == expected.class_minutes.keys()
    for found, wanted in ((students, expected.student_minutes), (classes, expected.class_minutes)):
        for key, values in wanted.items():
            for name, value in values.items():
                if name == "active_students" and found is students:
                    continue
                if name == "characters":
                    assert found[key][name] == value, (key, name)
                else:
                    assert found[key][name] == pytest.approx(value, rel=1e-12), (key, name)


# Snapshots of windows in the forms earlier releases wrote, from lines of
# writech/sample/events.jsonl.gz decoded as `decoder` here does (produced at
# 2e9), invalid ones left out: the first 300 events counted and flushed, the
# next 100 counted, then `pickle.dumps((student_windows, {class_id:
# class_windows}))`; a resume then counts the rest, and the events of the
# lines after. Written by the code of commit 7d6b404, when a window was a
# list of slots; of commit 5088478, when a day of windows was pickled (and
# none was cold); and of commit eade4c0, when windows were kept by the day,
# there with every day cold after the flush (`COOL_AFTER_SECONDS` -1), so
# that the first day is cold in the snapshot and the lines after bring it back.
OLD_SNAPSHOTS = {  # commit: (lines read before the snapshot, lines after)
    "7d6b404": ([(0, 600)], []),
    "5088478": ([(0, 600)], []),
    "eade4c0": ([(0, 300), (4800, 4900)], [(300, 400), (4900, 5000)]),
}


def _windows_of(owner: StudentWindows | ClassWindows) -> dict[int, Any]:
    """Every window an owner holds, live or cold, by start."""
    hours: dict[int, Any] = owner.hours  # of student or of class windows
    return {
        start: found
        for windows in windows_module._live(hours, owner.cold)
        for start, found in windows.items()
    }


@pytest.mark.parametrize("commit", OLD_SNAPSHOTS)
def test_a_snapshot_of_windows_in_an_earlier_form_resumes_as_if_never_stopped(
    commit: str,
) -> None:
    with gzip.open(REPO / "writech" / "sample" / "events.jsonl.gz") as sample:
        lines = sample.read().splitlines()

    def decoded(parts: list[tuple[int, int]]) -> list[Event]:
        events = []
        for start, end in parts:
            for line in lines[start:end]:
                with contextlib.suppress(Invalid):
                    events.append(decoder.decode(line, now=2e9))
        return events

    before, after = OLD_SNAPSHOTS[commit]
    events = decoded(before)
    first, second, rest = events[:300], events[300:400], events[400:] + decoded(after)
    shard = Shard()  # the daily state's form did not change: one shard counts for both
    students = StudentWindows(60, 10**9)
    classes: dict[str, ClassWindows] = {}

    def feed(part: list[Event], *runs: tuple[StudentWindows, dict[str, ClassWindows]]) -> None:
        counted = shard.apply(part).counted
        for windows, by_class in runs:
            for class_id, found in windows.apply(counted).items():
                by_class.setdefault(class_id, ClassWindows(60, 10**9)).apply(class_id, found)

    feed(first, (students, classes))
    students.flush()
    for windows in classes.values():
        windows.flush()
    feed(second, (students, classes))

    snapshot = Path(__file__).parent / "data" / f"windows-{commit}.pickle"
    old_students, old_classes = pickle.loads(snapshot.read_bytes())
    # converted on loading: the same windows, changed since the same flush
    assert _windows_of(old_students) == _windows_of(students)
    assert old_students.dirty == students.dirty
    assert old_classes.keys() == classes.keys()
    for class_id, class_windows in classes.items():
        assert _windows_of(old_classes[class_id]) == _windows_of(class_windows)
        assert old_classes[class_id].dirty == class_windows.dirty
    # by the hour now; the hours of a day that was cold are cold
    for owner in (old_students, *old_classes.values()):
        assert not hasattr(owner, "days")
        for number, hour in owner.hours.items():
            assert {start // 3600 for start in hour.windows} == {number}
    if commit == "eade4c0":
        days_brought_back = {event.time_us // 86_400_000_000 for event in second}
        cold_hours = {
            event.time_us // 3_600_000_000
            for event in first
            if event.time_us // 86_400_000_000 not in days_brought_back
        }
        assert cold_hours
        assert old_students.cold.keys() == cold_hours

    # its next snapshot is in this release's form, and the run goes on alike
    old_students, old_classes = pickle.loads(pickle.dumps((old_students, old_classes)))
    assert all(
        isinstance(window, StudentWindow)
        for hour in old_students.hours.values()
        for minute in hour.windows.values()
        for window in minute.values()
    )
    feed(rest, (students, classes), (old_students, old_classes))
    assert sorted(old_students.flush()) == sorted(students.flush())
    for class_id, windows in classes.items():
        assert sorted(old_classes[class_id].flush()) == sorted(windows.flush())


def test_a_snapshot_holds_changed_windows_by_key_and_a_resume_links_them_to_their_hours() -> None:
    raws = list(generate(events=800, students=20, days=1, class_size=10, seed=7))
    events = [decoder.decode(raw, now=2e9) for raw in raws if _valid(raw)]
    students, classes = StudentWindows(60, 10**9), ClassWindows(60, 10**9)
    class_id, found = max(students.apply(Shard().apply(events).counted).items())
    classes.apply(class_id, found)
    for owner in (students, classes):
        assert owner.dirty
        assert isinstance(owner.__getstate__()["dirty"], set)  # keys: the windows are in hours
        resumed = pickle.loads(pickle.dumps(owner))
        assert resumed.dirty == owner.dirty
        for key, window in resumed.dirty.items():  # the hour's own window, not a copy
            assert window is resumed._window(key)
        changed = len(resumed.dirty)
        rows = resumed.flush()
        assert len(rows) == changed
        assert sorted(rows) == sorted(owner.flush())
