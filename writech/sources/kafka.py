"""Kafka topics as a Bytewax source, on Bytewax's own Kafka connector (SPEC §7).

`bytewax.connectors.kafka.KafkaSource` spreads the topics' partitions over
the workers and keeps each partition's next offset in the recovery state;
this wraps its partitions so that each consumer batch becomes ONE
`RawBatch` (Bytewax's cost is per item, so items are batches, never single
messages). A consumer error becomes a `broker_error` dead letter in the
batch instead of stopping the flow, and a record without a value is passed
on as empty bytes (it then dead-letters as an empty message).

Settings used: `kafka_brokers`, `kafka_topics`, `batch_size`,
`kafka_stop_at_end` (exit once every partition is drained) and
`kafka_options`, passed to librdkafka as they are (SASL, TLS, a
`group.id` where ACLs require one: offsets are never committed to the
broker, the recovery state holds them).
"""

from __future__ import annotations

from typing import Final

from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from writech import counters
from writech.events import RawBatch, dead_letter
from writech.schema import DeadLetter
from writech.settings import Settings

# Where a consumer error carries no offset of its own.
NO_OFFSET: Final = -1

# What the connector's partitions yield, and their state: the next offset to read.
ConsumerItem = (
    KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]
)
NextOffset = int | None


def kafka_source(settings: Settings) -> KafkaBatchSource:
    return KafkaBatchSource(
        KafkaSource(
            list(settings.kafka_brokers),
            list(settings.kafka_topics),
            tail=not settings.kafka_stop_at_end,
            add_config=dict(settings.kafka_options),
            batch_size=settings.batch_size,
            raise_on_errors=False,
        )
    )


def to_raw_batch(topic: str, partition: int, items: list[ConsumerItem]) -> RawBatch:
    """One consumer batch of `topic`/`partition` as a `RawBatch`, errors as dead letters."""
    offsets: list[int] = []
    messages: list[bytes] = []
    rejected: list[DeadLetter] = []
    for item in items:
        if isinstance(item, KafkaError):
            rejected.append(
                dead_letter(
                    topic,
                    partition,
                    _offset(item.msg.offset),
                    item.msg.value or b"",
                    "broker_error",
                    f"Kafka consumer error: {item.err.str()} ({item.err.name()})",
                )
            )
        else:
            offsets.append(_offset(item.offset))
            messages.append(item.value or b"")
    return RawBatch(topic, partition, offsets, messages, rejected)


def _offset(offset: int | None) -> int:
    return NO_OFFSET if offset is None or offset < 0 else offset


class _BatchingPartition(StatefulSourcePartition[RawBatch, NextOffset]):
    """One Kafka partition: the connector's partition, its batches as `RawBatch`es."""

    def __init__(
        self,
        consumer: StatefulSourcePartition[ConsumerItem, NextOffset],
        topic: str,
        partition: int,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._partition = partition

    def next_batch(self) -> list[RawBatch]:
        items = list(self._consumer.next_batch())  # raises StopIteration once drained
        if not items:
            return []
        counters.MESSAGES_READ.inc(len(items))
        return [to_raw_batch(self._topic, self._partition, items)]

    def snapshot(self) -> NextOffset:
        return self._consumer.snapshot()

    def close(self) -> None:
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[RawBatch, NextOffset]):
    """Bytewax's `KafkaSource`, yielding one `RawBatch` per consumer batch."""

    def __init__(self, connector: KafkaSource) -> None:
        self.connector = connector

    def list_parts(self) -> list[str]:
        parts: list[str] = self.connector.list_parts()
        return parts

    def build_part(
        self, step_id: str, for_part: str, resume_state: NextOffset
    ) -> _BatchingPartition:
        # The connector names its parts "<partition>-<topic>".
        partition, _, topic = for_part.partition("-")
        consumer = self.connector.build_part(step_id, for_part, resume_state)
        return _BatchingPartition(consumer, topic, int(partition))
