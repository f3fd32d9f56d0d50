"""Per-student daily statistics as pure logic: no I/O, no framework (SPEC §3–§5).

A `Shard` holds the state of every student whose id hashes to it: one
`RowTotals` per (local date, student, subject), and the identities of the
events already counted. An event's identity is (student, event id), across
dates (SPEC §2): a repeat of a counted event is a duplicate whatever its
timestamp, and the first occurrence wins (input order within a source
partition). Dates more than `retention_days` behind the newest date the
shard has seen are flushed and evicted with the identities first counted
on them; an event for such a date is dead-lettered as `too_late`, so a
complete row is never overwritten by a partial one.

A date idle by `writech.frozen.Cooling`'s rule (no flush found it
changed for a second, twice as long each time an event brought it back)
keeps its rows as their snapshot's bytes alone (a pickle, ~150 bytes a
row against ~700 as objects) until an event for it comes: with events in
time order, only the current date's rows are objects.

Averages are exact: each is an integer sum of the values (every float is
an integer multiple of a power of two, see `RowTotals.units`) over its
own count, so a mean is the correctly rounded true mean of the values,
whatever the order in which events are added and however small they are,
and `version` (the number of distinct events in the row) orders the row's
emissions.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Iterable
from datetime import date
from time import monotonic
from typing import Final

from msgspec import Struct

from writech.events import (
    Event,
    ExamScore,
    GradeResult,
    HomeworkSubmit,
    LoginEvent,
    OcrResult,
    Payload,
    StrokeOrder,
    StrokeRaw,
    WritingQuality,
    dead_letter,
)
from writech.frozen import Cooling
from writech.identities import Identities
from writech.schema import (
    DeadLetterRow,
    ErrorRow,
    HomeworkRow,
    MetricRow,
    StatsRow,
    error_record_key,
)

MICRO: Final = 1_000_000
CHINESE: Final = "chinese"  # the subject of OCR, stroke-order and quality events
LOGIN_SUBJECT: Final = ""

RowKey = tuple[int, str, str]  # (day, student_id, subject)
# Rows carry dates as days since 1970-01-01; the state keys days by ordinal.
EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

# Sums of averaged values are integers in units of 2**-UNITS (and finer in a
# row that needs it): a double of at least 2**-10 is an exact multiple of
# 2**-62, so for scores, percentages, confidences and speeds the scaling is
# one float multiplication; smaller values widen the row's units.
UNITS: Final = 62
_SCALE: Final = 2.0**UNITS
_DEDUP_KEY: Final = operator.attrgetter("dedup_key")


class RowTotals:
    """Running totals of one (student, local date, subject) row."""

    __slots__ = (
        "student_id",
        "day",
        "subject",
        "class_id",
        "class_time",
        "class_event",
        "school_id",
        "school_time",
        "school_event",
        "events",
        "homework_count",
        "homework_completed",
        "homework_score_sum",
        "study_minutes",
        "strokes",
        "chars",
        "stroke_order_count",
        "stroke_order_sum",
        "quality_count",
        "quality_sum",
        "speed_sum",
        "error_count",
        "knowledge_points",
        "exam_count",
        "exam_sum",
        "login_count",
        "units",
    )

    def __init__(self, student_id: str, day: int, subject: str) -> None:
        self.student_id = student_id
        self.day = day
        self.subject = subject
        # class and school of the latest event (by event time, then id)
        # that names one: independent of arrival order
        self.class_id = ""
        self.class_time = -1  # the (time_us, event_id) it came from
        self.class_event = ""
        self.school_id = ""
        self.school_time = -1
        self.school_event = ""
        self.events = 0
        self.homework_count = 0
        self.homework_completed = 0
        self.homework_score_sum = 0
        self.study_minutes = 0
        self.strokes = 0
        self.chars = 0
        self.stroke_order_count = 0
        self.stroke_order_sum = 0
        self.quality_count = 0
        self.quality_sum = 0
        self.speed_sum = 0
        self.error_count = 0
        # None until the row's first knowledge point: most rows never get one, and an
        # empty set (216 bytes) was a quarter of a retained row's memory
        self.knowledge_points: set[str] | None = None
        self.exam_count = 0
        self.exam_sum = 0
        self.login_count = 0
        # the sums above are in units of 2**-units
        self.units = UNITS

    def __getstate__(self) -> tuple[object, ...]:
        state: tuple[object, ...] = _row_state(self)
        return state

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def scaled(self, value: float) -> int:
        """`value` exactly, in this row's units (which it widens if `value` needs finer ones).

        Callers add the result to a sum only after this returns: it may
        rescale every sum of the row.
        """
        scaled = value * _SCALE
        if scaled.is_integer() and self.units == UNITS:
            return int(scaled)
        numerator, denominator = value.as_integer_ratio()
        needed = denominator.bit_length() - 1  # value == numerator * 2**-needed
        if needed > self.units:
            widen = needed - self.units
            self.homework_score_sum <<= widen
            self.stroke_order_sum <<= widen
            self.quality_sum <<= widen
            self.speed_sum <<= widen
            self.exam_sum <<= widen
            self.units = needed
        return numerator << (self.units - needed)

    def _mean(self, total: int, count: int) -> float:
        # int / int is correctly rounded: the true mean to the last bit
        return total / (count << self.units) if count else 0.0

    def note_membership(self, event: Event) -> None:
        # (time, id) compared field by field: a tuple per event cost more
        time_us = event.time_us
        if event.class_id and (
            time_us > self.class_time
            or (time_us == self.class_time and event.event_id > self.class_event)
        ):
            self.class_id, self.class_time, self.class_event = (
                event.class_id, time_us, event.event_id,
            )  # fmt: skip
        if event.school_id and (
            time_us > self.school_time
            or (time_us == self.school_time and event.event_id > self.school_event)
        ):
            self.school_id, self.school_time, self.school_event = (
                event.school_id, time_us, event.event_id,
            )  # fmt: skip

    def to_row(self) -> StatsRow:
        """The row of `student_daily_stats` (columns in `STUDENT_DAILY_STATS` order)."""
        mean = self._mean
        return (
            self.student_id,
            self.day - EPOCH_ORDINAL,
            self.subject,
            self.class_id,
            self.school_id,
            self.homework_count,
            self.homework_completed,
            mean(self.homework_score_sum, self.homework_completed),
            self.study_minutes,
            self.strokes,
            self.chars,
            self.stroke_order_count,
            mean(self.stroke_order_sum, self.stroke_order_count),
            self.quality_count,
            mean(self.quality_sum, self.quality_count),
            mean(self.speed_sum, self.quality_count),
            self.error_count,
            sorted(self.knowledge_points) if self.knowledge_points else [],
            self.exam_count,
            mean(self.exam_sum, self.exam_count),
            self.login_count,
            self.events,
        )


# Every slot of a row in one C call: snapshots pickle every row.
_row_state = operator.attrgetter(*RowTotals.__slots__)


class ShardOutput(Struct, gc=False):
    """What one step of a shard produces, for the sinks and the counters."""

    stats: list[StatsRow]
    metrics: list[MetricRow]
    errors: list[ErrorRow]
    dead_letters: list[DeadLetterRow]
    homework: list[HomeworkRow] = []
    processed: int = 0
    duplicates: int = 0
    # the events counted by this step, for the minute windows (never sent on)
    counted: list[Event] = []


class _Day(Cooling):
    """One local date of a shard: its rows and the identities first counted on it.

    Cold (`rows` None), its rows are its snapshot's bytes alone (`frozen`);
    its identities stay an array, for lookups rebuilt on resume and for
    eviction.
    """

    __slots__ = ("ids", "rows", "size")

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], RowTotals] | None = {}
        self.ids = array("Q")  # dedup keys: 8 bytes each, one C copy to pickle
        self.size = 0  # rows, while cold

    def state(self) -> tuple[dict[tuple[str, str], RowTotals] | None, array[int]]:
        return self.rows, self.ids

    def restore(self, state: tuple[dict[tuple[str, str], RowTotals], array[int]]) -> None:
        self.rows, self.ids = state
        self.rest()
        self.size = 0

    def cool(self) -> None:
        """Keep the rows as bytes alone (the snapshot's: encoded only if they changed)."""
        self.freeze()
        self.size = len(self.live_rows())
        self.rows = None

    def warm(self) -> None:
        """The rows as objects again; cold again only after twice the patience."""
        self.rows = self.cold_rows()
        self.brought_back(self.patience)

    def live_rows(self) -> dict[tuple[str, str], RowTotals]:
        assert self.rows is not None, "a cold day's rows are bytes"
        return self.rows

    def cold_rows(self) -> dict[tuple[str, str], RowTotals]:
        """The rows a cold day keeps as bytes, decoded (not kept)."""
        assert self.frozen is not None, "a live day's rows are objects"
        rows: dict[tuple[str, str], RowTotals] = self.loads(self.frozen)[0]
        return rows


class Shard:
    """The aggregation state of one shard of students."""

    def __init__(self, retention_days: int = 7) -> None:
        self.retention_days = retention_days
        self.newest_day = 0
        self.days: dict[int, _Day] = {}  # live: rows as objects
        self.cold: dict[int, _Day] = {}  # rows as bytes
        # the rows changed since the last flush, themselves (hashed by identity):
        # no key tuple per event, and no lookup at the flush
        self.dirty: set[RowTotals] = set()
        # every identity counted on a retained day, for lookups: derived from
        # the days' `ids`, so it is rebuilt on unpickling rather than stored twice
        self.identities = Identities()

    def __getstate__(self) -> tuple[int, int, dict[int, _Day], set[RowKey]]:
        # A cold day pickles as the bytes it keeps, and resumes live. The changed
        # rows by key, as snapshots have always held them: the rows themselves
        # are in their days' bytes, and a copy here would come back apart from
        # the row later events change.
        dirty = {(row.day, row.student_id, row.subject) for row in self.dirty}
        return self.retention_days, self.newest_day, self.days | self.cold, dirty

    def __setstate__(self, state: tuple[int, int, dict[int, _Day], set[RowKey]]) -> None:
        self.retention_days, self.newest_day, self.days, dirty = state
        self.cold = {}
        self.dirty = {
            self.days[day].live_rows()[(student, subject)] for day, student, subject in dirty
        }
        self.identities = Identities(day.ids for day in self.days.values())

    @property
    def retained_rows(self) -> int:
        live = sum(len(day.live_rows()) for day in self.days.values())
        return live + sum(day.size for day in self.cold.values())

    def students(self) -> set[str]:
        """The students of every retained row, cold days' included."""
        days = [day.live_rows() for day in self.days.values()]
        days += [day.cold_rows() for day in self.cold.values()]
        return {student for rows in days for student, _ in rows}

    @property
    def retained_event_ids(self) -> int:
        return len(self.identities)

    def apply(self, events: list[Event]) -> ShardOutput:
        """Count new events; return their metrics, errors and dead letters.

        Daily rows are not emitted here but by `flush`, so that a busy row
        is written once per flush interval rather than once per event.
        """
        out = ShardOutput([], [], [], [])
        days, counted, identities = self.days, out.counted, self.identities
        older = identities.among_older(list(map(_DEDUP_KEY, events)))
        newest = identities.newest
        for event in events:
            key = event.dedup_key
            if key in newest or key in older:  # counted before, on this date or another
                out.duplicates += 1
                continue
            day_number = event.day
            if day_number > self.newest_day:
                self.newest_day = day_number
            elif day_number < self.newest_day - self.retention_days:
                out.dead_letters.append(_too_late(event, self.newest_day))
                continue
            day = days.get(day_number)
            if day is None:
                day = self._open(day_number)
            newest.add(key)
            day.ids.append(key)
            day.thaw()
            payload = event.payload
            handler, subject = _HANDLERS[type(payload)]
            if subject is None:
                subject = payload.subject  # type: ignore[union-attr]  # a payload with a subject
            rows = day.rows
            assert rows is not None  # a live day
            row = rows.get((event.student_id, subject))
            if row is None:
                row = rows[(event.student_id, subject)] = RowTotals(
                    event.student_id, day_number, subject
                )
            row.events += 1
            row.note_membership(event)
            handler(row, event, payload, out)
            self.dirty.add(row)
            counted.append(event)
        identities.merge()
        out.processed = len(counted)
        out.stats = self._evict()
        return out

    def _open(self, number: int) -> _Day:
        """Date `number`, live: as it was kept cold, or new."""
        day = self.cold.pop(number, None)
        if day is None:
            day = _Day()
        else:
            day.warm()
        self.days[number] = day
        return day

    def forget(self, student_ids: Iterable[str]) -> int:
        """Drop every retained row of these students (deletion on request); the rows dropped.

        Their events' identities stay: they are one-way hashes, and keep a
        re-delivered event of a forgotten student from being counted again.
        A cold day stays cold, its bytes encoded again without them.
        """
        forgotten = set(student_ids)
        dropped = 0
        for held, live in ((self.days, True), (self.cold, False)):
            for day in held.values():
                rows = day.live_rows() if live else day.cold_rows()
                keys = [key for key in rows if key[0] in forgotten]
                for key in keys:
                    self.dirty.discard(rows.pop(key))
                dropped += len(keys)
                if keys:
                    day.rows = rows
                    day.thaw()
                    if not live:
                        day.cool()
        return dropped

    def flush(self) -> list[StatsRow]:
        """The rows changed since the last flush, and mark them clean; dates unchanged
        for their patience go cold."""
        days, now = self.days, monotonic()
        rows: list[StatsRow] = []
        for row in self.dirty:
            days[row.day].changed = now
            rows.append(row.to_row())
        self.dirty.clear()
        for number, day in list(days.items()):
            if day.idle(now):
                day.cool()
                self.cold[number] = days.pop(number)
        return rows

    def _evict(self) -> list[StatsRow]:
        """Drop dates past retention with their identities, returning their rows not yet flushed."""
        cutoff = self.newest_day - self.retention_days
        expired = [day for day in self.days if day < cutoff]
        for number in [number for number in self.cold if number < cutoff]:
            # a cold date has no row waiting for a flush: it went cold at one
            self.identities.drop(self.cold.pop(number).ids)
        if not expired:
            return []
        flushed: list[StatsRow] = []
        for day_number in expired:
            day = self.days.pop(day_number)
            self.identities.drop(day.ids)
            for row in day.live_rows().values():
                if row in self.dirty:
                    self.dirty.discard(row)
                    flushed.append(row.to_row())
        return flushed


def _too_late(event: Event, newest_day: int) -> DeadLetterRow:
    return dead_letter(
        event.origin,
        event.partition,
        event.offset,
        event.raw,
        "too_late",
        f"local date {date.fromordinal(event.day)} is more than the retention "
        f"period behind {date.fromordinal(newest_day)}; its row was already "
        "finalised",
        event.event_id,
        event.produced_at,
    )


def _metric(
    event: Event, subject: str, metric_type: str, value: float, dimension: str = ""
) -> MetricRow:
    day = event.day - EPOCH_ORDINAL
    return (
        event.event_id,
        event.student_id,
        event.class_id,
        event.school_id,
        subject,
        metric_type,
        value,
        dimension,
        "daily",
        day,
        day,
        event.time_us,
    )


def _percent(score: float, total: float) -> float:
    return score / total * 100


# -- one handler per payload type: fold the event into its row ----------------


def _stroke_raw(row: RowTotals, event: Event, payload: StrokeRaw, out: ShardOutput) -> None:
    row.strokes += payload.stroke_count
    out.metrics.append(
        _metric(
            event, payload.subject, "stroke_count", float(payload.stroke_count), payload.page_id
        )
    )


def _grade_result(row: RowTotals, event: Event, payload: GradeResult, out: ShardOutput) -> None:
    percent = _percent(payload.score, payload.total_score)
    row.homework_completed += 1
    scaled = row.scaled(percent)
    row.homework_score_sum += scaled
    day = event.day - EPOCH_ORDINAL
    errors = payload.errors
    out.homework.append(
        (
            event.event_id,
            event.student_id,
            event.class_id,
            event.school_id,
            payload.homework_id,
            payload.subject,
            percent,
            len(errors),
            sum(1 for error in errors if error.knowledge_point),
            len({error.question_id for error in errors if error.question_id}),
            day,
            event.time_us,
        )
    )
    for position, error in enumerate(errors):
        if not error.knowledge_point:
            continue
        row.error_count += 1
        if row.knowledge_points is None:
            row.knowledge_points = {error.knowledge_point}
        else:
            row.knowledge_points.add(error.knowledge_point)
        out.errors.append(
            (
                error_record_key(event.student_id, event.event_id, position),
                event.event_id,
                position,
                event.student_id,
                event.class_id,
                event.school_id,
                payload.homework_id,
                error.question_id,
                payload.subject,
                error.knowledge_point,
                error.error_type,
                day,
                event.time_us,
            )
        )


def _homework_submit(
    row: RowTotals, event: Event, payload: HomeworkSubmit, out: ShardOutput
) -> None:
    row.homework_count += 1
    row.study_minutes += payload.time_cost_minutes


def _ocr_result(row: RowTotals, event: Event, payload: OcrResult, out: ShardOutput) -> None:
    row.chars += payload.char_count
    out.metrics.append(_metric(event, CHINESE, "ocr_confidence", payload.confidence))


def _stroke_order(row: RowTotals, event: Event, payload: StrokeOrder, out: ShardOutput) -> None:
    row.stroke_order_count += 1
    scaled = row.scaled(payload.score)
    row.stroke_order_sum += scaled
    # per character (SPEC §4): which characters a student writes in the wrong order
    out.metrics.append(
        _metric(event, CHINESE, "stroke_order_score", payload.score, payload.character)
    )


def _writing_quality(
    row: RowTotals, event: Event, payload: WritingQuality, out: ShardOutput
) -> None:
    row.quality_count += 1
    scaled = row.scaled(payload.quality_score)
    row.quality_sum += scaled
    scaled = row.scaled(payload.speed)
    row.speed_sum += scaled


def _exam_score(row: RowTotals, event: Event, payload: ExamScore, out: ShardOutput) -> None:
    percent = _percent(payload.score, payload.total_score)
    row.exam_count += 1
    scaled = row.scaled(percent)
    row.exam_sum += scaled
    out.metrics.append(_metric(event, payload.subject, "exam_score", percent, payload.exam_id))


def _login_event(row: RowTotals, event: Event, payload: LoginEvent, out: ShardOutput) -> None:
    row.login_count += 1
    out.metrics.append(_metric(event, LOGIN_SUBJECT, "login", 1.0))


# Per payload type: its handler, and its row's subject (None: the payload's).
_HANDLERS: Final[dict[type[Payload], tuple[Callable[..., None], str | None]]] = {
    StrokeRaw: (_stroke_raw, None),
    GradeResult: (_grade_result, None),
    HomeworkSubmit: (_homework_submit, None),
    OcrResult: (_ocr_result, CHINESE),
    StrokeOrder: (_stroke_order, CHINESE),
    WritingQuality: (_writing_quality, CHINESE),
    ExamScore: (_exam_score, None),
    LoginEvent: (_login_event, LOGIN_SUBJECT),
}
