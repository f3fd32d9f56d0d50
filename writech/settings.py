"""Configuration: one typed settings object, read from the environment.

Every field `name` is set by the variable `WRITECH_<NAME>` (or by the key
`name` in the TOML file named by `WRITECH_CONFIG`; the environment wins).
`WRITECH_<NAME>_FILE` reads the value from a file instead, as Kubernetes
mounts secrets. Values are validated at start-up; a bad one raises
`SettingsError` naming the variable. Secrets never appear in `repr`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from writech.redaction import MASK, redact, url_password

PREFIX: Final = "WRITECH_"
SAMPLE_DATA: Final = Path(__file__).parent / "sample" / "events.jsonl.gz"

Positive = Annotated[int, Meta(ge=1)]
# Finite durations: a year at most (inf would overflow later, far from its variable).
Seconds = Annotated[float, Meta(gt=0, le=365 * 86400)]

# Fields whose values may hold credentials: masked in repr and logs.
SECRET_FIELDS: Final = frozenset(
    {"clickhouse_url", "clickhouse_password", "mysql_url", "mysql_password", "kafka_options"}
)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    # -- input ------------------------------------------------------------
    source: Literal["files", "kafka"] = "files"
    # JSON-lines files or directories of them (files source); the bundled
    # sample when empty.
    input_paths: tuple[str, ...] = ()
    kafka_brokers: tuple[str, ...] = ("localhost:9092",)
    kafka_topics: tuple[str, ...] = ("writech-events",)
    kafka_dlq_topic: str = "writech-dead-letters"
    # Exit once every partition is drained (backfills and tests).
    kafka_stop_at_end: bool = False
    # Extra librdkafka options (SASL, TLS, ...), as "key=value,key=value".
    kafka_options: dict[str, str] = {}
    # When a Kafka partition's stored offset was deleted by the broker's
    # retention before it was read: "earliest" continues from the oldest
    # retained message (a warning, and the offsets skipped are counted),
    # "error" stops. An offset beyond the partition's end always stops.
    kafka_offset_reset: Literal["earliest", "error"] = "earliest"
    # A consumer group to commit each partition's next offset to after
    # every snapshot, for lag monitoring only (never read back); empty: none.
    kafka_commit_group: str = ""
    # Messages per source batch: Bytewax's cost is per item, and a shard's
    # per-step cost is paid per batch (10,000 against 2,000: a replay in 0.85x the time).
    # At most a million: confluent-kafka's consume() refuses more, at the first poll.
    batch_size: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000

    # -- outputs ----------------------------------------------------------
    data_dir: str = "data"
    # http(s)://user:password@host:port/database; empty: embedded chDB
    clickhouse_url: str = ""
    # mysql://user:password@host:port/database; empty: embedded SQLite
    mysql_url: str = ""
    # The servers' passwords, when not in their URLs (no percent-encoding
    # needed here; usually given as WRITECH_*_PASSWORD_FILE).
    clickhouse_password: str = ""
    mysql_password: str = ""
    # Every network request to a store (connect, send, receive) gives up
    # after this many seconds; a store failing for longer than
    # `store_deadline` seconds, retries included, stops the run.
    store_timeout: Seconds = 20.0
    store_deadline: Seconds = 60.0
    # Days a dead letter's raw message is kept, counted from when it was
    # produced (the table's TTL): raw messages are personal data (PIPL:
    # kept no longer than needed). 0 keeps them until deleted.
    dead_letter_ttl_days: Annotated[int, Meta(ge=0)] = 30
    # Days the other tables keep a row, counted from its date (the TTL; 0:
    # until deleted): daily statistics, metrics and graded homework; the
    # live board's minute windows. `writech migrate` applies a change.
    stats_ttl_days: Annotated[int, Meta(ge=0)] = 0
    minute_stats_ttl_days: Annotated[int, Meta(ge=0)] = 0
    # A cluster of the ClickHouse servers' `remote_servers` (one shard, its
    # replicas): the DDL runs ON CLUSTER and the tables are replicated.
    # Empty: one server.
    clickhouse_cluster: str = ""

    # -- semantics (changing these changes results) ------------------------
    timezone: str = "Asia/Shanghai"
    retention_days: Positive = 7
    # Event-time windows of the live class board (student_minute_stats,
    # class_minute_stats): their length, and how long after a window ends
    # a late event may still change it (the state keeps that much; by
    # default the retention of SPEC §5).
    window_seconds: Annotated[int, Meta(ge=1, le=86400)] = 60
    window_lateness: Annotated[int, Meta(ge=0)] | None = None
    max_future_skew: Seconds = 86400.0
    # A too_large dead letter keeps this much of its message: at most 256 MiB, so
    # that a letter fits a Kafka record (10^9 bytes at most, librdkafka refuses a
    # producer allowing more) and, escaped, a MySQL packet (1 GiB at most).
    max_message_bytes: Annotated[int, Meta(ge=1, le=1 << 28)] = 1 << 20
    # Number of state shards students are hashed into. Part of the recovery
    # state's layout: it must not change between a snapshot and a resume.
    shards: Annotated[int, Meta(ge=1, le=4096)] = 64

    # -- timing -----------------------------------------------------------
    # A changed daily row is written at most once per this many seconds.
    flush_interval: Seconds = 2.0
    # Rows of one table are inserted together, once per flush interval or
    # as soon as this many are pending: few large inserts are cheap. Each
    # insert holds its rows as Python lists and as Arrow at once (~20 MiB
    # for 50,000 rows): 20,000 kept a replay's peak 28 MiB lower at
    # the same speed. Below ~13,000 events/s the interval comes first.
    sink_batch_rows: Positive = 20_000

    # -- the teachers' web app (`writech serve`) ----------------------------
    # Who may sign in, and which school each one sees (TOML; README's
    # "Live class board"). Re-read when it changes. Required to serve.
    serve_access_file: str = ""
    # Display names for student and class ids (a roster CSV, as for
    # `writech report --roster`); empty: ids are shown.
    serve_roster_file: str = ""
    # On the live board, a student with no event in this many minutes is
    # silent, and "the characters right now" are those practised in them.
    serve_recent_minutes: Annotated[int, Meta(ge=1, le=120)] = 5
    # Seconds between the live board's refreshes.
    serve_refresh_seconds: Annotated[float, Meta(ge=1, le=300)] = 5.0

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{PREFIX}TIMEZONE: unknown time zone {self.timezone!r}") from None
        if self.source == "kafka":
            _refuse_topics(self.kafka_topics, self.kafka_dlq_topic)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={MASK if name in SECRET_FIELDS and getattr(self, name) else repr(getattr(self, name))}"
            for name in self.__struct_fields__
        )
        return f"Settings({fields})"

    __str__ = __repr__

    @property
    def lateness_seconds(self) -> int:
        """How long a window accepts late events: `window_lateness`, else the retention."""
        return self.retention_days * 86400 if self.window_lateness is None else self.window_lateness

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def future_skew(self) -> timedelta:
        return timedelta(seconds=self.max_future_skew)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.input_paths or (str(SAMPLE_DATA),)

    @property
    def clickhouse_dir(self) -> Path:
        return Path(self.data_dir) / "clickhouse"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.data_dir) / "writech.db"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `WRITECH_CONFIG`'s TOML file, the environment, then `overrides`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config = environ.get(f"{PREFIX}CONFIG")
        if config:
            try:
                values.update(tomllib.loads(Path(config).read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"{PREFIX}CONFIG: cannot read {config}: {exc}") from None
        for name in cls.__struct_fields__:
            variable = PREFIX + name.upper()
            if variable + "_FILE" in environ:
                path = environ[variable + "_FILE"]
                try:
                    values[name] = _parse(name, Path(path).read_text().strip())
                except OSError as exc:
                    raise SettingsError(
                        f"{variable}_FILE: cannot read {path}: {exc.strerror}"
                    ) from None
            elif variable in environ:
                values[name] = _parse(name, environ[variable])
        values.update(overrides)
        unknown = sorted(set(values) - set(cls.__struct_fields__))
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_name_the_setting(str(exc))) from None

    def redact(self, text: str) -> str:
        """`text` with every secret this configuration holds masked (`writech.redaction`)."""
        return redact(text, self.secrets())

    def secrets(self) -> list[str]:
        """Every secret value configured: passwords as written and decoded, Kafka secrets."""
        passwords = [url_password(url) for url in (self.clickhouse_url, self.mysql_url)]
        found = [
            *passwords,
            *map(unquote, passwords),
            self.clickhouse_password,
            self.mysql_password,
        ]
        found += [
            value
            for key, value in self.kafka_options.items()
            if "password" in key or "secret" in key or key in _KAFKA_SECRET_OPTIONS
        ]
        return [secret for secret in found if secret]


# What Kafka accepts as a topic's name (its `Topic.validate`): ASCII letters,
# digits, '.', '_' and '-', at most 249 of them, and not "." or "..".
_TOPIC_NAME: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _refuse_topics(topics: tuple[str, ...], dead_letter_topic: str) -> None:
    """Refuse the Kafka source's topics unless the dataflow can read them and send its
    dead letters elsewhere.

    With no topic, or one no broker can hold, the dataflow would wait without
    end: silently for no topic, for a topic to be created for the others. A
    pattern such as "^events.*" is one of them: partitions are assigned, not
    subscribed to, and librdkafka reads a leading '^' as a pattern only in a
    subscription.
    """
    if not topics:
        raise SettingsError(f"{PREFIX}KAFKA_TOPICS names no topic to read")
    named = [(f"{PREFIX}KAFKA_TOPICS", topic) for topic in topics]
    if dead_letter_topic:  # empty: dead letters stay in the stores
        named.append((f"{PREFIX}KAFKA_DLQ_TOPIC", dead_letter_topic))
    for variable, topic in named:
        refuse_unless_topic_name(variable, topic)
    if dead_letter_topic in topics:
        # its letters would be read again, fail again and be sent again, without end
        raise SettingsError(
            f"{PREFIX}KAFKA_DLQ_TOPIC: {dead_letter_topic!r} is also one of "
            f"{PREFIX}KAFKA_TOPICS, which are read: dead letters would come back as input "
            "and be dead-lettered again without end; give them a topic of their own"
        )


def refuse_unless_topic_name(where: str, topic: str) -> None:
    """Refuse `topic`, named by `where` (a variable, an option), unless Kafka can hold it."""
    if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        raise SettingsError(
            f"{where}: {topic!r} is not a Kafka topic name (ASCII letters, digits, "
            "'.', '_' and '-', at most 249; not a pattern)"
        )


_LIST_FIELDS: Final = frozenset({"input_paths", "kafka_brokers", "kafka_topics"})
# librdkafka options holding a secret without saying so in their name: a
# private key inline, and OAUTHBEARER's config (its clientSecret, say).
_KAFKA_SECRET_OPTIONS: Final = frozenset({"ssl.key.pem", "sasl.oauthbearer.config"})


def _parse(name: str, text: str) -> Any:
    """An environment string in the shape its field wants."""
    if name in _LIST_FIELDS:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if name == "kafka_options":
        options = {}
        items = [item for item in (part.strip() for part in text.split(",")) if item]
        for number, item in enumerate(items, 1):
            key, sep, value = item.partition("=")
            if not sep:
                # Not shown: it may be a secret, or the part of one after a ','
                # (`sasl.password=a,b`), which no masking would know to hide.
                raise SettingsError(
                    f"{PREFIX}KAFKA_OPTIONS: item {number} of {len(items)} is not key=value "
                    "(not shown, as it may be part of a secret); a value cannot hold ',' "
                    f"here: put such an option in the [kafka_options] table of {PREFIX}CONFIG"
                )
            options[key.strip()] = value.strip()
        return options
    return text


def _name_the_setting(message: str) -> str:
    """Turn msgspec's `... - at `$.field`` into a message naming the variable."""
    text, _, path = message.partition(" - at `$.")
    field = path.partition("`")[0].split(".")[0].split("[")[0]
    if field:
        return f"{PREFIX}{field.upper()}: {text}"
    return message
