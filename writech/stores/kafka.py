"""Dead letters to a Kafka topic, besides the `dead_letter` table (SPEC §4).

Each dead letter becomes one record on `settings.kafka_dlq_topic`: the
value is the message's raw bytes as read, the headers say why and where
from (`reason`, `message`, `origin`, `partition`, `offset`, and `event_id`
when known), the key is `origin:partition` so the letters of one source
partition stay in order.

Every insert waits until the broker has acknowledged all its records and
raises if any delivery failed: Bytewax may commit the epoch once the sink
returns, so an unconfirmed record could otherwise be lost without a trace.
librdkafka's `message.timeout.ms` (the store deadline) bounds the wait.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from confluent_kafka import KafkaError, Message, Producer

from writech.rows import TableRows
from writech.schema import DeadLetter
from writech.settings import Settings
from writech.stores.base import StoreError

# Room for the headers above a raw message of the largest allowed size.
_HEADER_ROOM: Final = 64 * 1024


class DeadLetterDeliveryError(StoreError):
    """The broker did not acknowledge some dead letters."""


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


class DeadLetterTopic:
    """Produces `dead_letter` rows to one topic; implements `writech.stores.base.RowsWriter`."""

    def __init__(self, settings: Settings) -> None:
        deadline_ms = round(settings.store_deadline * 1000)
        config: dict[str, str | int | bool] = {
            "bootstrap.servers": ",".join(settings.kafka_brokers),
            "acks": "all",
            "enable.idempotence": True,
            # A `too_large` dead letter keeps up to `max_message_bytes` of its message.
            "message.max.bytes": max(1_000_000, settings.max_message_bytes + _HEADER_ROOM),
            "message.timeout.ms": deadline_ms,
            "socket.timeout.ms": round(settings.store_timeout * 1000),
        }
        config.update(settings.kafka_options)
        self.topic = settings.kafka_dlq_topic
        self._producer = Producer(config)

    def insert(self, rows: TableRows) -> None:
        failures: list[str] = []

        def delivered(error: KafkaError | None, record: Message) -> None:
            if error is not None:
                failures.append(error.str())

        sent = 0
        for row in rows.rows():
            self._produce(DeadLetter(*row), delivered)
            sent += 1
        undelivered = self._producer.flush()  # waits for every acknowledgement
        if failures or undelivered:
            shown = "; ".join(sorted(set(failures))[:3])
            raise DeadLetterDeliveryError(
                f"{len(failures) + undelivered} of {sent} dead letters were not delivered "
                f"to Kafka topic {self.topic!r}: {shown}"
            )

    def _produce(
        self, letter: DeadLetter, delivered: Callable[[KafkaError | None, Message], None]
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic,
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
