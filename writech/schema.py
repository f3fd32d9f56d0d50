"""Every output table in one registry: columns, row types, DDL per store (SPEC §3, §4, §10).

A `Table` names its columns with their ClickHouse types; the rest follows
from it: the DDL of each store, how a row is written, and the Struct that
reads it back (`Table.row`, used by the reports and tests).

Rows on the write path are plain tuples in column order (`StatsRow`,
`MetricRow`, ...), built once per row by the aggregation, with dates as
days since 1970-01-01 and times as integer microseconds (seconds for a
`DateTime`): a tuple of primitives costs about 40 ns to build where a
Struct holding `date` and `datetime` objects cost over 1 µs. Batches of
them travel as columns (`writech.batching.TableRows`); each store turns
columns into its own format (Arrow for ClickHouse, parameters for SQL).

ClickHouse tables are ReplacingMergeTrees keyed by the identity of what
they hold, so that writing a row again is a no-op once read with `FINAL`:
replays and resumes re-emit rows, and the tables must not change
(SPEC §6). `error_record` lives in SQLite or MySQL with a unique key for
the same reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, Literal

from msgspec import Struct

DATABASE: Final = "writech"

# Where a table lives: ClickHouse (chDB or a server), or the SQL store of
# error records (SQLite or MySQL).
Home = Literal["clickhouse", "sql"]

# -- write-path rows: tuples in column order ---------------------------------

StatsRow = tuple[
    str, int, str, str, str,  # student_id, date, subject, class_id, school_id
    int, int, float, int,  # homework_count, _completed, _avg_score, study minutes
    int, int, int, float,  # strokes, characters, practice_count, stroke_order_accuracy
    int, float, float,  # writing_quality_count, _avg, writing_speed_avg
    int, list[str],  # error_count, error_knowledge_points
    int, float, int,  # exam_count, exam_avg_score, login_count
    int,  # version
]  # fmt: skip
MetricRow = tuple[
    str, str, str, str, str,  # metric_id, student_id, class_id, school_id, subject
    str, float, str, str,  # metric_type, metric_value, dimension, period
    int, int, int,  # period_start, period_end, created_at
]  # fmt: skip
HomeworkRow = tuple[
    str, str, str, str, str, str,  # event_id, student_id, class_id, school_id, homework_id, subject
    float, int, int, int,  # score_percent, listed_errors, errors, questions_with_errors
    int, int,  # date, created_at
]  # fmt: skip
ErrorRow = tuple[
    str, str, int,  # record_key, event_id, position
    str, str, str,  # student_id, class_id, school_id
    str, str, str, str, str,  # homework_id, question_id, subject, knowledge_point, error_type
    int, int,  # date, created_at
]  # fmt: skip
StudentMinuteRow = tuple[
    str, str, str,  # student_id, class_id, school_id
    int, int,  # window_start (seconds since the epoch), window_seconds
    int, int,  # events, strokes
    int, float, int, float,  # stroke_order_count, _avg, writing_quality_count, _avg
    int,  # homework_submitted
    Sequence[str], Sequence[int], Sequence[float],  # characters, character_attempts, character_scores
    int,  # version
]  # fmt: skip
ClassMinuteRow = tuple[
    str, str,  # class_id, school_id
    int, int,  # window_start, window_seconds
    int, int, int,  # active_students, events, strokes
    int, float, int, float,  # stroke_order_count, _avg, writing_quality_count, _avg
    int,  # homework_submitted
    Sequence[str], Sequence[int], Sequence[float],  # characters, character_attempts, character_scores
    int,  # version
]  # fmt: skip
DeadLetterRow = tuple[
    str, int, int,  # origin, partition, offset
    str, str, str, str, str,  # reason, message, raw, raw_encoding, event_id
    int,  # produced_at
]  # fmt: skip
ForgetRequestRow = tuple[
    str, str, int,  # request_id, student_hash, requested_at
    str, int,  # table, rows_removed
]  # fmt: skip
RedriveRow = tuple[
    str, int, int,  # origin, partition, offset: the dead letter
    int, str, int, int, str,  # redriven_at, topic, topic_partition, topic_offset, event_id
]  # fmt: skip

# -- read-path rows: what the reports and tests read back --------------------


class DailyStats(Struct, frozen=True, gc=False):
    """One row of `student_daily_stats`: a student's totals for one local date and subject."""

    student_id: str
    date: date
    subject: str
    class_id: str
    school_id: str
    homework_count: int
    homework_completed: int
    homework_avg_score: float
    study_duration_minutes: int
    stroke_count_total: int
    practice_total_chars: int
    practice_count: int
    stroke_order_accuracy: float
    writing_quality_count: int
    writing_quality_avg: float
    writing_speed_avg: float
    error_count: int
    error_knowledge_points: list[str]
    exam_count: int
    exam_avg_score: float
    login_count: int
    # Number of distinct events counted into the row: it only grows, so the
    # newest row wins under ReplacingMergeTree, and equal versions carry
    # equal values, so a re-emitted row changes nothing.
    version: int


class Metric(Struct, frozen=True, gc=False):
    """One row of `analytics_metrics` (the seed's AggregatedMetric)."""

    metric_id: str
    student_id: str
    class_id: str
    school_id: str
    subject: str
    metric_type: str
    metric_value: float
    dimension: str
    period: str
    period_start: date
    period_end: date
    created_at: datetime


class HomeworkResult(Struct, frozen=True, gc=False):
    """One row of `homework_result`: one graded homework (a `grade_result` event)."""

    event_id: str
    student_id: str
    class_id: str
    school_id: str
    homework_id: str
    subject: str
    score_percent: float  # score / total_score * 100
    listed_errors: int  # items in the event's `errors` list
    errors: int  # of them, those with a knowledge point (the ones in error_record)
    questions_with_errors: int  # distinct non-empty question ids among the listed errors
    date: date  # local date
    created_at: datetime  # event time, UTC


class ErrorRecord(Struct, frozen=True, gc=False):
    """One row of `error_record`: a wrong answer with a knowledge point."""

    record_key: str  # hash of (student_id, event_id, position): the unique key
    event_id: str
    position: int  # index in the event's `errors` list
    student_id: str
    class_id: str
    school_id: str
    homework_id: str
    question_id: str
    subject: str
    knowledge_point: str
    error_type: str
    date: date  # local date, for reports by period
    created_at: datetime  # event time, UTC


class StudentMinute(Struct, frozen=True, gc=False):
    """One row of `student_minute_stats`: a student's writing in one event-time window."""

    student_id: str
    class_id: str  # of the latest event in the window that names one
    school_id: str
    window_start: datetime  # UTC, aligned to the epoch
    window_seconds: int
    events: int  # distinct events counted
    strokes: int  # stroke_count of stroke_raw
    stroke_order_count: int
    stroke_order_avg: float  # mean stroke_order score (0-100)
    writing_quality_count: int
    writing_quality_avg: float
    homework_submitted: int
    characters: list[str]  # characters practised (stroke_order), sorted
    character_attempts: list[int]  # per character: stroke_order events
    character_scores: list[float]  # per character: mean stroke_order score
    version: int  # distinct events counted: the newest emission wins


class ClassMinute(Struct, frozen=True, gc=False):
    """One row of `class_minute_stats`: a class's writing in one event-time window."""

    class_id: str
    school_id: str
    window_start: datetime
    window_seconds: int
    active_students: int  # students with at least one event in the window
    events: int
    strokes: int
    stroke_order_count: int
    stroke_order_avg: float
    writing_quality_count: int
    writing_quality_avg: float
    homework_submitted: int
    characters: list[str]
    character_attempts: list[int]
    character_scores: list[float]
    version: int


class DeadLetter(Struct, frozen=True, gc=False):
    """One row of `dead_letter`: a message that could not be counted, and why."""

    origin: str  # file path or Kafka topic
    partition: int  # Kafka partition; 0 for files
    offset: int  # Kafka offset or 1-based line number
    reason: str
    message: str
    raw: str  # the message itself, or its base64 when not UTF-8
    raw_encoding: str  # "utf8" or "base64"
    event_id: str  # known only for valid events dead-lettered later (too_late)
    # when the message was produced (its Kafka timestamp, or its file's
    # modification time): part of the input, so a re-emitted letter is equal
    produced_at: datetime


class ForgetRequest(Struct, frozen=True, gc=False):
    """One row of `forget_requests`: what one deletion request removed from one table."""

    request_id: str
    student_hash: str  # `writech.privacy.student_hash` of the student id, never the id itself
    requested_at: datetime  # messages produced before it are the student's deleted data
    table: str
    rows_removed: int


class Redrive(Struct, frozen=True, gc=False):
    """One row of `dead_letter_redrive`: a dead letter, corrected, produced to the input again."""

    origin: str  # the dead letter's position
    partition: int
    offset: int
    redriven_at: datetime
    topic: str  # where the corrected message went
    topic_partition: int
    topic_offset: int
    event_id: str  # the corrected message's event id (or the hash of its bytes)


# -- the registry -----------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where and how long the ClickHouse tables live: the deployment's part of their DDL.

    `cluster` names a cluster of the servers' `remote_servers`: every
    statement then runs `ON CLUSTER` and the tables are replicated (one
    shard, its replicas). `ttl_days` gives per table name the days a row is
    kept, counted from its time column; a table not named keeps rows forever.
    Built from the settings by `writech.stores.base.layout_of`.
    """

    cluster: str = ""
    ttl_days: Mapping[str, int] = field(default_factory=dict)

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def merge_tree(self, family: str, *parameters: str) -> str:
        """`family`MergeTree with `parameters`, replicated on a cluster."""
        if self.cluster:
            # {uuid} (expanded once, for every replica alike, by ON CLUSTER)
            # gives a rebuilt table a Keeper path of its own.
            parameters = (_REPLICA_PATH, _REPLICA_NAME, *parameters)
            family = f"Replicated{family}"
        return f"{family}MergeTree({', '.join(parameters)})" if parameters else f"{family}MergeTree"

    @property
    def deduplication(self) -> str:
        """The settings under which a retried insert (same token) is dropped.

        A server store sends every insert with a token derived from its
        content (`writech.stores.clickhouse.insert_token`); the table must
        remember recent tokens for longer than a store retries
        (`WRITECH_STORE_DEADLINE`): 1,000 inserts is minutes of a busy
        flow. Replicated tables keep theirs in Keeper, shared by every
        replica, so a retry sent to another replica is dropped as well.
        """
        if self.cluster:
            return "replicated_deduplication_window = 1000, replicated_deduplication_window_seconds = 3600"
        return "non_replicated_deduplication_window = 1000"


_REPLICA_PATH: Final = "'/clickhouse/tables/{uuid}/{shard}'"
_REPLICA_NAME: Final = "'{replica}'"


@dataclass(frozen=True)
class Table:
    """One output table: its columns (with ClickHouse types), read type, storage and layout.

    A ClickHouse table is a ReplacingMergeTree ordered (and deduplicated) by
    `order_by`; among rows of one key the one with the highest `version`
    wins (without one, the last inserted). `ttl` says when a row expires,
    `{days}` standing for the days `Layout.ttl_days` gives the table.
    `filtered_by` names columns readers select by that are not in the key
    (class, school): each gets a bloom-filter skipping index and a view
    (`read_from`).
    """

    name: str
    row: type[Struct]  # the read type; its fields are the columns, in order
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type)
    home: Home = "clickhouse"
    order_by: tuple[str, ...] = ()
    version: str = ""
    partition_by: str = ""
    ttl: str = ""
    codecs: tuple[tuple[str, str], ...] = ()  # (column, CODEC(...) argument)
    filtered_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.column_names != self.row.__struct_fields__:
            raise ValueError(f"{self.name}: columns and {self.row.__name__} disagree")
        named = {*self.order_by, *dict(self.codecs), *self.filtered_by} - {*self.column_names}
        if named:
            raise ValueError(f"{self.name}: no columns {sorted(named)}")
        if self.home == "clickhouse" and not self.order_by:
            raise ValueError(f"{self.name}: a ClickHouse table needs its key (order_by)")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> tuple[str, ...]:
        return tuple(type_ for _, type_ in self.columns)

    def ddl(self, database: str = DATABASE, layout: Layout = Layout(), name: str = "") -> str:
        """The ClickHouse CREATE statement (of a table called `name`, by default its own)."""
        codecs = dict(self.codecs)
        lines = [
            f"`{column}` {type_}" + (f" CODEC({codecs[column]})" if column in codecs else "")
            for column, type_ in self.columns
        ]
        lines += [
            f"INDEX `{column}_bloom` `{column}` TYPE bloom_filter GRANULARITY 1"
            for column in self.filtered_by
        ]
        clauses = [f"ENGINE = {layout.merge_tree('Replacing', *filter(None, [self.version]))}"]
        if self.partition_by:
            clauses.append(f"PARTITION BY {self.partition_by}")
        clauses.append(f"ORDER BY ({', '.join(self.order_by)})")
        if days := self.ttl_days(layout):
            clauses.append(f"TTL {self.ttl.format(days=days)}")
        # Expired rows go a whole part at a time (a month's partition, once
        # merged), and a changed TTL is only recalculated: rewriting big
        # parts to drop a day's rows costs far more.
        clauses.append(
            f"SETTINGS {layout.deduplication}, "
            "ttl_only_drop_parts = 1, materialize_ttl_recalculate_only = 1"
        )
        body = ",\n    ".join(lines)
        return (
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{name or self.name}`{layout.on_cluster} "
            f"(\n    {body}\n)\n" + "\n".join(clauses)
        )

    def ttl_days(self, layout: Layout) -> int:
        """Days this table keeps rows under `layout`; 0 for ever."""
        return layout.ttl_days.get(self.name, 0) if self.ttl else 0

    def views(self, database: str = DATABASE, layout: Layout = Layout()) -> dict[str, str]:
        """The read path: CREATE statements of the table's views, by view name.

        `<table>_latest` is the upserted truth (the table read with FINAL).
        For each column of `filtered_by`, `<table>_by_<column>(<column> = X)`
        is the upserted truth of rows where it is X: the skipping index finds
        the keys that ever had X (a cheap read, without FINAL), and only
        their rows are read with FINAL, through the primary key; the
        condition is applied again after FINAL, since a key's newest row
        may have moved (a student to another class).
        """
        table = f"`{database}`.`{self.name}`"
        key = self.order_by[0]
        views = {f"{self.name}_latest": f"SELECT * FROM {table} FINAL"}
        for column in self.filtered_by:
            value = f"{{{column}:String}}"
            views[f"{self.name}_by_{column}"] = (
                f"SELECT * FROM {table} FINAL WHERE `{key}` IN "
                f"(SELECT `{key}` FROM {table} WHERE `{column}` = {value}) AND `{column}` = {value}"
            )
        return {
            name: f"CREATE VIEW IF NOT EXISTS `{database}`.`{name}`{layout.on_cluster} AS {select}"
            for name, select in views.items()
        }

    def read_from(self, column: str | None = None, parameter: str = "id") -> str:
        """A FROM clause that reads the upserted truth, for readers selecting by `column`.

        Where `column` is one the table is filtered by, its view for the
        value of query parameter `parameter` (a String); otherwise the
        `_latest` view (the key's own columns find their rows by the primary
        key). No reader needs to add FINAL.
        """
        if column in self.filtered_by:
            return f"`{DATABASE}`.`{self.name}_by_{column}`({column} = {{{parameter}:String}})"
        return f"`{DATABASE}`.`{self.name}_latest`"


def error_record_key(student_id: str, event_id: str, position: int) -> str:
    """The unique key of an error record: its event's identity and its position in `errors`."""
    text = f"{student_id}\x1f{event_id}\x1f{position}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# Rows expire by their time column; a Date or DateTime counts as is, a
# DateTime64 through toDateTime.
_DAYS: Final = " + INTERVAL {days} DAY"

STUDENT_DAILY_STATS: Final = Table(
    name="student_daily_stats",
    row=DailyStats,
    columns=(
        ("student_id", "String"),
        ("date", "Date"),
        ("subject", "LowCardinality(String)"),
        ("class_id", "LowCardinality(String)"),
        ("school_id", "LowCardinality(String)"),
        ("homework_count", "UInt32"),
        ("homework_completed", "UInt32"),
        ("homework_avg_score", "Float64"),
        ("study_duration_minutes", "UInt64"),
        ("stroke_count_total", "UInt64"),
        ("practice_total_chars", "UInt64"),
        ("practice_count", "UInt32"),
        ("stroke_order_accuracy", "Float64"),
        ("writing_quality_count", "UInt32"),
        ("writing_quality_avg", "Float64"),
        ("writing_speed_avg", "Float64"),
        ("error_count", "UInt32"),
        ("error_knowledge_points", "Array(LowCardinality(String))"),
        ("exam_count", "UInt32"),
        ("exam_avg_score", "Float64"),
        ("login_count", "UInt32"),
        ("version", "UInt64"),
    ),
    order_by=("student_id", "date", "subject"),
    version="version",
    partition_by="toYYYYMM(date)",
    ttl="date" + _DAYS,
    filtered_by=("class_id", "school_id"),
)

ANALYTICS_METRICS: Final = Table(
    name="analytics_metrics",
    row=Metric,
    columns=(
        ("metric_id", "String"),
        ("student_id", "String"),
        ("class_id", "LowCardinality(String)"),
        ("school_id", "LowCardinality(String)"),
        ("subject", "LowCardinality(String)"),
        ("metric_type", "LowCardinality(String)"),
        ("metric_value", "Float64"),
        ("dimension", "String"),
        ("period", "LowCardinality(String)"),
        ("period_start", "Date"),
        ("period_end", "Date"),
        ("created_at", "DateTime64(6, 'UTC')"),
    ),
    order_by=("student_id", "period_start", "metric_type", "metric_id"),
    partition_by="toYYYYMM(period_start)",
    ttl="period_start" + _DAYS,
    filtered_by=("class_id", "school_id"),
)

HOMEWORK_RESULT: Final = Table(
    name="homework_result",
    row=HomeworkResult,
    columns=(
        ("event_id", "String"),
        ("student_id", "String"),
        ("class_id", "LowCardinality(String)"),
        ("school_id", "LowCardinality(String)"),
        ("homework_id", "String"),
        ("subject", "LowCardinality(String)"),
        ("score_percent", "Float64"),
        ("listed_errors", "UInt32"),
        ("errors", "UInt32"),
        ("questions_with_errors", "UInt32"),
        ("date", "Date"),
        ("created_at", "DateTime64(6, 'UTC')"),
    ),
    order_by=("student_id", "event_id"),
    partition_by="toYYYYMM(date)",
    ttl="date" + _DAYS,
    filtered_by=("class_id", "school_id"),
)

# A dead letter's newest production wins: a re-read message has the same
# time, so it replaces the letter with an equal one; a letter migrated from
# a store that had no produced_at holds 1970-01-01 there (unknown), and any
# letter written since for the same position replaces it. The TTL leaves
# those unknown times alone (they sit in partition 197001, to be dropped by
# hand once read: docs/operations.md).
DEAD_LETTER: Final = Table(
    name="dead_letter",
    row=DeadLetter,
    columns=(
        ("origin", "LowCardinality(String)"),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("reason", "LowCardinality(String)"),
        ("message", "String"),
        ("raw", "String"),
        ("raw_encoding", "LowCardinality(String)"),
        ("event_id", "String"),
        ("produced_at", "DateTime64(6, 'UTC')"),
    ),
    order_by=("origin", "partition", "offset"),
    version="produced_at",
    partition_by="toYYYYMM(produced_at)",
    ttl="toDateTime(produced_at)" + _DAYS + " WHERE produced_at > 0",
    # raw messages of up to 1 MiB, and messages naming what is wrong with them
    codecs=(("message", "ZSTD(3)"), ("raw", "ZSTD(3)")),
)

# Types as ClickHouse would name them; each SQL store maps them to its own
# (`writech.stores.sql`).
ERROR_RECORD: Final = Table(
    name="error_record",
    row=ErrorRecord,
    home="sql",
    columns=(
        ("record_key", "String"),
        ("event_id", "String"),
        ("position", "Int32"),
        ("student_id", "String"),
        ("class_id", "String"),
        ("school_id", "String"),
        ("homework_id", "String"),
        ("question_id", "String"),
        ("subject", "String"),
        ("knowledge_point", "String"),
        ("error_type", "String"),
        ("date", "Date"),
        ("created_at", "DateTime64(6, 'UTC')"),
    ),
)

_WINDOW_MEASURES: Final = (
    ("events", "UInt32"),
    ("strokes", "UInt64"),
    ("stroke_order_count", "UInt32"),
    ("stroke_order_avg", "Float64"),
    ("writing_quality_count", "UInt32"),
    ("writing_quality_avg", "Float64"),
    ("homework_submitted", "UInt32"),
    ("characters", "Array(LowCardinality(String))"),
    ("character_attempts", "Array(UInt32)"),
    ("character_scores", "Array(Float64)"),
    ("version", "UInt64"),
)

STUDENT_MINUTE_STATS: Final = Table(
    name="student_minute_stats",
    row=StudentMinute,
    columns=(
        ("student_id", "String"),
        ("class_id", "LowCardinality(String)"),
        ("school_id", "LowCardinality(String)"),
        ("window_start", "DateTime('UTC')"),
        ("window_seconds", "UInt32"),
        *_WINDOW_MEASURES,
    ),
    order_by=("student_id", "window_start"),
    version="version",
    partition_by="toYYYYMM(window_start)",
    ttl="window_start" + _DAYS,
    filtered_by=("class_id", "school_id"),
)

CLASS_MINUTE_STATS: Final = Table(
    name="class_minute_stats",
    row=ClassMinute,
    columns=(
        ("class_id", "String"),
        ("school_id", "LowCardinality(String)"),
        ("window_start", "DateTime('UTC')"),
        ("window_seconds", "UInt32"),
        ("active_students", "UInt32"),
        *_WINDOW_MEASURES,
    ),
    order_by=("class_id", "window_start"),
    version="version",
    partition_by="toYYYYMM(window_start)",
    ttl="window_start" + _DAYS,
    filtered_by=("school_id",),
)

# Written by `writech forget` and `writech dead-letters redrive`, never by the flow.
# The record of deletions is kept for good (no TTL).
FORGET_REQUESTS: Final = Table(
    name="forget_requests",
    row=ForgetRequest,
    columns=(
        ("request_id", "String"),
        ("student_hash", "String"),
        ("requested_at", "DateTime64(6, 'UTC')"),
        ("table", "LowCardinality(String)"),
        ("rows_removed", "UInt64"),
    ),
    order_by=("request_id", "table"),
    partition_by="toYYYYMM(requested_at)",
)

DEAD_LETTER_REDRIVE: Final = Table(
    name="dead_letter_redrive",
    row=Redrive,
    columns=(
        ("origin", "String"),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("redriven_at", "DateTime64(6, 'UTC')"),
        ("topic", "String"),
        ("topic_partition", "Int32"),
        ("topic_offset", "Int64"),
        ("event_id", "String"),
    ),
    order_by=("origin", "partition", "offset", "redriven_at"),
    partition_by="toYYYYMM(redriven_at)",
    ttl="toDateTime(redriven_at)" + _DAYS,
)

TABLES: Final = (
    STUDENT_DAILY_STATS,
    ANALYTICS_METRICS,
    HOMEWORK_RESULT,
    ERROR_RECORD,
    DEAD_LETTER,
    STUDENT_MINUTE_STATS,
    CLASS_MINUTE_STATS,
    FORGET_REQUESTS,
    DEAD_LETTER_REDRIVE,
)
CLICKHOUSE_TABLES: Final = tuple(table for table in TABLES if table.home == "clickhouse")
TABLES_BY_NAME: Final = {table.name: table for table in TABLES}

# The schema this release writes: raise it with a `writech.stores.migrations`
# entry whenever a store must change (a column, a key, what a value means).
SCHEMA_VERSION: Final = 3


def error_record_sqlite_ddl(name: str = "error_record") -> str:
    """SQLite's CREATE statement of `error_record` (under another `name` while rebuilt)."""
    # Free-text columns are TEXT: any string an event carries must fit whole.
    return f"""\
CREATE TABLE IF NOT EXISTS {name} (
    record_key TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    student_id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    school_id TEXT NOT NULL,
    homework_id TEXT NOT NULL,
    question_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    knowledge_point TEXT NOT NULL,
    error_type TEXT NOT NULL,
    date TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (student_id, event_id, position)
)"""


# MySQL types of error_record's columns that are not free text. Free text is
# LONGTEXT: an event's strings are bounded only by the message size (1 MiB by
# default, `WRITECH_MAX_MESSAGE_BYTES`), and TEXT holds 64 KiB, so a longer
# knowledge point failed the insert, and a restart failed on it again.
_MYSQL_TYPES: Final = {
    "record_key": "CHAR(32) CHARACTER SET ascii NOT NULL PRIMARY KEY",
    "position": "INT NOT NULL",
    "student_id": "VARCHAR(64) NOT NULL",  # SPEC §1: at most 64 characters
    "date": "DATE NOT NULL",
    "created_at": "DATETIME(6) NOT NULL",
}
ERROR_RECORD_MYSQL_LONG_TEXT: Final = tuple(
    name for name in ERROR_RECORD.column_names if name not in _MYSQL_TYPES
)


def error_record_mysql_ddl(name: str = "error_record") -> str:
    """MySQL's CREATE statement of `error_record` (under another `name` while rebuilt)."""
    # record_key is a hash of the identity (student, event id, position), so
    # one fixed-width key serves as the unique key for event ids of any length.
    columns = "".join(
        f"    {column} {_MYSQL_TYPES.get(column, 'LONGTEXT NOT NULL')},\n"
        for column in ERROR_RECORD.column_names
    )
    return f"""\
CREATE TABLE IF NOT EXISTS {name} (
{columns}    KEY student_date (student_id, date)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"""


ERROR_RECORD_SQLITE_DDL: Final = error_record_sqlite_ddl()
ERROR_RECORD_MYSQL_DDL: Final = error_record_mysql_ddl()
ERROR_RECORD_SQLITE_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS error_record_student_date ON error_record (student_id, date)",
)
