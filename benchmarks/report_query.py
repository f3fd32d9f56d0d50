"""A class report's ClickHouse reads on 10M+ daily rows: before and after the read path (issue 13).

Generates a month of rows straight into an embedded store (INSERT ... SELECT
from numbers(), no dataflow): by default 120,000 students in classes of 40
(3,000 classes, 50 schools) over 30 days and 3 subjects, i.e. 10.8 million
daily rows, 3.6 million graded homework and 28.8 million metrics, one insert
per day and table, then the last two days again with higher versions (the
upserts a flow re-emits). The same rows go twice into one store:

- `before`: the tables as the first release read them, without skipping
  indexes, read with `FINAL` (the SQL of `writech.reports.queries` as it
  was: `FROM <table> FINAL WHERE class_id = ...`);
- `writech`: this release's tables, read through the views.

A class's report reads its daily rows, graded homework, characters,
legibility and exams (`writech.reports.queries`, less the error records of
SQLite). Each layout is timed with the parts as the inserts left them
(merges stopped: 33 parts in September's partition) and once merged to one
part per partition; also this release's tables read with `FINAL` directly,
to tell what the indexes alone give from what the views add.

    .venv/bin/python benchmarks/report_query.py [--students 120000] [--days 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

from writech.reports import queries
from writech.reports.model import Period
from writech.schema import ANALYTICS_METRICS, HOMEWORK_RESULT, STUDENT_DAILY_STATS, Table
from writech.stores.base import ClickHouse
from writech.stores.chdb import ChdbStore, open_store

FIRST_DAY: Final = date(2026, 9, 1)
CLASS_SIZE: Final = 40
CLASSES_PER_SCHOOL: Final = 60
TABLES: Final = (STUDENT_DAILY_STATS, HOMEWORK_RESULT, ANALYTICS_METRICS)
METRICS_PER_DAY: Final = 8  # per student: 5 characters checked, 2 OCR results, 1 exam or strokes

# One student-day of each table; `s` is the student's number, `d` the day's.
_STUDENT: Final = {
    "student_id": "concat('stu-', lower(hex(cityHash64(s))))",
    "class_id": f"concat('class-', leftPad(toString(intDiv(s, {CLASS_SIZE})), 4, '0'))",
    "school_id": "concat('school-', leftPad(toString(intDiv(s, "
    f"{CLASS_SIZE * CLASSES_PER_SCHOOL})), 3, '0'))",
    "date": f"toDate('{FIRST_DAY}') + d",
}
_DAILY: Final = """
SELECT {student_id}, {date}, ['chinese', 'math', 'english'][j + 1], {class_id}, {school_id},
    1 + h % 3, 1 + h % 2, 40 + (h % 600) / 10, 10 + h % 50, h % 3000, h % 400, h % 20,
    50 + (h % 500) / 10, h % 5, 40 + (h % 600) / 10, (h % 300) / 10, h % 6,
    arrayMap(k -> concat('kp-', toString((h + k) % 200)), range(h % 4)),
    toUInt32(d % 7 = 0), if(d % 7 = 0, 50 + (h % 500) / 10, 0), 1, {version}
FROM (SELECT number % {students} AS s, intDiv(number, {students}) AS j, {day} AS d,
    cityHash64(s, j, d) AS h FROM numbers({students} * 3))"""
_HOMEWORK: Final = """
SELECT lower(hex(cityHash64(s, d, 'homework'))), {student_id}, {class_id}, {school_id},
    concat('hw-', toString(d)), ['chinese', 'math', 'english'][d % 3 + 1], 40 + (h % 600) / 10,
    h % 6, h % 5, h % 4, {date}, toDateTime64({date}, 6, 'UTC') + toIntervalSecond(h % 36000)
FROM (SELECT number AS s, {day} AS d, cityHash64(s, d) AS h FROM numbers({students}))"""
_METRICS: Final = """
SELECT lower(hex(cityHash64(s, d, k))), {student_id}, {class_id}, {school_id},
    if(k < 7, 'chinese', 'math'),
    multiIf(k < 5, 'stroke_order_score', k < 7, 'ocr_confidence',
            d % 7 = 0, 'exam_score', 'stroke_count'),
    multiIf(k < 5, 40 + h % 60, k < 7, (h % 100) / 100, d % 7 = 0, 40 + h % 60, h % 3000),
    multiIf(k < 5, ['永', '字', '中', '国', '人'][k + 1], k = 7 AND d % 7 = 0,
            concat('exam-', toString(d)), ''),
    'daily', {date}, {date}, toDateTime64({date}, 6, 'UTC') + toIntervalSecond(h % 36000)
FROM (SELECT number % {students} AS s, intDiv(number, {students}) AS k, {day} AS d,
    cityHash64(s, k, d) AS h FROM numbers({students} * {per_day}))"""
_SELECTS: Final = {
    STUDENT_DAILY_STATS.name: _DAILY,
    HOMEWORK_RESULT.name: _HOMEWORK,
    ANALYTICS_METRICS.name: _METRICS,
}


def load(store: ChdbStore, database: str, students: int, days: int) -> None:
    """Every day of every table, one insert each; then the last two days' daily rows again."""
    for table in TABLES:
        store.command(f"SYSTEM STOP MERGES `{database}`.`{table.name}`")
    upserts = [(day, 2) for day in range(max(days - 2, 0), days)]
    for day, version in [(day, 1) for day in range(days)] + upserts:
        for table in TABLES if version == 1 else (STUDENT_DAILY_STATS,):
            select = _SELECTS[table.name].format(
                **_STUDENT, version=version, students=students, day=day, per_day=METRICS_PER_DAY
            )
            store.command(f"INSERT INTO `{database}`.`{table.name}` {select}")


class FinalReads:
    """A store whose view reads become `<database>.<table> FINAL`: the reports' SQL as it was."""

    _VIEW: Final = re.compile(
        r"`writech`\.`(\w+?)(?:_latest|_by_\w+?_id`\(\w+ = \{\w+:String\}\))`?"
    )

    def __init__(self, store: ClickHouse, database: str) -> None:
        self.store = store
        self.database = database

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        plain = self._VIEW.sub(lambda m: f"`{self.database}`.`{m[1]}` FINAL", sql)
        assert "FINAL" in plain, sql
        return self.store.query(plain, params)


def class_report_reads(store: Any, class_id: str, period: Period) -> dict[str, Callable[[], Any]]:
    """The ClickHouse reads of one class's report (`queries.scope_rows`, less the error records)."""
    both = Period(period.previous().start, period.end)
    return {
        "daily rows": lambda: queries.daily_rows(store, "class_id", class_id, both),
        "homework": lambda: queries.homework_rows(store, "class_id", class_id, both),
        "characters": lambda: queries.character_days(store, "class_id", class_id, period),
        "legibility": lambda: queries.legibility_days(store, "class_id", class_id, both),
        "exams": lambda: queries.exam_scores(store, "class_id", class_id, period),
    }


def timed(reads: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float], Any]:
    """Median seconds per read over `repeats` runs, and what the reads returned."""
    times: dict[str, list[float]] = {name: [] for name in reads}
    results = {}
    for _ in range(repeats):
        for name, read in reads.items():
            started = time.perf_counter()
            results[name] = read()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=120_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--class-id", default="class-1234")
    args = parser.parse_args()

    end = FIRST_DAY + timedelta(days=args.days - 1)
    period = Period(end - timedelta(days=6), end)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "clickhouse")
        store.command("CREATE DATABASE `before`")
        for table in TABLES:
            plain: Table = dataclasses.replace(table, filtered_by=())
            store.command(plain.ddl(database="before"))
        started = time.perf_counter()
        for database in ("before", "writech"):
            load(store, database, args.students, args.days)
        rows = {
            table.name: store.query(f"SELECT count() AS n FROM writech.{table.name}")[0]["n"]
            for table in TABLES
        }
        print(
            f"{args.students:,} students, {args.days} days: "
            + ", ".join(f"{name} {n:,} rows" for name, n in rows.items())
            + f" (each layout; loaded in {time.perf_counter() - started:.0f} s)"
        )
        layouts = {
            "before: tables read with FINAL": FinalReads(store, "before"),
            "indexes only: FINAL, skipping indexes": FinalReads(store, "writech"),
            "after: the read path (views)": store,
        }
        for state in ("as inserted", "merged"):
            if state == "merged":
                for database in ("before", "writech"):
                    for table in TABLES:
                        store.command(f"SYSTEM START MERGES `{database}`.`{table.name}`")
                        store.command(f"OPTIMIZE TABLE `{database}`.`{table.name}` FINAL")
            parts = store.query(
                "SELECT max(n) AS n FROM (SELECT count() AS n FROM system.parts WHERE active "
                "AND database = 'writech' GROUP BY table, partition)"
            )[0]["n"]
            print(f"\n{state} (at most {parts} parts per partition); class {args.class_id}, "
                  f"{period.start} to {period.end} and the week before:")  # fmt: skip
            totals, answers = {}, []
            for name, reader in layouts.items():
                times, results = timed(
                    class_report_reads(reader, args.class_id, period), args.repeats
                )
                totals[name] = sum(times.values())
                answers.append(results)
                print(f"  {name:<40} {totals[name] * 1000:8.0f} ms  ("
                      + ", ".join(f"{read} {ms * 1000:.0f}" for read, ms in times.items()) + ")")  # fmt: skip
            assert all(answer == answers[0] for answer in answers), "the layouts disagree"
            before, after = (
                totals["before: tables read with FINAL"],
                totals["after: the read path (views)"],
            )
            daily = len(answers[0]["daily rows"])
            print(
                f"  before / after: {before / after:.1f}x  ({daily:,} daily rows read, the same in all)"
            )
        store.close()


if __name__ == "__main__":
    main()
