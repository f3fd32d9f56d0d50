"""The Kafka source and the dead-letter topic sink, against a real broker (Tansu)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tests import rows
from tests.services.kafka import consume_all, headers_of, produce
from tests.services.ports import free_port
from writech import counters
from writech.events import EventDecoder, RawBatch, dead_letter
from writech.rows import TableRows
from writech.schema import DEAD_LETTER, DeadLetterRow
from writech.settings import Settings, SettingsError
from writech.sources.kafka import KafkaBatchSource, KafkaPosition, kafka_source
from writech.stores.kafka import (
    HEADER_VALUE_LIMIT,
    TOPIC_DEFAULT_LIMIT,
    DeadLetterDeliveryError,
    DeadLetterTopic,
)
from writech.stores.sink import RowsSink

pytestmark = pytest.mark.services


def _settings(broker: str, topic: str, **overrides: object) -> Settings:
    return Settings.from_env(
        {},
        source="kafka",
        kafka_brokers=(broker,),
        kafka_topics=(topic,),
        kafka_dlq_topic=f"{topic}-dlq",
        kafka_stop_at_end=True,
        **overrides,
    )


def _topic_sink(settings: Settings) -> RowsSink:
    """The dataflow's sink for the dead-letter topic, as `writech.flow` builds it."""
    return RowsSink("dead_letter_topic", lambda: DeadLetterTopic(settings))


def _letters(*rows: DeadLetterRow) -> TableRows:
    return TableRows.from_rows(DEAD_LETTER, list(rows))


def _drain(
    source: KafkaBatchSource, part: str, resume: KafkaPosition | None = None
) -> list[RawBatch]:
    """Every batch of one partition until it is drained (the source stops at the end)."""
    partition = source.build_part("read", part, resume)
    batches: list[RawBatch] = []
    try:
        while True:
            try:
                batches += partition.next_batch()
            except StopIteration:
                return batches
    finally:
        partition.close()


def test_each_consumer_batch_is_one_raw_batch(kafka_broker: str, kafka_topic: str) -> None:
    messages: list[bytes | None] = [b'{"n": %d}' % n for n in range(1000)]
    messages[7] = None  # a record without a value
    produce(kafka_broker, kafka_topic, messages)
    source = kafka_source(_settings(kafka_broker, kafka_topic, batch_size=100))
    read_before = counters.value("writech_messages_read_total")

    parts = source.list_parts()
    assert sorted(parts) == [f"{n}-{kafka_topic}" for n in range(3)]
    seen: dict[tuple[int, int], bytes] = {}
    for part in parts:
        batches = _drain(source, part)
        partition = int(part.split("-")[0])
        assert len(batches) >= 3  # ~334 records in batches of at most 100
        next_offset = 0
        for batch in batches:
            assert (batch.origin, batch.partition) == (kafka_topic, partition)
            assert 0 < len(batch.messages) <= 100
            assert batch.offsets == list(range(next_offset, next_offset + len(batch.messages)))
            assert batch.rejected == []
            next_offset += len(batch.messages)
            seen.update(
                ((partition, o), m) for o, m in zip(batch.offsets, batch.messages, strict=True)
            )

    # Round-robin production: message n is at partition n % 3, offset n // 3.
    assert seen == {(n % 3, n // 3): raw or b"" for n, raw in enumerate(messages)}
    assert counters.value("writech_messages_read_total") - read_before == 1000


def test_a_record_without_value_dead_letters_as_empty(kafka_broker: str, kafka_topic: str) -> None:
    produce(kafka_broker, kafka_topic, [None], partitions=1)
    [batch] = _drain(kafka_source(_settings(kafka_broker, kafka_topic)), f"0-{kafka_topic}")
    events, dead = EventDecoder(Settings().tz).decode_batch(batch)
    assert events == []
    letters = rows.dead_letters(dead)
    assert [(d.reason, d.message, d.raw, d.origin, d.offset) for d in letters] == [
        ("bad_json", "empty message", "", kafka_topic, 0)
    ]


def test_a_partition_resumes_after_its_snapshot(kafka_broker: str, kafka_topic: str) -> None:
    produce(kafka_broker, kafka_topic, [b"m%d" % n for n in range(30)], partitions=1)
    source = kafka_source(_settings(kafka_broker, kafka_topic, batch_size=10))
    part = f"0-{kafka_topic}"
    partition = source.build_part("read", part, None)
    first: list[RawBatch] = []
    while not first:  # the consumer may need a few polls to fetch
        first = partition.next_batch()
    snapshot = partition.snapshot()
    partition.close()
    assert snapshot.next_offset == first[0].offsets[-1] + 1

    rest = _drain(source, part, resume=snapshot)
    offsets = [offset for batch in first + rest for offset in batch.offsets]
    assert offsets == list(range(30))


def test_kafka_options_reach_librdkafka(kafka_broker: str, kafka_topic: str) -> None:
    settings = _settings(kafka_broker, kafka_topic, kafka_options={"no.such.option": "1"})
    # the wait for the topics, as the flow is built, says it as a setting error
    with pytest.raises(SettingsError, match=r"make no Kafka client: .*no\.such\.option"):
        kafka_source(settings)
    # each partition's consumer, and the dead-letter producer, get the options too
    with pytest.raises(KafkaException, match=r"no\.such\.option"):
        KafkaBatchSource(settings).build_part("read", f"0-{kafka_topic}", None)
    with pytest.raises(KafkaException, match=r"no\.such\.option"):
        _topic_sink(settings).build("write", 0, 1)


def test_dead_letters_reach_the_topic_with_their_headers(
    kafka_broker: str, kafka_topic: str
) -> None:
    settings = _settings(kafka_broker, kafka_topic)
    letters = [
        dead_letter(
            kafka_topic, 1, 17, b'{"event_type": "x"}', "unknown_event_type", "no such type"
        ),
        dead_letter(kafka_topic, 2, 5, b"\xff\xfe not utf-8", "bad_json", "not UTF-8"),
        dead_letter("in.jsonl", 0, 3, "汉字 ✍️".encode(), "too_late", "evicted", event_id="e-1"),
    ]
    assert rows.dead_letters(letters[1:2])[0].raw_encoding == "base64"
    partition = _topic_sink(settings).build("write", 0, 1)
    partition.write_batch([_letters(*letters[:2]), _letters(*letters[2:])])
    partition.close()

    records = consume_all(kafka_broker, settings.kafka_dlq_topic)
    got = {record.value(): headers_of(record) for record in records}
    topic = kafka_topic
    assert got == {
        b'{"event_type": "x"}': _headers("unknown_event_type", "no such type", topic, 1, 17),
        b"\xff\xfe not utf-8": _headers("bad_json", "not UTF-8", topic, 2, 5),
        "汉字 ✍️".encode(): _headers("too_late", "evicted", "in.jsonl", 0, 3) | {"event_id": "e-1"},
    }
    assert len(records) == 3


def _large_letters(topic: str, limit: int) -> tuple[bytes, str, list[DeadLetterRow]]:
    """A message of the largest size the pipeline reads, an event id as long (its letter
    is a valid late event's), and a small message."""
    large = b"{" + b"x" * (limit - 1)
    long_id = "汉" * (limit // 3)
    return (
        large,
        long_id,
        [
            dead_letter(topic, 0, 1, large, "bad_json", "not a valid event message"),
            dead_letter(topic, 0, 2, b"{}", "too_late", "evicted", event_id=long_id),
            dead_letter(topic, 0, 3, b"small", "bad_json", "x"),
        ],
    )


def _records_by_offset(broker: str, topic: str) -> list[Message]:
    return sorted(consume_all(broker, topic), key=lambda record: headers_of(record)["offset"])


def _size(record: Message) -> int:
    size = len(record.value() or b"") + len(record.key() or b"")
    return size + sum(len(name) + len(text.encode()) for name, text in headers_of(record).items())


def test_a_large_dead_letter_goes_whole_where_the_topic_admits_it(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Tansu admits any size: the message whole, the 1 MiB event id cut to 16 KiB (a header
    that long only crowds out the message)."""
    settings = _settings(kafka_broker, kafka_topic)
    large, long_id, letters = _large_letters(kafka_topic, settings.max_message_bytes)
    partition = _topic_sink(settings).build("write", 0, 1)
    partition.write_batch([_letters(*letters)])
    partition.close()

    first, second, third = _records_by_offset(kafka_broker, settings.kafka_dlq_topic)
    assert first.value() == large
    assert "truncated_from" not in headers_of(first)
    event_id = headers_of(second)["event_id"]
    assert long_id.startswith(event_id)  # whole characters
    assert HEADER_VALUE_LIMIT - 3 < len(event_id.encode()) <= HEADER_VALUE_LIMIT
    assert (third.value(), headers_of(third)["reason"]) == (b"small", "bad_json")


def test_a_record_limit_cuts_dead_letters_to_fit(kafka_broker: str, kafka_topic: str) -> None:
    """A topic that admits less says so as message.max.bytes: every record fits it, the
    cut ones with the message's length."""
    settings = _settings(kafka_broker, kafka_topic, kafka_options={"message.max.bytes": "200000"})
    large, _, letters = _large_letters(kafka_topic, settings.max_message_bytes)
    partition = _topic_sink(settings).build("write", 0, 1)
    partition.write_batch([_letters(*letters)])
    partition.close()

    first, second, third = _records_by_offset(kafka_broker, settings.kafka_dlq_topic)
    assert max(map(_size, (first, second, third))) <= 200_000
    value = first.value() or b""
    assert len(value) > 200_000 - 2_000
    assert large.startswith(value)
    assert headers_of(first)["truncated_from"] == str(len(large))
    assert second.value() == b"{}"
    assert third.value() == b"small"


class _RefusingLargeRecords:
    """The producer, with a broker that refuses records over `limit` bytes as Kafka does
    (MESSAGE_TOO_LARGE). A mock of the broker's refusal only: Tansu admits any size, and
    no Kafka broker can run here; everything else goes to Tansu through the real producer."""

    def __init__(self, producer: Producer, limit: int) -> None:
        self.producer = producer
        self.limit = limit

    def produce(self, topic: str, **record: Any) -> None:
        size = len(record["value"]) + len(record["key"])
        size += sum(len(name) + len(value) for name, value in record["headers"])
        if size > self.limit:
            record["on_delivery"](KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
        else:
            self.producer.produce(topic, **record)

    def flush(self, *timeout: float) -> int:
        return self.producer.flush(*timeout)


def test_a_dead_letter_the_broker_refuses_as_too_large_goes_again_cut(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Kafka's default topic admits about 1 MB a batch: a letter of a message near 1 MiB
    was refused, failed every insert, and stopped the run at it on every restart."""
    settings = _settings(kafka_broker, kafka_topic)
    large, _, letters = _large_letters(kafka_topic, settings.max_message_bytes)
    topic = DeadLetterTopic(settings)
    topic._producer = _RefusingLargeRecords(topic._producer, 1_048_588)  # type: ignore[assignment]
    topic.insert(_letters(*letters))
    topic.close()

    first, second, third = _records_by_offset(kafka_broker, settings.kafka_dlq_topic)
    assert _size(first) <= TOPIC_DEFAULT_LIMIT
    assert large.startswith(first.value() or b"")
    assert headers_of(first)["truncated_from"] == str(len(large))
    assert (second.value(), third.value()) == (b"{}", b"small")  # not cut, sent once

    # a topic that admits less than the default: said, with what to set
    stingy = DeadLetterTopic(settings)
    stingy._producer = _RefusingLargeRecords(stingy._producer, 500_000)  # type: ignore[assignment]
    with pytest.raises(DeadLetterDeliveryError, match=r"set the topic's limit as message\.max"):
        stingy.insert(_letters(*letters[:1]))


def _headers(reason: str, message: str, origin: str, partition: int, offset: int) -> dict[str, str]:
    return {"reason": reason, "message": message, "origin": origin,
            "partition": str(partition), "offset": str(offset)}  # fmt: skip


def test_an_undelivered_dead_letter_is_an_error(kafka_topic: str) -> None:
    """No broker answers: the write must fail once the delivery times out, not pass silently."""
    settings = _settings(
        f"127.0.0.1:{free_port()}", kafka_topic, kafka_options={"message.timeout.ms": "1500"}
    )
    partition = _topic_sink(settings).build("write", 0, 1)
    started = time.monotonic()
    with pytest.raises(DeadLetterDeliveryError, match="1 of 1 dead letters were not delivered"):
        partition.write_batch([_letters(dead_letter(kafka_topic, 0, 1, b"x", "bad_json", "x"))])
    assert time.monotonic() - started < 10
