"""Indicators: each student's running totals per day, and what a report reads from them.

Rules every number follows (docs/reports.md explains them to readers):

- A student's average over days is weighted by its own count:
  sum(avg * count) / sum(count), never a mean of daily means.
- An average resting on fewer than `min_events` events is "too little data".
- Totals (study minutes, strokes, characters) are summed over the period.
- "The class" (or school) is the median of its students' values (unrounded),
  over the students with enough evidence, and needs `min_students` of them.
- A count of 0 is "no data" (`None`), never 0.
- Homework scores come from believed submissions only (homework.py flags
  the others); legibility is the mean OCR confidence, as a percentage.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from writech.reports.model import (
    Distribution,
    HistogramBin,
    Indicator,
    IndicatorKey,
    Period,
    Reading,
    Thresholds,
    Trend,
)
from writech.reports.rows import LegibilityDay
from writech.schema import DailyStats, HomeworkResult

DECIMALS: Final = 2
HISTOGRAM_BINS: Final = 10


@dataclass(frozen=True)
class Measure:
    key: IndicatorKey
    averaged: bool  # a mean weighted by its count; otherwise a total


MEASURES: Final = (
    Measure("homework_score", True),
    Measure("exam_score", True),
    Measure("stroke_order_accuracy", True),
    Measure("legibility", True),
    Measure("writing_quality", True),
    Measure("writing_speed", True),
    Measure("study_minutes", False),
    Measure("strokes", False),
    Measure("characters", False),
)
KEYS: Final[tuple[IndicatorKey, ...]] = tuple(m.key for m in MEASURES)
AVERAGED: Final = frozenset(m.key for m in MEASURES if m.averaged)
# Scores on a 0-100 scale: what attention, strengths and histograms compare in points.
SCORES: Final[tuple[IndicatorKey, ...]] = (
    "homework_score",
    "exam_score",
    "stroke_order_accuracy",
    "legibility",
    "writing_quality",
)

# What one daily row adds to each indicator read from it: (sum, count).
_FROM_DAILY: Final[tuple[tuple[IndicatorKey, Callable[[DailyStats], tuple[float, int]]], ...]] = (
    ("exam_score", lambda r: (r.exam_avg_score * r.exam_count, r.exam_count)),
    (
        "stroke_order_accuracy",
        lambda r: (r.stroke_order_accuracy * r.practice_count, r.practice_count),
    ),
    (
        "writing_quality",
        lambda r: (r.writing_quality_avg * r.writing_quality_count, r.writing_quality_count),
    ),
    (
        "writing_speed",
        lambda r: (r.writing_speed_avg * r.writing_quality_count, r.writing_quality_count),
    ),
    ("study_minutes", lambda r: (float(r.study_duration_minutes), r.homework_count)),
    # A daily row exists only for a student with events that day, so for
    # these totals a row is the evidence that 0 means 0.
    ("strokes", lambda r: (float(r.stroke_count_total), 1)),
    ("characters", lambda r: (float(r.practice_total_chars), 1)),
)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DECIMALS)


def difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else round(value - reference, DECIMALS)


def percent(part: int, whole: int) -> float:
    return round(100 * part / whole, DECIMALS)


def halves(period: Period) -> tuple[Period, Period] | None:
    """The first and last whole halves of the period (an odd middle day is in neither)."""
    half = period.days // 2
    if half == 0:
        return None
    dates = period.dates()
    return Period(dates[0], dates[half - 1]), Period(dates[-half], dates[-1])


class Totals:
    """Running sums and counts of every indicator."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.sums: dict[IndicatorKey, float] = dict.fromkeys(KEYS, 0.0)
        self.counts: dict[IndicatorKey, int] = dict.fromkeys(KEYS, 0)

    def add(self, key: IndicatorKey, total: float, count: int) -> None:
        if count:
            self.sums[key] += total
            self.counts[key] += count

    def merge(self, other: Totals) -> None:
        for key, count in other.counts.items():
            self.add(key, other.sums[key], count)

    def value(self, key: IndicatorKey) -> float | None:
        """The mean (or total), whatever its evidence; None without data."""
        count = self.counts[key]
        if not count:
            return None
        return self.sums[key] / count if key in AVERAGED else self.sums[key]

    def reading(self, key: IndicatorKey, limits: Thresholds) -> Reading:
        """The value, if it rests on enough events."""
        count = self.counts[key]
        if not count:
            return Reading(value=None, count=0, evidence="none")
        if key in AVERAGED and count < limits.min_events:
            return Reading(value=None, count=count, evidence="too_little")
        return Reading(value=rounded(self.value(key)), count=count, evidence="enough")

    def enough(self, key: IndicatorKey, limits: Thresholds) -> float | None:
        """The unrounded value, if it rests on enough events: what medians are taken of."""
        return self.value(key) if self.reading(key, limits).evidence == "enough" else None


class Member:
    """One student's totals per date, and the class they were last seen in."""

    __slots__ = ("_latest", "_over", "class_id", "days")

    def __init__(self) -> None:
        self.days: dict[date, Totals] = {}
        self.class_id = ""
        self._latest = date.min
        self._over: dict[Period, Totals] = {}

    def day(self, day: date) -> Totals:
        return self.days.setdefault(day, Totals())

    def add_row(self, row: DailyStats) -> None:
        totals = self.day(row.date)
        for key, read in _FROM_DAILY:
            totals.add(key, *read(row))
        if row.date >= self._latest:
            self._latest, self.class_id = row.date, row.class_id

    def over(self, period: Period) -> Totals:
        """Every day of the period combined (computed once per period)."""
        if period not in self._over:
            totals = Totals()
            for day, day_totals in self.days.items():
                if day in period:
                    totals.merge(day_totals)
            self._over[period] = totals
        return self._over[period]

    def active_days(self, period: Period) -> int:
        return sum(day in period for day in self.days)


def members_of(
    daily: Iterable[DailyStats],
    believed_homework: Iterable[HomeworkResult],
    legibility: Iterable[LegibilityDay],
) -> dict[str, Member]:
    """Every student of the rows, by id.

    A student is a member by their daily rows; homework and OCR results only
    add to the days those rows make active (every event makes a daily row).
    """
    members: dict[str, Member] = {}
    for row in daily:
        members.setdefault(row.student_id, Member()).add_row(row)
    for homework in believed_homework:
        if (member := members.get(homework.student_id)) and homework.date in member.days:
            member.day(homework.date).add("homework_score", homework.score_percent, 1)
    for ocr in legibility:
        if (member := members.get(ocr.student_id)) and ocr.date in member.days:
            member.day(ocr.date).add("legibility", ocr.confidence_micro / 10_000, ocr.count)
    return members


def median_reading(values: Sequence[float], recorded: bool, limits: Thresholds) -> Reading:
    """The median of the students' values with enough evidence: "the class".

    `recorded`: whether any student has any data for it (else "none").
    """
    if len(values) >= limits.min_students:
        return Reading(
            value=rounded(statistics.median(values)), count=len(values), evidence="enough"
        )
    return Reading(value=None, count=len(values), evidence="too_little" if recorded else "none")


def group_readings(
    members: Iterable[Member], period: Period, limits: Thresholds
) -> dict[IndicatorKey, Reading]:
    totals = [m.over(period) for m in members if m.active_days(period)]
    return {
        key: median_reading(
            [v for t in totals if (v := t.enough(key, limits)) is not None],
            any(t.counts[key] for t in totals),
            limits,
        )
        for key in KEYS
    }


def indicator(
    key: IndicatorKey,
    current: Reading,
    previous: Reading,
    class_median: Reading | None = None,
) -> Indicator:
    return Indicator(
        key=key,
        current=current,
        previous=previous,
        change=difference(current.value, previous.value),
        class_median=class_median,
        vs_class=None if class_median is None else difference(current.value, class_median.value),
    )


def group_indicators(
    members: Sequence[Member], period: Period, limits: Thresholds
) -> list[Indicator]:
    now = group_readings(members, period, limits)
    before = group_readings(members, period.previous(), limits)
    return [indicator(key, now[key], before[key]) for key in KEYS]


def student_trend(member: Member, dates: Sequence[date]) -> Trend:
    """The student's daily values (each day on its own: no evidence floor)."""
    days = [member.days.get(day) for day in dates]
    return Trend(
        dates=list(dates),
        values={key: [rounded(t.value(key)) if t else None for t in days] for key in KEYS},
    )


def group_trend(members: Sequence[Member], dates: Sequence[date]) -> Trend:
    """The median of the students' daily values, day by day."""
    values: dict[IndicatorKey, list[float | None]] = {key: [] for key in KEYS}
    for day in dates:
        totals = [m.days[day] for m in members if day in m.days]
        for key in KEYS:
            daily = [v for t in totals if (v := t.value(key)) is not None]
            values[key].append(rounded(statistics.median(daily)) if daily else None)
    return Trend(dates=list(dates), values=values)


# -- distributions ------------------------------------------------------------


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= raw."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(power * f for f in (1.0, 2.0, 2.5, 5.0, 10.0) if power * f >= raw)


def _histogram(key: IndicatorKey, values: Sequence[float]) -> list[HistogramBin]:
    if not values:
        return []
    if key in SCORES:
        start, step, count = 0.0, 100.0 / HISTOGRAM_BINS, HISTOGRAM_BINS
    else:
        low, high = min(values), max(values)
        step = _nice_step(((high - low) or max(abs(high), 1.0)) / HISTOGRAM_BINS)
        start = math.floor(low / step) * step
        count = max(1, math.floor((high - start) / step) + 1)
    students = Counter(min(count - 1, int((v - start) // step)) for v in values)
    return [
        HistogramBin(
            start=round(start + i * step, DECIMALS),
            end=round(start + (i + 1) * step, DECIMALS),
            students=students[i],
        )
        for i in range(count)
    ]


def distribution(key: IndicatorKey, values: Sequence[float]) -> Distribution:
    """Quartiles (inclusive method) and histogram of `values`."""
    if not values:
        return Distribution(
            indicator=key,
            students=0,
            minimum=None,
            q1=None,
            median=None,
            q3=None,
            maximum=None,
            histogram=[],
        )
    if len(values) == 1:
        q1 = median = q3 = values[0]
    else:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Distribution(
        indicator=key,
        students=len(values),
        minimum=rounded(min(values)),
        q1=rounded(q1),
        median=rounded(median),
        q3=rounded(q3),
        maximum=rounded(max(values)),
        histogram=_histogram(key, values),
    )


def distributions(
    members: Iterable[Member], period: Period, limits: Thresholds
) -> list[Distribution]:
    """Every indicator across the students with enough evidence for a value."""
    totals = [m.over(period) for m in members if m.active_days(period)]
    return [
        distribution(key, [v for t in totals if (v := t.enough(key, limits)) is not None])
        for key in KEYS
    ]
