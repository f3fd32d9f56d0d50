"""Dead letters to a Kafka topic, besides the `dead_letter` table (SPEC §4).

Each dead letter becomes one record on `settings.kafka_dlq_topic`: the
value is the message's raw bytes as read, the headers say why and where
from (`reason`, `message`, `origin`, `partition`, `offset`, and `event_id`
when known), the key is `origin:partition` so the letters of one source
partition stay in order.

Every `write_batch` waits until the broker has acknowledged all its records
and raises if any delivery failed: Bytewax may commit the epoch once it
returns, so an unconfirmed record could otherwise be lost without a trace.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from writech.schema import DeadLetter
from writech.settings import Settings

# Room for the headers above a raw message of the largest allowed size.
_HEADER_ROOM: Final = 64 * 1024

OnDelivery = Callable[[KafkaError | None, Message], None]


class DeadLetterDeliveryError(RuntimeError):
    """The broker did not acknowledge some dead letters."""


def dead_letter_sink(settings: Settings) -> DeadLetterSink:
    config: dict[str, str | int | bool] = {
        "bootstrap.servers": ",".join(settings.kafka_brokers),
        "acks": "all",
        "enable.idempotence": True,
        # A `too_large` dead letter keeps up to `max_message_bytes` of its message.
        "message.max.bytes": max(1_000_000, settings.max_message_bytes + _HEADER_ROOM),
    }
    config.update(settings.kafka_options)
    return DeadLetterSink(settings.kafka_dlq_topic, config)


def raw_bytes(letter: DeadLetter) -> bytes:
    """The message's bytes as they were read."""
    if letter.raw_encoding == "base64":
        return base64.b64decode(letter.raw)
    return letter.raw.encode()


def headers(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    found = [
        ("reason", letter.reason),
        ("message", letter.message),
        ("origin", letter.origin),
        ("partition", str(letter.partition)),
        ("offset", str(letter.offset)),
    ]
    if letter.event_id:
        found.append(("event_id", letter.event_id))
    return [(name, value.encode()) for name, value in found]


class _DeadLetterPartition(StatelessSinkPartition[list[DeadLetter]]):
    def __init__(self, topic: str, producer: Producer) -> None:
        self._topic = topic
        self._producer = producer

    def write_batch(self, items: list[list[DeadLetter]]) -> None:
        failures: list[str] = []

        def delivered(error: KafkaError | None, record: Message) -> None:
            if error is not None:
                failures.append(error.str())

        sent = 0
        for letters in items:
            for letter in letters:
                self._produce(letter, delivered)
                sent += 1
        # Waits for every acknowledgement; librdkafka's `message.timeout.ms`
        # bounds the wait by failing what it could not deliver.
        undelivered = self._producer.flush()
        if failures or undelivered:
            shown = "; ".join(sorted(set(failures))[:3])
            raise DeadLetterDeliveryError(
                f"{len(failures) + undelivered} of {sent} dead letters were not delivered "
                f"to Kafka topic {self._topic!r}: {shown}"
            )

    def _produce(self, letter: DeadLetter, delivered: OnDelivery) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value=raw_bytes(letter),
                    key=f"{letter.origin}:{letter.partition}".encode(),
                    headers=headers(letter),
                    on_delivery=delivered,
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush()


class DeadLetterSink(DynamicSink[list[DeadLetter]]):
    """Produces lists of dead letters to one topic, one producer per worker."""

    def __init__(self, topic: str, config: dict[str, str | int | bool]) -> None:
        self.topic = topic
        self.config = config

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        return _DeadLetterPartition(self.topic, Producer(self.config))
