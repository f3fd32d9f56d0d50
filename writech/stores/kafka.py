"""Dead letters to a Kafka topic, besides the `dead_letter` table (SPEC §4).

Each dead letter becomes one record on `settings.kafka_dlq_topic`: the
value is the message's raw bytes as read (cut to what the topic admits, see
`record`), the headers say why and where
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

# The largest record produced, by default: librdkafka's own default, which a broker's
# and a topic's default limit (1,048,588 bytes for a batch) admit with room to spare.
# WRITECH_KAFKA_OPTIONS's `message.max.bytes` sets it for a topic that admits more.
RECORD_LIMIT: Final = 1_000_000
# What librdkafka counts besides a record's key, value and headers (at most 61 bytes
# of framing, and a few bytes per header), with room to spare.
_FRAMING: Final = 256
_HEADER_FRAMING: Final = 16
# A header's longest value. Ids and reasons are short, but an event id or an
# unknown event type (which the reason quotes) can be as long as a message: cut,
# they leave the value its room, and the `dead_letter` table keeps them whole.
HEADER_VALUE_LIMIT: Final = 16 * 1024


class DeadLetterDeliveryError(StoreError):
    """The broker did not acknowledge some dead letters."""


def raw_bytes(letter: DeadLetter) -> bytes:
    """The message's bytes as they were read."""
    if letter.raw_encoding == "base64":
        return base64.b64decode(letter.raw)
    return letter.raw.encode()


def headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    found = [
        ("reason", letter.reason),
        ("message", letter.message),
        ("origin", letter.origin),
        ("partition", str(letter.partition)),
        ("offset", str(letter.offset)),
    ]
    if letter.event_id:
        found.append(("event_id", letter.event_id))
    return [(name, _bounded(value.encode())) for name, value in found]


def _bounded(text: bytes) -> bytes:
    """`text` cut to `HEADER_VALUE_LIMIT` bytes, at a character's end (it stays UTF-8)."""
    if len(text) <= HEADER_VALUE_LIMIT:
        return text
    return text[:HEADER_VALUE_LIMIT].decode(errors="ignore").encode()


def record(letter: DeadLetter, limit: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The record of `letter` (value, key, headers), its value cut to fit in `limit` bytes.

    A message can be as large as `WRITECH_MAX_MESSAGE_BYTES` (1 MiB by default;
    a `too_large` letter keeps that much of a larger one), more than a topic
    admits by default: refused, its record would fail every insert, and the
    run would stop at the same letter on every restart. Cut, it carries the
    header `truncated_from`, the raw message's length; the `dead_letter` table
    keeps the message whole (`writech dead-letters export`).
    """
    value, found = raw_bytes(letter), headers(letter)
    key = f"{letter.origin}:{letter.partition}".encode()
    room = limit - _FRAMING - len(key)
    room -= sum(len(name) + len(text) + _HEADER_FRAMING for name, text in found)
    if len(value) > room:
        length = str(len(value)).encode()
        found.append(("truncated_from", length))
        room -= len("truncated_from") + len(length) + _HEADER_FRAMING
        value = value[: max(room, 0)]
    return value, key, found


class DeadLetterTopic:
    """Produces `dead_letter` rows to one topic; implements `writech.stores.base.RowsWriter`."""

    def __init__(self, settings: Settings) -> None:
        deadline_ms = round(settings.store_deadline * 1000)
        config: dict[str, str | int | bool] = {
            "bootstrap.servers": ",".join(settings.kafka_brokers),
            "acks": "all",
            "enable.idempotence": True,
            "message.max.bytes": RECORD_LIMIT,
            "message.timeout.ms": deadline_ms,
            "socket.timeout.ms": round(settings.store_timeout * 1000),
        }
        config.update(settings.kafka_options)
        self.topic = settings.kafka_dlq_topic
        self._producer = Producer(config)  # checks the options first
        self._limit = int(config["message.max.bytes"])

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
        value, key, found = record(letter, self._limit)
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=[*found], on_delivery=delivered
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush()
