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

from dataclasses import dataclass
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
    list[str], list[int], list[float],  # characters, character_attempts, character_scores
    int,  # version
]  # fmt: skip
ClassMinuteRow = tuple[
    str, str,  # class_id, school_id
    int, int,  # window_start, window_seconds
    int, int, int,  # active_students, events, strokes
    int, float, int, float,  # stroke_order_count, _avg, writing_quality_count, _avg
    int,  # homework_submitted
    list[str], list[int], list[float],  # characters, character_attempts, character_scores
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
class Table:
    """One output table: its columns (with ClickHouse types), read type and storage."""

    name: str
    row: type[Struct]  # the read type; its fields are the columns, in order
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type)
    home: Home = "clickhouse"
    engine: str = ""  # ClickHouse tables: the ENGINE clause

    def __post_init__(self) -> None:
        if self.column_names != self.row.__struct_fields__:
            raise ValueError(f"{self.name}: columns and {self.row.__name__} disagree")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> tuple[str, ...]:
        return tuple(type_ for _, type_ in self.columns)

    def ddl(self, database: str = DATABASE) -> str:
        """The ClickHouse CREATE statement."""
        columns = ",\n    ".join(f"`{name}` {type_}" for name, type_ in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{self.name}` (\n"
            f"    {columns}\n) {self.engine}"
        )


# Inserts into a ClickHouse server carry a deduplication token derived from
# their content, so a retried insert is dropped by the server; the window
# must be non-zero for non-replicated tables to remember tokens.
_DEDUP: Final = "SETTINGS non_replicated_deduplication_window = 1000"

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
        ("error_knowledge_points", "Array(String)"),
        ("exam_count", "UInt32"),
        ("exam_avg_score", "Float64"),
        ("login_count", "UInt32"),
        ("version", "UInt64"),
    ),
    engine=(
        "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(date) "
        f"ORDER BY (student_id, date, subject) {_DEDUP}"
    ),
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
    engine=(
        "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(period_start) "
        f"ORDER BY (student_id, period_start, metric_type, metric_id) {_DEDUP}"
    ),
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
    engine=(
        "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(date) "
        f"ORDER BY (student_id, event_id) {_DEDUP}"
    ),
)

DEAD_LETTER: Final = Table(
    name="dead_letter",
    row=DeadLetter,
    columns=(
        ("origin", "String"),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("reason", "LowCardinality(String)"),
        ("message", "String"),
        ("raw", "String"),
        ("raw_encoding", "LowCardinality(String)"),
        ("event_id", "String"),
        ("produced_at", "DateTime64(6, 'UTC')"),
    ),
    engine=f"ENGINE = ReplacingMergeTree ORDER BY (origin, partition, offset) {_DEDUP}",
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
    ("characters", "Array(String)"),
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
    engine=(
        "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) "
        f"ORDER BY (student_id, window_start) {_DEDUP}"
    ),
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
    engine=(
        "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) "
        f"ORDER BY (class_id, window_start) {_DEDUP}"
    ),
)

# Written by `writech forget` and `writech dead-letters redrive`, never by the flow.
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
    engine="ENGINE = ReplacingMergeTree ORDER BY (request_id, table)",
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
    engine="ENGINE = ReplacingMergeTree ORDER BY (origin, partition, offset, redriven_at)",
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

# Free-text columns are TEXT: any string an event carries must fit whole.
ERROR_RECORD_SQLITE_DDL: Final = """\
CREATE TABLE IF NOT EXISTS error_record (
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

ERROR_RECORD_SQLITE_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS error_record_student_date ON error_record (student_id, date)",
)

# record_key is a hash of the identity (student, event id, position), so one
# fixed-width key serves as the unique key for event ids of any length.
ERROR_RECORD_MYSQL_DDL: Final = """\
CREATE TABLE IF NOT EXISTS error_record (
    record_key CHAR(32) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    event_id TEXT NOT NULL,
    position INT NOT NULL,
    student_id VARCHAR(64) NOT NULL,
    class_id TEXT NOT NULL,
    school_id TEXT NOT NULL,
    homework_id TEXT NOT NULL,
    question_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    knowledge_point TEXT NOT NULL,
    error_type TEXT NOT NULL,
    date DATE NOT NULL,
    created_at DATETIME(6) NOT NULL,
    KEY student_date (student_id, date)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"""
