"""Dead letters to a Kafka topic, besides the `dead_letter` table (SPEC §4).

Each dead letter becomes one record on `settings.kafka_dlq_topic`: the
value is the message's raw bytes as read (cut where the topic admits less,
see `DeadLetterTopic.insert`), the headers say why and where
from (`reason`, `message`, `origin`, `partition`, `offset`, and `event_id`
when known), the key is `origin:partition` so the letters of one source
partition stay in order (but for a letter sent again, cut, after the broker
refused it as too large: its headers still say where it was read).

Every insert waits until the broker has acknowledged all its records and
raises if any delivery failed: Bytewax may commit the epoch once the sink
returns, so an unconfirmed record could otherwise be lost without a trace.
librdkafka's `message.timeout.ms` (the store deadline) bounds the wait.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import KafkaError, Message, Producer

from writech.logs import LIBRDKAFKA
from writech.rows import TableRows
from writech.schema import DeadLetter
from writech.settings import Settings
from writech.stores.base import StoreError

# Room for the headers above a raw message of the largest allowed size: a letter
# is produced whole where the topic admits it.
_HEADER_ROOM: Final = 64 * 1024
# What a topic admits by default: Kafka's default `max.message.bytes` is 1,048,588
# bytes for a batch, and this leaves its framing room to spare. A letter the broker
# refuses as too large is produced again, cut to this.
TOPIC_DEFAULT_LIMIT: Final = 1_000_000
# What librdkafka counts besides a record's key, value and headers (at most 61 bytes
# of framing, and a few bytes per header), with room to spare.
_FRAMING: Final = 256
_HEADER_FRAMING: Final = 16
# A header's longest value. Ids and reasons are short, but an event id or an
# unknown event type (which the reason quotes) can be as long as a message: cut,
# they leave the value its room, and the `dead_letter` table keeps them whole.
HEADER_VALUE_LIMIT: Final = 16 * 1024


def record_limit(settings: Settings) -> int:
    """The largest record our producers send (librdkafka's `message.max.bytes`, whose own
    default admits less than a message of `max_message_bytes`): such a message whole,
    with room for a dead letter's headers."""
    return max(TOPIC_DEFAULT_LIMIT, settings.max_message_bytes + _HEADER_ROOM)


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

    Cut, it carries the header `truncated_from`, the raw message's length; the
    `dead_letter` table keeps the message whole (`writech dead-letters export`).
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
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(settings.kafka_brokers),
            "acks": "all",
            "enable.idempotence": True,
            # A `too_large` dead letter keeps up to `max_message_bytes` of its message.
            "message.max.bytes": record_limit(settings),
            "message.timeout.ms": deadline_ms,
            "socket.timeout.ms": round(settings.store_timeout * 1000),
        }
        config.update(settings.kafka_options)
        config["logger"] = LIBRDKAFKA  # its lines handed over by `flush`
        self.topic = settings.kafka_dlq_topic
        self._producer = Producer(config)  # checks the options first
        self._limit = int(config["message.max.bytes"])

    def insert(self, rows: TableRows) -> None:
        letters = [DeadLetter(*row) for row in rows.rows()]
        refused = self._send(letters, self._limit)
        if refused:
            # The topic admits less than this producer may send (a letter of a message
            # near WRITECH_MAX_MESSAGE_BYTES, and Kafka's default limit): refused, the
            # letter would fail every insert, and the run stop at it on every restart.
            cut = min(self._limit, TOPIC_DEFAULT_LIMIT)
            if self._send(refused, cut):
                raise DeadLetterDeliveryError(
                    f"{len(refused)} of {len(letters)} dead letters were refused as too large "
                    f"by Kafka topic {self.topic!r}, even cut to {cut:,} bytes: set the "
                    "topic's limit as message.max.bytes in WRITECH_KAFKA_OPTIONS"
                )

    def _send(self, letters: list[DeadLetter], limit: int) -> list[DeadLetter]:
        """Produce `letters` as records of at most `limit` bytes and wait for every
        acknowledgement; the letters the broker refused as too large. Raises if any
        other delivery failed."""
        failures: list[str] = []
        refused: list[DeadLetter] = []

        def delivered(letter: DeadLetter) -> Callable[[KafkaError | None, Message], None]:
            def report(error: KafkaError | None, _: Message) -> None:
                if error is None:
                    return
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    refused.append(letter)
                else:
                    failures.append(error.str())

            return report

        for letter in letters:
            value, key, found = record(letter, limit)
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value=value,
                        key=key,
                        headers=[*found],
                        on_delivery=delivered(letter),
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
        undelivered = self._producer.flush()  # waits for every acknowledgement
        if failures or undelivered:
            shown = "; ".join(sorted(set(failures))[:3])
            raise DeadLetterDeliveryError(
                f"{len(failures) + undelivered} of {len(letters)} dead letters were not "
                f"delivered to Kafka topic {self.topic!r}: {shown}"
            )
        return refused

    def close(self) -> None:
        self._producer.flush()
