"""A report by kind and id: open the stores, read, build. What the CLI and the benchmark call."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

from writech.reports import build, queries
from writech.reports.build import DEFAULT_OPTIONS, Options
from writech.reports.model import DEFAULT_DAYS, Period, Report
from writech.reports.rows import Scope
from writech.settings import Settings
from writech.stores.base import ClickHouse, ErrorStore, open_clickhouse, open_error_store

Kind = Literal["student", "class", "school", "parent"]
SCOPES: Final[dict[Kind, Scope]] = {
    "student": "student_id",
    "class": "class_id",
    "school": "school_id",
    "parent": "student_id",
}


# The longest period the web app reports on: a school year, leap day included.
# Its previous period is read too and the charts show a point a day, so a
# century's period took 14 s and 20 MB of HTML, which any signed-in user
# could ask for again and again. `writech report` takes what it is given.
MAX_PERIOD_DAYS: Final = 366
# The dates the stores can hold (`writech.timestamps`: ClickHouse's DateTime,
# local dates up to 14 hours ahead of UTC): the web app's date picks.
FIRST_DATE: Final = date(1970, 1, 1)
LAST_DATE: Final = date(2106, 2, 8)


class ReportError(Exception):
    """A report cannot be made: an unknown id, or no data at all."""


class PeriodError(ReportError):
    """The period asked for cannot be reported on; the message says why."""


def checked_period(start: date, end: date, *, longest: int | None = None) -> Period:
    """The period from `start` to `end`, or `PeriodError` saying what is wrong with it:
    `start` after `end`, a previous period that would begin before year 1 (it
    overflowed, a traceback), or more than `longest` days."""
    if start > end:
        raise PeriodError(f"from {start} is after to {end}")
    period = Period(start, end)
    if start - date.min < timedelta(days=period.days):
        raise PeriodError(
            f"from {start} to {end}: the period before it, as long, would begin before year 1"
        )
    if longest is not None and period.days > longest:
        raise PeriodError(
            f"from {start} to {end} is {period.days:,} days; a report covers "
            f"{longest} at most (a school year)"
        )
    return period


@dataclass(frozen=True)
class Stores:
    clickhouse: ClickHouse
    error_store: ErrorStore


@contextmanager
def open_stores(settings: Settings) -> Iterator[Stores]:
    clickhouse = open_clickhouse(settings, existing=True)
    try:
        error_store = open_error_store(settings)
        try:
            yield Stores(clickhouse, error_store)
        finally:
            error_store.close()
    finally:
        clickhouse.close()


def default_period(span: Period, end: date) -> Period:
    """The period ending on `end` when none is asked for.

    A week, when the data hold a week before it to compare with; otherwise
    the later half of the days stored up to `end`, so that the previous
    period (the earlier half) has data too.
    """
    stored = max(1, (end - span.start).days + 1)
    days = min(DEFAULT_DAYS, math.ceil(stored / 2))
    return Period(end - timedelta(days=days - 1), end)


def resolve_period(stores: Stores, start: date | None, end: date | None) -> Period:
    """The period asked for; what is not asked for follows `default_period`."""
    span = queries.date_span(stores.clickhouse)
    if span is None:
        raise ReportError("the store holds no daily statistics yet (check --data-dir)")
    end = end or span.end
    start = start or default_period(span, end).start
    return checked_period(start, end)


def make_report(
    stores: Stores,
    kind: Kind,
    scope_id: str,
    period: Period,
    now: datetime | None = None,
    options: Options = DEFAULT_OPTIONS,
) -> Report:
    """The report of one student, class or school, or a student's parent page.

    `ReportError` if the id is unknown.
    """
    scope = SCOPES[kind]
    now = now or datetime.now(UTC)
    member = queries.membership(stores.clickhouse, scope, scope_id, period.end)
    if member is None:
        who = "student" if kind == "parent" else kind
        raise ReportError(f"unknown {who} {scope_id!r}: no daily statistics mention it")
    if kind in ("student", "parent"):
        data = queries.student_data(stores.clickhouse, stores.error_store, member, period)
        report = build.build_student_report(data, now, options)
        return build.build_parent_report(report) if kind == "parent" else report
    group = queries.group_data(stores.clickhouse, stores.error_store, scope, scope_id, period)
    if kind == "class":
        return build.build_class_report(scope_id, member.school_id, group, now, options)
    return build.build_school_report(scope_id, group, now, options)


def class_ids(stores: Stores, period: Period) -> list[str]:
    return queries.class_ids(stores.clickhouse, period)
