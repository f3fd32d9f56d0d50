"""Kafka topics as a Bytewax source (SPEC §7).

Bytewax's `KafkaSource` lists the topics' partitions (parts named
"<partition>-<topic>", spread over the workers by Bytewax); each is read by
a partition built here on a confluent-kafka consumer of its own rather than
by the connector's, for what production needs from it:

- Brokers that do not answer yet, or topics not created yet, are waited
  for as the flow is built (`wait_for_topics`), saying so every few seconds
  and ending at a stop request: the connector's listing would wait in
  silence, deaf to SIGTERM.
- No offset moves silently. librdkafka's `auto.offset.reset` is "error".
  A next offset below the oldest retained one (deleted by the broker's
  retention before it was read) follows `kafka_offset_reset`: continue from
  the oldest, with a warning and `writech_kafka_offsets_skipped`, or stop.
  A next offset beyond the partition's end (the topic re-created, the
  broker's log lost) always stops the run with `KafkaPositionError`; it is
  checked against the watermarks of every fetch, the first one after a
  resume included.
- The topic's identity is checked too: the broker's id of the topic is
  kept in the snapshot and asked again when a partition starts and every
  few seconds. A topic deleted while it is read, or deleted and created
  again since the snapshot (even with more messages than were read), stops
  the run with `KafkaPositionError`.
- Partitions added to a topic while it is read stop the run with
  `PartitionsAdded` (noticed by the same question): Bytewax lists the
  partitions once, when the flow is built, so the new ones would go unread
  until someone restarted it. The next start reads them from their start.
- A record's timestamp (CreateTime or LogAppendTime) is its `produced_at`,
  the reference of the future-skew check, so that a message re-read after
  a resume is judged as it was the first time. A record without one takes
  the newest timestamp read before it in its partition (kept in the
  snapshot); only a partition that never had one falls back to the clock.
- `writech_kafka_consumer_lag{topic,partition}`: messages between the next
  offset to read and the partition's high watermark; with
  `kafka_commit_group` set, each snapshot's next offset is also committed to
  that consumer group for the usual lag tools (monitoring only: a resume
  reads offsets from the recovery store, never from the group).

Each consumer batch becomes ONE `RawBatch` (Bytewax's cost is per item). A
transient consumer error becomes a `broker_error` dead letter in the batch
instead of stopping the flow; a record without a value is passed on as
empty bytes (it then dead-letters as an empty message).

Why not the connector's partition: it leaves `auto.offset.reset` at
librdkafka's default (the partition's end: offsets out of range are skipped
without a word) and knows nothing of the topic's identity. The segmentation
fault seen when a topic is deleted mid-run was suspected to come from its
statistics callback, which indexes librdkafka's statistics by topic; it does
not (they still list a deleted topic for a while). The fault is librdkafka's
own (2.16, as confluent-kafka 2.16 bundles it), with statistics off and with
a bare consumer alike: a fetch reply for an unknown topic that carries a
leader hint but no topic id (Tansu's answer for a deleted topic) makes it
look the topic up in its metadata cache by a NULL name, which crashes
whenever that cache holds any topic.

The consumers here therefore keep metadata cached for 10 ms only
(`metadata.max.age.ms`); they need none between fetches, and with an empty
cache librdkafka logs "Topic (null) not found in cache" instead. The price
is one metadata request per second and consumer (librdkafka refreshes a
topic whose metadata expired), and what remains of the risk: a deletion
answered within the 10 ms after such a refresh still crashes (none did in
the tests). For the same reason topic ids are asked by a separate admin
client, whose cache may hold what it likes: it never fetches.

Settings used: `kafka_brokers`, `kafka_topics`, `batch_size`,
`kafka_stop_at_end` (exit once every partition is drained),
`kafka_offset_reset`, `kafka_commit_group` and `kafka_options`, passed to
librdkafka as they are (SASL, TLS, a `group.id` where ACLs require one).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple

import msgspec
from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from writech import counters
from writech.events import RawBatch, dead_letter
from writech.failures import Interrupted, stop_requested, stopped_by, wait_for_stop
from writech.logs import LIBRDKAFKA
from writech.schema import DeadLetterRow
from writech.settings import PREFIX, Settings, SettingsError

log = logging.getLogger(__name__)

# Where a consumer error carries no offset of its own.
NO_OFFSET: Final = -1
# How long one poll of a partition's consumer may wait for records.
POLL_SECONDS: Final = 0.001
# How often a partition asks the broker whether its topic still exists,
# and how long it waits for the answer.
WATCH_SECONDS: Final = 5.0
WATCH_TIMEOUT_SECONDS: Final = 2.0
# How long a consumer's librdkafka keeps metadata cached (see the module docstring).
METADATA_MAX_AGE_MS: Final = 10
# The group id librdkafka requires; no group is joined, and none committed
# to unless `kafka_commit_group` names one.
UNUSED_GROUP: Final = "BYTEWAX_IGNORED"

# How long one attempt to reach the brokers at start-up waits for an answer,
# and the pause between attempts while a topic does not exist yet.
BROKER_WAIT_SECONDS: Final = 5.0

# What a fetch says when the offset asked for is not in the partition's log.
_OUT_OF_RANGE: Final = frozenset({KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE})
# What librdkafka and the broker say of a topic or partition that is gone.
_GONE: Final = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.UNKNOWN_TOPIC_ID,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
    }
)


class KafkaPositionError(RuntimeError):
    """A partition cannot go on from its offset without silently skipping or mixing messages."""


class KafkaPosition(msgspec.Struct, frozen=True):
    """A Kafka partition's state."""

    next_offset: int | None  # None: nothing read yet; start at the oldest retained record
    # The newest record timestamp read, in seconds: the `produced_at` of a
    # record that has none.
    newest_timestamp: float | None = None
    # The broker's id of the topic: another one means the topic was deleted
    # and created again, its offsets counting from 0 again.
    topic_id: str | None = None

    @property
    def position(self) -> int | None:
        return self.next_offset

    @classmethod
    def of(cls, state: KafkaPosition | int | None) -> KafkaPosition:
        """The position a resume state means; stores written by Bytewax's own partition hold
        the next offset alone (negative when nothing was read)."""
        if isinstance(state, KafkaPosition):
            return state
        return cls(state if state is not None and state >= 0 else None)


def out_of_range(next_offset: int, low: int, high: int) -> Literal["deleted", "beyond_end"] | None:
    """Whether `next_offset` lies outside a partition's log of offsets `low` to `high` - 1.

    Reading may stand at `high`, waiting for the next message; anything
    beyond it means the partition's offsets started over.
    """
    if next_offset > high:
        return "beyond_end"
    if next_offset < low:
        return "deleted"
    return None


def beyond_end_message(topic: str, partition: int, next_offset: int, high: int) -> str:
    return (
        f"Kafka topic {topic!r} partition {partition}: the next offset to read, {next_offset:,}, "
        f"is beyond the partition's end, {high:,}. Its offsets started over (the topic was "
        "deleted and created again, or the broker lost its log), so the recovery store's "
        "positions no longer point at the messages they were taken at, and reading on would "
        "skip or mix them up. Start a new recovery store (writech recovery init --dir NEW; or "
        "delete this one and init it again) to read the topic from its start."
    )


def deleted_message(topic: str, partition: int, next_offset: int, low: int) -> str:
    return (
        f"Kafka topic {topic!r} partition {partition}: offsets {next_offset:,} to {low - 1:,} "
        f"were deleted by the broker's retention before they were read; the oldest retained "
        f"offset is {low:,}."
    )


def gone_message(topic: str, partition: int, next_offset: int | None, error: str) -> str:
    where = "before anything was read" if next_offset is None else f"at offset {next_offset:,}"
    return (
        f"Kafka topic {topic!r} partition {partition} no longer exists on the broker ({error}): "
        f"it was deleted while being read, {where}. If it is created again, its offsets start "
        "over: start a new recovery store (writech recovery init --dir NEW) to read it from "
        "its start; if it is gone for good, remove it from "
        f"{PREFIX}KAFKA_TOPICS and start a new recovery store."
    )


def recreated_message(
    topic: str, partition: int, next_offset: int | None, was: str, now: str
) -> str:
    where = "" if next_offset is None else f" (the next offset to read is {next_offset:,})"
    return (
        f"Kafka topic {topic!r} partition {partition}: the topic is not the one the recovery "
        f"store read (its id was {was}, it is {now}): it was deleted and created again, or the "
        "broker lost its log. Its offsets start over, so the store's positions no longer point "
        f"at the messages they were taken at{where}, and reading on would skip or mix them up. "
        "Start a new recovery store (writech recovery init --dir NEW; or delete this one and "
        "init it again) to read the topic from its start."
    )


def added_message(topic: str, was: int, now: int) -> str:
    return (
        f"Kafka topic {topic!r} has {now} partitions now, {was} when this run started: the run "
        "stops so that its next start reads the new ones, from their start (the others go on "
        "where the recovery store's snapshot left them). Start it again; under Kubernetes the "
        "pod restarts by itself."
    )


class PartitionsAdded(RuntimeError):
    """A topic has more partitions than when the run started: only a new start reads them."""


class TopicGone(Exception):
    """The broker does not know the topic (any more)."""


class Topic(NamedTuple):
    """What the broker says of a topic: its id and how many partitions it has."""

    id: str
    partitions: int


class Topics:
    """Asks the broker about topics, through an admin client of its own.

    Not through the consumers: a metadata answer would fill a consumer's
    cache, which must stay empty (see the module docstring).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._admin = AdminClient(config)

    def __call__(self, topic: str) -> Topic | None:
        """The topic as the broker has it; None while it does not answer; `TopicGone` once it
        is gone."""
        [future] = self._admin.describe_topics(
            TopicCollection([topic]), request_timeout=WATCH_TIMEOUT_SECONDS
        ).values()
        try:
            description = future.result(2 * WATCH_TIMEOUT_SECONDS)
            return Topic(str(description.topic_id), len(description.partitions))
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in _GONE:
                raise TopicGone(error.str()) from None
            return None
        except TimeoutError:
            return None
        finally:
            # An admin client hands its librdkafka lines to the logger only when
            # polled; they would pile up in it otherwise.
            self._admin.poll(0)


def config_error(exc: KafkaException) -> SettingsError:
    """What librdkafka's refusal to make a client says, as a setting error.

    It refuses only for its configuration: an unknown property, a value of
    the wrong kind, a TLS file it cannot read. That ended the dataflow's
    start in a traceback, exit 1, as if it were a bug.
    """
    error: KafkaError = exc.args[0]
    return SettingsError(
        f"{PREFIX}KAFKA_BROKERS and {PREFIX}KAFKA_OPTIONS make no Kafka client: {error.str()}"
    )


def admin_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka configuration of the admin clients (topic ids, the wait at start-up)."""
    return {
        "bootstrap.servers": ",".join(settings.kafka_brokers),
        **settings.kafka_options,
        "logger": LIBRDKAFKA,  # its lines handed over by `poll(0)` after each request
    }


def _exists(admin: AdminClient, topic: str) -> bool:
    """Whether the brokers hold `topic` (asking may create it, where the brokers do that);
    `KafkaException` when they do not answer, or refuse (an ACL, say)."""
    metadata = admin.list_topics(topic, timeout=BROKER_WAIT_SECONDS).topics[topic]
    if metadata.error is None:
        return True
    if metadata.error.code() in _GONE:
        return False
    raise KafkaException(metadata.error)


def consumer_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka configuration of every partition's consumer."""
    if "auto.offset.reset" in settings.kafka_options:
        raise SettingsError(
            f"{PREFIX}KAFKA_OPTIONS: auto.offset.reset is not an option here; "
            f"{PREFIX}KAFKA_OFFSET_RESET says what happens to offsets deleted by retention"
        )
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(settings.kafka_brokers),
        "group.id": UNUSED_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": settings.kafka_stop_at_end,
        "metadata.max.age.ms": METADATA_MAX_AGE_MS,
        **settings.kafka_options,
        "auto.offset.reset": "error",
        "on_commit": _log_failed_commit,
        "logger": LIBRDKAFKA,  # its lines handed over by `consume`
    }
    if settings.kafka_commit_group:
        config["group.id"] = settings.kafka_commit_group
    return config


def _log_failed_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    failed = [tp for tp in partitions if tp.error is not None]
    if error is not None or failed:
        log.warning(
            "committing Kafka offsets to the consumer group failed (monitoring only): %s",
            error or "; ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed),
        )


def kafka_source(settings: Settings) -> KafkaBatchSource:
    """The source of the configured topics, once the brokers answer and hold them all.

    Waited for here, as the flow is built: Bytewax lists the partitions only
    once it runs, where an exception (a stop request, say) ends in a panic.
    """
    source = KafkaBatchSource(settings)
    source.wait_for_topics()
    return source


class KafkaPartition(StatefulSourcePartition[RawBatch, KafkaPosition]):
    """One Kafka partition read by its own consumer, each consumer batch one `RawBatch`."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        partition: int,
        resume: KafkaPosition,
        settings: Settings,
        topics: Callable[[str], Topic | None],
        partitions: int | None = None,
    ) -> None:
        """`partitions`: the topic's partitions when the flow was built (None: as the broker
        first says)."""
        self._consumer = consumer
        self._topic = topic
        self._partition = partition
        self._topics = topics
        self._partitions = partitions
        self._next_offset = resume.next_offset
        self._newest = resume.newest_timestamp
        self._topic_id = resume.topic_id
        self._batch_size = settings.batch_size
        self._stop_at_end = settings.kafka_stop_at_end
        self._offset_reset = settings.kafka_offset_reset
        self._commits = bool(settings.kafka_commit_group)
        self._committed = resume.next_offset
        self._drained = False
        self._next_watch = time.monotonic()  # the topic's identity is checked first of all
        self._lag = counters.KAFKA_CONSUMER_LAG.labels(topic, str(partition))
        self._skipped = counters.KAFKA_OFFSETS_SKIPPED.labels(topic, str(partition))
        self._assign(OFFSET_BEGINNING if resume.next_offset is None else resume.next_offset)

    def next_batch(self) -> list[RawBatch]:
        if self._drained:
            raise StopIteration
        if time.monotonic() >= self._next_watch:
            self._watch()
        records: list[Message] = self._consumer.consume(self._batch_size, POLL_SECONDS)
        offsets: list[int] = []
        messages: list[bytes] = []
        produced_at: list[float] = []
        rejected: list[DeadLetterRow] = []
        newest = self._newest
        for record in records:
            error = record.error()
            if error is None:
                kind, milliseconds = record.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE and milliseconds >= 0:
                    seconds = milliseconds / 1000
                    if newest is None or seconds > newest:
                        newest = seconds
                else:  # the deterministic stand-in: the newest timestamp before it
                    seconds = time.time() if newest is None else newest
                offset = record.offset()
                assert offset is not None  # every record read has one
                offsets.append(offset)
                messages.append(record.value() or b"")
                produced_at.append(seconds)
                self._next_offset = offset + 1
            elif error.code() == KafkaError._PARTITION_EOF:
                self._drained = self._stop_at_end
            elif error.code() in _OUT_OF_RANGE:
                self._out_of_range()
            elif error.code() in _GONE:
                raise KafkaPositionError(
                    gone_message(self._topic, self._partition, self._next_offset, error.str())
                )
            elif error.fatal():
                raise KafkaException(error)
            else:
                rejected.append(self._broker_error(record, error))
        self._newest = newest
        self._check_position()
        counters.MESSAGES_READ.inc(len(messages) + len(rejected))
        if not messages and not rejected:
            return []
        return [RawBatch(self._topic, self._partition, offsets, messages, rejected, produced_at)]

    def snapshot(self) -> KafkaPosition:
        if (due := self._commit_due()) is not None:
            self._consumer.commit(offsets=[due], asynchronous=True)
        return KafkaPosition(self._next_offset, self._newest, self._topic_id)

    def close(self) -> None:
        try:
            if (due := self._commit_due()) is not None:
                self._consumer.commit(offsets=[due], asynchronous=False)
        except KafkaException as exc:
            _log_failed_commit(exc.args[0], [])
        finally:
            self._consumer.close()

    def _commit_due(self) -> TopicPartition | None:
        """The next offset to commit to the consumer group, if any is due; noted as committed."""
        offset = self._next_offset
        if not self._commits or offset is None or offset == self._committed:
            return None
        self._committed = offset
        return TopicPartition(self._topic, self._partition, offset)

    def _assign(self, offset: int) -> None:
        self._consumer.assign([TopicPartition(self._topic, self._partition, offset)])

    def _check_position(self) -> None:
        """Compare the next offset with the watermarks of the latest fetch; update the lag.

        A broker answers a fetch beyond a partition's end with an error or,
        as Tansu does, with no records: either way the watermarks it sends
        tell. (Offsets below `low` are left to the broker to refuse: records
        fetched before a deletion by retention may still wait in the consumer.)
        """
        low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._partition), cached=True
        )
        if high < 0:  # no fetch answered yet
            return
        next_offset = self._next_offset
        if next_offset is not None and out_of_range(next_offset, low, high) == "beyond_end":
            raise KafkaPositionError(
                beyond_end_message(self._topic, self._partition, next_offset, high)
            )
        self._lag.set(high - (low if next_offset is None else next_offset))

    def _watch(self) -> None:
        """Check that the topic is still the one read so far (a deleted one may go quiet), with
        no partition added."""
        self._next_watch = time.monotonic() + WATCH_SECONDS
        try:
            topic = self._topics(self._topic)
        except TopicGone as gone:
            raise KafkaPositionError(
                gone_message(self._topic, self._partition, self._next_offset, str(gone))
            ) from None
        if topic is None:  # no answer: a broker away is waited for, as the consumer does
            return
        if self._topic_id is None:
            self._topic_id = topic.id
        elif topic.id != self._topic_id:
            raise KafkaPositionError(
                recreated_message(
                    self._topic, self._partition, self._next_offset, self._topic_id, topic.id
                )
            )
        if self._partitions is None:
            self._partitions = topic.partitions
        elif topic.partitions > self._partitions:
            raise PartitionsAdded(added_message(self._topic, self._partitions, topic.partitions))

    def _out_of_range(self) -> None:
        """The broker refused a fetch at the next offset: its log lies elsewhere now."""
        low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._partition), timeout=WATCH_TIMEOUT_SECONDS
        )
        next_offset = low if self._next_offset is None else self._next_offset
        if out_of_range(next_offset, low, high) != "deleted":
            raise KafkaPositionError(
                beyond_end_message(self._topic, self._partition, next_offset, high)
            )
        deleted = deleted_message(self._topic, self._partition, next_offset, low)
        skipped = low - next_offset
        if self._offset_reset == "error":
            raise KafkaPositionError(
                f"{deleted} Those {skipped:,} messages were never read. Set "
                f"{PREFIX}KAFKA_OFFSET_RESET=earliest to continue from offset {low:,}."
            )
        log.warning(
            "%s Skipping those %s messages, continuing from offset %s (%sKAFKA_OFFSET_RESET=earliest).",
            deleted,
            f"{skipped:,}",
            f"{low:,}",
            PREFIX,
        )
        self._skipped.inc(skipped)
        self._next_offset = low
        self._assign(low)

    def _broker_error(self, record: Message, error: KafkaError) -> DeadLetterRow:
        offset = record.offset()
        return dead_letter(
            self._topic,
            self._partition,
            NO_OFFSET if offset is None or offset < 0 else offset,
            record.value() or b"",
            "broker_error",
            f"Kafka consumer error: {error.str()} ({error.name()})",
        )


class KafkaBatchSource(FixedPartitionedSource[RawBatch, KafkaPosition]):
    """The configured topics' partitions, listed by Bytewax's `KafkaSource`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._config = consumer_config(settings)
        self._partitions: Counter[str] = Counter()  # by topic, as listed when the flow is built
        self._connector = KafkaSource(
            list(settings.kafka_brokers),
            list(settings.kafka_topics),
            add_config=dict(settings.kafka_options),
        )

    def list_parts(self) -> list[str]:
        parts: list[str] = self._connector.list_parts()
        self._partitions = Counter(part.partition("-")[2] for part in parts)
        return parts

    def wait_for_topics(self) -> None:
        """Return once the brokers answer and hold every topic; until then, say why.

        The connector's listing waits for brokers that do not answer without
        a word and deaf to SIGTERM, so a pod started before its broker (or
        before its topics are created) looked hung. Here each attempt waits
        up to `BROKER_WAIT_SECONDS`, each miss is logged, and a stop request
        (SIGTERM, Ctrl-C) ends the wait with `Interrupted`: nothing was read.
        """
        try:
            admin = AdminClient(admin_config(self.settings))
        except KafkaException as exc:
            raise config_error(exc) from None
        brokers = ",".join(self.settings.kafka_brokers)
        while True:
            started = time.monotonic()
            try:
                missing = [
                    topic for topic in self.settings.kafka_topics if not _exists(admin, topic)
                ]
                if not missing:
                    return
                why = f"no topic {', '.join(missing)} yet"
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                why = error.str()
            admin.poll(0)  # its librdkafka lines, to the logger
            if not stop_requested():
                log.warning(
                    "waiting for the Kafka brokers at %s: %s; trying again every %g s",
                    brokers, why, BROKER_WAIT_SECONDS,
                )  # fmt: skip
            if wait_for_stop(max(0.0, started + BROKER_WAIT_SECONDS - time.monotonic())):
                raise Interrupted(stopped_by() or "SIGTERM")

    def build_part(
        self, step_id: str, for_part: str, resume_state: KafkaPosition | int | None
    ) -> KafkaPartition:
        # The connector names its parts "<partition>-<topic>".
        partition, _, topic = for_part.partition("-")
        resume = KafkaPosition.of(resume_state)
        consumer = Consumer(self._config)
        return KafkaPartition(
            consumer,
            topic,
            int(partition),
            resume,
            self.settings,
            self._topics,
            self._partitions.get(topic),
        )

    @functools.cached_property
    def _topics(self) -> Topics:
        """One admin client for the partitions of this process."""
        return Topics(admin_config(self.settings))
