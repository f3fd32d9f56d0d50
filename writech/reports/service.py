"""A report by kind and id: open the stores, read, build. What the CLI and the benchmark call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

from writech.reports import build, queries
from writech.reports.model import DEFAULT_DAYS, Period, Report
from writech.reports.rows import Scope
from writech.reports.wrong_answers import WrongAnswers, open_wrong_answers
from writech.settings import Settings
from writech.sinks import ClickHouse
from writech.stores import open_clickhouse

Kind = Literal["student", "class", "school"]
SCOPES: Final[dict[Kind, Scope]] = {
    "student": "student_id",
    "class": "class_id",
    "school": "school_id",
}


class ReportError(Exception):
    """A report cannot be made: an unknown id, or no data at all."""


@dataclass(frozen=True)
class Stores:
    clickhouse: ClickHouse
    wrong_answers: WrongAnswers


@contextmanager
def open_stores(settings: Settings) -> Iterator[Stores]:
    clickhouse = open_clickhouse(settings)
    try:
        wrong_answers = open_wrong_answers(settings)
        try:
            yield Stores(clickhouse, wrong_answers)
        finally:
            wrong_answers.close()
    finally:
        clickhouse.close()


def resolve_period(stores: Stores, start: date | None, end: date | None) -> Period:
    """The period asked for; `end` defaults to the newest date stored, `start` to a week before."""
    if end is None:
        end = queries.newest_date(stores.clickhouse)
        if end is None:
            raise ReportError("the store holds no daily statistics yet (check --data-dir)")
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ReportError(f"--from {start} is after --to {end}")
    return Period(start, end)


def make_report(
    stores: Stores, kind: Kind, scope_id: str, period: Period, now: datetime | None = None
) -> Report:
    """The report of one student, class or school; `ReportError` if the id is unknown."""
    scope = SCOPES[kind]
    now = now or datetime.now(UTC)
    member = queries.membership(stores.clickhouse, scope, scope_id, period.end)
    if member is None:
        raise ReportError(f"unknown {kind} {scope_id!r}: no daily statistics mention it")
    if kind == "student":
        data = queries.student_data(stores.clickhouse, stores.wrong_answers, member, period)
        return build.build_student_report(data, now)
    group = queries.group_data(stores.clickhouse, stores.wrong_answers, scope, scope_id, period)
    if kind == "class":
        return build.build_class_report(scope_id, member.school_id, group, now)
    return build.build_school_report(scope_id, group, now)


def class_ids(stores: Stores, period: Period) -> list[str]:
    return queries.class_ids(stores.clickhouse, period)
