"""The Kafka source when offsets, topics and brokers misbehave; its lag gauge, its commits
to a consumer group and the record timestamps it passes on.

Against Tansu where a broker is needed; the consumer's own logic (errors, resets, missing
timestamps) against a scripted consumer, since Tansu cannot delete records by retention.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from hypothesis import given
from hypothesis import strategies as st

from tests import rows
from tests.helpers import (
    dataflow_command,
    init_recovery_store,
    log_tail,
    read_positions,
    run_dataflow,
    start_dataflow,
    wait_for_commit,
    wait_for_exit,
)
from tests.services.kafka import TansuBroker, create_topic, produce
from writech import counters
from writech.events import EventDecoder, RawBatch
from writech.generate import generate
from writech.settings import Settings, SettingsError
from writech.sources import kafka
from writech.sources.kafka import (
    KafkaBatchSource,
    KafkaPartition,
    KafkaPosition,
    KafkaPositionError,
    PartitionsAdded,
    Topic,
    TopicGone,
    Topics,
    consumer_config,
    kafka_source,
    out_of_range,
)

pytestmark = pytest.mark.services

# Time bounds on runs that must end by themselves: a hang guard, not a measurement.
ENDS_WITHIN = 120.0
TOPIC = "events"


def kafka_settings(broker: str, topic: str, **overrides: Any) -> Settings:
    return Settings.from_env(
        {},
        source="kafka",
        kafka_brokers=(broker,),
        kafka_topics=(topic,),
        kafka_dlq_topic="",
        kafka_stop_at_end=True,
        **overrides,
    )


def read_until(partition: KafkaPartition, done: Any, timeout: float = 30) -> list[RawBatch]:
    """Batches of `partition` until `done(batches)` holds or the partition ends."""
    batches: list[RawBatch] = []
    deadline = time.monotonic() + timeout
    while not done(batches):
        assert time.monotonic() < deadline, "the partition neither ended nor got there"
        try:
            batches += partition.next_batch()
        except StopIteration:
            break
    return batches


def drain(source: KafkaBatchSource, part: str, resume: KafkaPosition | None = None):
    partition = source.build_part("read", part, resume)
    try:
        return read_until(partition, lambda _: False), partition.snapshot()
    finally:
        partition.close()


def offsets_of(batches: list[RawBatch]) -> list[int]:
    return [offset for batch in batches for offset in batch.offsets]


# -- a broker whose log is gone, a topic deleted or created again ------------------------


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A Tansu broker of this test's own (in memory), to stop and start without its topics."""
    broker = TansuBroker(tmp_path / "tansu.log")
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"the Kafka broker (Tansu) could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


def dataflow_settings(broker: str, topic: str, data: Path, stop_at_end: bool) -> dict[str, str]:
    return {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_BROKERS": broker,
        "WRITECH_KAFKA_TOPICS": topic,
        "WRITECH_KAFKA_DLQ_TOPIC": "",
        "WRITECH_KAFKA_STOP_AT_END": str(stop_at_end).lower(),
        "WRITECH_DATA_DIR": str(data),
    }


def events(count: int, seed: int = 1) -> list[bytes | None]:
    return list(generate(events=count, students=30, days=2, seed=seed))


def read_all_then_resume(broker: str, topic: str, tmp_path: Path, between: Any) -> tuple[int, str]:
    """Read `topic` to its end with a recovery store, call `between()`, resume; the exit
    code of the resume and the runs' log."""
    recovery = init_recovery_store(tmp_path / "recovery")
    settings = dataflow_settings(broker, topic, tmp_path / "data", stop_at_end=True)
    log = tmp_path / "runs.log"
    run_dataflow(dataflow_command(recovery), settings, log)
    assert read_positions(recovery) == {f"{partition}-{topic}": 100 for partition in range(3)}
    between()
    code = wait_for_exit(
        start_dataflow(dataflow_command(recovery), settings, log), log, ENDS_WITHIN
    )
    return code, log.read_text(errors="replace")


def test_a_topic_created_again_with_fewer_messages_stops_the_resume(
    kafka_broker: str, tmp_path: Path
) -> None:
    """Before: the stored offsets lay past the new end; the run read nothing, said nothing and
    (stopping at the end) hung. Now: an error naming topic, partition, offset and end."""
    topic = create_topic(kafka_broker, f"writech-recreated-{uuid.uuid4().hex[:8]}")
    produce(kafka_broker, topic, events(300))

    def create_again() -> None:
        admin = AdminClient({"bootstrap.servers": kafka_broker})
        for future in admin.delete_topics([topic]).values():
            future.result(30)
        create_topic(kafka_broker, topic)
        produce(kafka_broker, topic, events(30, seed=2))

    code, log = read_all_then_resume(kafka_broker, topic, tmp_path, create_again)

    assert code not in (0, -11), log_tail(tmp_path / "runs.log")
    assert f"Kafka topic '{topic}' partition " in log
    assert "the topic is not the one the recovery store read (its id was " in log
    assert "(the next offset to read is 100)" in log
    assert "Start a new recovery store" in log


def test_a_broker_that_lost_its_log_stops_the_resume(
    private_broker: TansuBroker, tmp_path: Path
) -> None:
    topic = create_topic(private_broker.bootstrap, "writech-lost")
    produce(private_broker.bootstrap, topic, events(300))

    def lose_the_log() -> None:  # Tansu in memory: a restart starts empty
        private_broker.stop()
        private_broker.start()

    code, log = read_all_then_resume(private_broker.bootstrap, topic, tmp_path, lose_the_log)

    assert code not in (0, -11), log_tail(tmp_path / "runs.log")
    assert "it was deleted and created again, or the broker lost its log" in log
    assert "(the next offset to read is 100)" in log


def test_a_topic_deleted_mid_run_is_a_clear_error_not_a_crash(
    kafka_broker: str, tmp_path: Path
) -> None:
    """Before: the process died of a segmentation fault in librdkafka (exit -11)."""
    topic = create_topic(kafka_broker, f"writech-deleted-{uuid.uuid4().hex[:8]}")
    produce(kafka_broker, topic, events(300))
    recovery = init_recovery_store(tmp_path / "recovery")
    settings = dataflow_settings(kafka_broker, topic, tmp_path / "data", stop_at_end=False)
    log = tmp_path / "run.log"
    process = start_dataflow(dataflow_command(recovery), settings, log)
    wait_for_commit(recovery, process, log, beyond=0)
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    for future in admin.delete_topics([topic]).values():
        future.result(30)

    code = wait_for_exit(process, log, ENDS_WITHIN)

    assert code not in (0, -11), log_tail(log)
    text = log.read_text(errors="replace")
    assert f"Kafka topic '{topic}' partition " in text
    assert "no longer exists on the broker" in text or "beyond the partition's end" in text


def test_a_topic_created_again_with_more_messages_is_refused_by_its_id(
    kafka_broker: str,
) -> None:
    """Offsets alone cannot tell: the stored offset lies within the new topic's log."""
    topic = create_topic(kafka_broker, f"writech-again-{uuid.uuid4().hex[:8]}", partitions=1)
    produce(kafka_broker, topic, [b"old-%d" % n for n in range(5)], partitions=1)
    source = kafka_source(kafka_settings(kafka_broker, topic))
    batches, snapshot = drain(source, f"0-{topic}")
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    for future in admin.delete_topics([topic]).values():
        future.result(30)
    create_topic(kafka_broker, topic, partitions=1)
    produce(kafka_broker, topic, [b"new-%d" % n for n in range(20)], partitions=1)

    partition = source.build_part("read", f"0-{topic}", snapshot)
    try:
        with pytest.raises(KafkaPositionError, match="it was deleted and created again"):
            partition.next_batch()
    finally:
        partition.close()
    assert offsets_of(batches) == list(range(5))
    assert snapshot.topic_id


def test_topics_from_the_broker(kafka_broker: str, kafka_topic: str) -> None:
    topics = Topics({"bootstrap.servers": kafka_broker})
    first = topics(kafka_topic)
    assert first is not None
    assert first.id
    assert first.partitions == 3  # as the fixture created it
    assert topics(kafka_topic) == first
    with pytest.raises(TopicGone, match="Unknown topic"):
        topics(f"writech-never-created-{uuid.uuid4().hex[:8]}")


def test_the_partitions_listed_when_the_flow_is_built_are_those_watched(
    kafka_broker: str, kafka_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tansu cannot add partitions (no CreatePartitions), so the broker's later answer is a
    stand-in; the count it is held against comes from the real listing."""
    monkeypatch.setattr(kafka, "WATCH_SECONDS", 0.0)
    produce(kafka_broker, kafka_topic, [b"m%d" % n for n in range(6)], partitions=3)
    source = kafka_source(kafka_settings(kafka_broker, kafka_topic))
    assert sorted(source.list_parts()) == [f"{n}-{kafka_topic}" for n in range(3)]
    real = Topics({"bootstrap.servers": kafka_broker})(kafka_topic)
    assert real is not None
    grown: list[Topic] = []
    source.__dict__["_topics"] = lambda topic: grown[0] if grown else real  # the cached client
    partition = source.build_part("read", f"0-{kafka_topic}", None)
    try:
        read: list[int] = []
        deadline = time.monotonic() + 30
        while len(read) < 2 and time.monotonic() < deadline:
            read += offsets_of(partition.next_batch())  # 3 partitions, as listed: no stop
        assert read == [0, 1]
        grown.append(real._replace(partitions=4))
        with pytest.raises(PartitionsAdded, match=f"{kafka_topic}' has 4 partitions now, 3 "):
            partition.next_batch()
    finally:
        partition.close()


def test_a_resume_beyond_the_end_is_refused_by_the_partition(
    kafka_broker: str, kafka_topic: str
) -> None:
    produce(kafka_broker, kafka_topic, [b"m%d" % n for n in range(12)], partitions=1)
    source = kafka_source(kafka_settings(kafka_broker, kafka_topic))
    partition = source.build_part("read", f"0-{kafka_topic}", KafkaPosition(50))
    try:
        with pytest.raises(KafkaPositionError) as refused:
            read_until(partition, lambda _: False)
    finally:
        partition.close()
    assert str(refused.value).startswith(
        f"Kafka topic '{kafka_topic}' partition 0: the next offset to read, 50, is beyond "
        "the partition's end, 12."
    )


# -- lag, commits, timestamps ----------------------------------------------------------


def test_the_lag_gauge_counts_the_messages_not_yet_read(
    kafka_broker: str, kafka_topic: str
) -> None:
    produce(kafka_broker, kafka_topic, [b"m%d" % n for n in range(30)], partitions=1)
    source = kafka_source(kafka_settings(kafka_broker, kafka_topic, batch_size=10))
    partition = source.build_part("read", f"0-{kafka_topic}", None)

    def lag() -> float:
        return counters.value("writech_kafka_consumer_lag", topic=kafka_topic, partition="0")

    try:
        first = read_until(partition, lambda batches: bool(batches))
        assert lag() == 30 - (first[-1].offsets[-1] + 1)
        assert lag() > 0
        read_until(partition, lambda _: False)
        assert lag() == 0
    finally:
        partition.close()


def test_each_snapshot_commits_the_next_offset_to_the_consumer_group(
    kafka_broker: str, kafka_topic: str
) -> None:
    group = f"writech-monitoring-{uuid.uuid4().hex[:8]}"
    produce(kafka_broker, kafka_topic, [b"m%d" % n for n in range(40)], partitions=1)
    source = kafka_source(
        kafka_settings(kafka_broker, kafka_topic, batch_size=10, kafka_commit_group=group)
    )
    partition = source.build_part("read", f"0-{kafka_topic}", None)
    read_until(partition, lambda batches: bool(batches))
    snapshot = partition.snapshot()
    partition.close()
    monitor = Consumer({"bootstrap.servers": kafka_broker, "group.id": group})
    try:
        [committed] = monitor.committed([TopicPartition(kafka_topic, 0)], timeout=10)
    finally:
        monitor.close()

    assert snapshot.next_offset is not None
    assert 0 < snapshot.next_offset < 40
    assert committed.offset == snapshot.next_offset


def test_no_commits_without_a_group(kafka_broker: str, kafka_topic: str) -> None:
    produce(kafka_broker, kafka_topic, [b"m%d" % n for n in range(5)], partitions=1)
    _, snapshot = drain(kafka_source(kafka_settings(kafka_broker, kafka_topic)), f"0-{kafka_topic}")
    monitor = Consumer({"bootstrap.servers": kafka_broker, "group.id": "BYTEWAX_IGNORED"})
    try:
        [committed] = monitor.committed([TopicPartition(kafka_topic, 0)], timeout=10)
    finally:
        monitor.close()
    assert snapshot.next_offset == 5
    assert committed.offset < 0  # none stored


def test_record_timestamps_decide_the_future_skew_alike_after_a_resume(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Issue 10 item 5, at the source: a re-read record carries the same produced_at, so an
    event two days ahead of its record's time is dead-lettered both times and one an hour
    ahead counted both times, whatever the wall clock says (it is months later)."""
    produced_ms = 1_772_323_200_000  # 2026-03-01T00:00:00Z
    values = [
        b'{"event_type": "login_event", "student_id": "a", "timestamp": "2026-03-03T00:00:00Z"}',
        b'{"event_type": "login_event", "student_id": "w", "timestamp": "2026-03-01T01:00:00Z"}',
    ]
    producer = Producer({"bootstrap.servers": kafka_broker})
    for number, value in enumerate(values * 3):
        producer.produce(kafka_topic, value, partition=0, timestamp=produced_ms + number)
    assert producer.flush(30) == 0
    source = kafka_source(kafka_settings(kafka_broker, kafka_topic, batch_size=2))
    partition = source.build_part("read", f"0-{kafka_topic}", None)
    first = read_until(partition, lambda batches: len(offsets_of(batches)) >= 2)
    snapshot = partition.snapshot()
    rest = read_until(partition, lambda _: False)
    partition.close()
    resumed, _ = drain(source, f"0-{kafka_topic}", snapshot)
    decoder = EventDecoder(Settings().tz)

    def fates(batches: list[RawBatch]) -> list[tuple[int, float, str]]:
        found = []
        for batch in batches:
            events_, dead = decoder.decode_batch(batch)
            fate = {event.offset: "counted" for event in events_}
            fate |= {letter.offset: letter.reason for letter in rows.dead_letters(dead)}
            found += [
                (o, t, fate[o]) for o, t in zip(batch.offsets, batch.produced_at, strict=True)
            ]
        return found

    assert fates(resumed) == fates(rest)
    assert [fate for *_, fate in fates(first + rest)] == ["bad_timestamp", "counted"] * 3
    assert [at for _, at, _ in fates(first + rest)] == [(produced_ms + n) / 1000 for n in range(6)]


# -- the partition's logic, against a scripted consumer ---------------------------------


class ScriptedConsumer:
    """What a `KafkaPartition` asks of its consumer, answered from a script."""

    def __init__(self, batches: list[list[Message]], watermarks: tuple[int, int] = (0, 1000)):
        self.batches = batches
        self.watermarks = watermarks
        self.assigned: list[int] = []
        self.commits: list[tuple[int, bool]] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += [tp.offset for tp in partitions]

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop(0) if self.batches else []

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        return self.watermarks

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits += [(tp.offset, asynchronous) for tp in offsets]

    def close(self) -> None:
        pass


def record(offset: int, seconds: float | None = None, value: bytes = b"{}") -> Message:
    timestamp = (
        (TIMESTAMP_NOT_AVAILABLE, -1)
        if seconds is None
        else (TIMESTAMP_CREATE_TIME, round(seconds * 1000))
    )
    return Message(topic=TOPIC, partition=0, offset=offset, value=value, timestamp=timestamp)


def error(code: int, text: str = "", fatal: bool = False, offset: int = OFFSET_INVALID) -> Message:
    return Message(
        topic=TOPIC, partition=0, offset=offset, error=KafkaError(code, text, fatal=fatal)
    )


def scripted(
    consumer: ScriptedConsumer,
    resume: KafkaPosition,
    topics: Callable[[str], Topic | None] = lambda topic: Topic("id-1", 1),
    **settings: Any,
) -> KafkaPartition:
    return KafkaPartition(
        cast(Consumer, consumer),
        TOPIC,
        0,
        resume,
        kafka_settings("-", TOPIC, **settings),
        topics,
        1,
    )


def test_consumer_errors_become_broker_error_dead_letters() -> None:
    consumer = ScriptedConsumer(
        [[record(41, 1.0), error(KafkaError._TRANSPORT, "broker connection lost"), record(42, 2.0)]]
    )
    [batch] = scripted(consumer, KafkaPosition(41)).next_batch()

    assert (batch.offsets, batch.messages) == ([41, 42], [b"{}", b"{}"])
    [rejected] = rows.dead_letters(batch.rejected)
    assert (rejected.origin, rejected.partition, rejected.offset) == (TOPIC, 0, -1)
    assert rejected.reason == "broker_error"
    assert "broker connection lost" in rejected.message
    _, dead = EventDecoder(Settings().tz).decode_batch(batch)
    assert batch.rejected[0] in dead  # the decoder passes them on


def test_a_record_without_timestamp_takes_the_newest_before_it() -> None:
    consumer = ScriptedConsumer([[record(0), record(1, 100.0), record(2, 90.0), record(3)]])
    before = time.time()
    partition = scripted(consumer, KafkaPosition(0))
    [batch] = partition.next_batch()
    snapshot = partition.snapshot()

    first, *rest = batch.produced_at
    assert before <= first <= time.time()  # nothing before it: the clock, the only case
    assert rest == [100.0, 90.0, 100.0]
    assert snapshot == KafkaPosition(4, 100.0, "id-1")
    # a resume carries the newest timestamp on: the same stand-in as before
    [again] = scripted(ScriptedConsumer([[record(4)]]), snapshot).next_batch()
    assert again.produced_at == [100.0]


def test_offsets_deleted_by_retention_are_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = ScriptedConsumer(
        [[error(KafkaError._AUTO_OFFSET_RESET, "offset 20 out of range", offset=20)], [record(50)]],
        watermarks=(50, 80),
    )
    partition = scripted(consumer, KafkaPosition(20))
    skipped_before = counters.value(
        "writech_kafka_offsets_skipped_total", topic=TOPIC, partition="0"
    )

    with caplog.at_level(logging.WARNING, logger="writech.sources.kafka"):
        assert partition.next_batch() == []
    [batch] = partition.next_batch()

    assert consumer.assigned == [20, 50]
    assert batch.offsets == [50]
    assert partition.snapshot().next_offset == 51
    skipped = counters.value("writech_kafka_offsets_skipped_total", topic=TOPIC, partition="0")
    assert skipped - skipped_before == 30
    assert "offsets 20 to 49 were deleted by the broker's retention" in caplog.text
    assert "Skipping those 30 messages, continuing from offset 50" in caplog.text


def test_offsets_deleted_by_retention_stop_the_run_if_so_configured() -> None:
    consumer = ScriptedConsumer(
        [[error(KafkaError._AUTO_OFFSET_RESET, "out of range", offset=20)]], watermarks=(50, 80)
    )
    partition = scripted(consumer, KafkaPosition(20), kafka_offset_reset="error")
    with pytest.raises(KafkaPositionError, match="WRITECH_KAFKA_OFFSET_RESET=earliest") as stop:
        partition.next_batch()
    assert "Those 30 messages were never read" in str(stop.value)


def test_an_offset_the_broker_refuses_as_beyond_the_end_stops_the_run() -> None:
    consumer = ScriptedConsumer(
        [[error(KafkaError.OFFSET_OUT_OF_RANGE, "out of range", offset=120)]], watermarks=(0, 80)
    )
    with pytest.raises(KafkaPositionError, match="120, is beyond the partition's end, 80"):
        scripted(consumer, KafkaPosition(120)).next_batch()


@pytest.mark.parametrize("code", [KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION])
def test_a_topic_that_vanished_stops_the_run(code: int) -> None:
    consumer = ScriptedConsumer([[record(7, 1.0)], [error(code, "gone")]])
    partition = scripted(consumer, KafkaPosition(7))
    partition.next_batch()
    with pytest.raises(KafkaPositionError, match=r"partition 0 no longer exists .* offset 8"):
        partition.next_batch()


def test_a_fatal_consumer_error_stops_the_run() -> None:
    consumer = ScriptedConsumer([[error(KafkaError._FATAL, "fenced", fatal=True)]])
    with pytest.raises(KafkaException, match="fenced"):
        scripted(consumer, KafkaPosition(0)).next_batch()


def test_the_topic_id_is_kept_in_the_snapshot() -> None:
    partition = scripted(ScriptedConsumer([[record(5, 1.0)]]), KafkaPosition(5))
    partition.next_batch()
    assert partition.snapshot() == KafkaPosition(6, 1.0, "id-1")


def test_no_answer_about_the_topic_does_not_stop_reading() -> None:
    partition = scripted(ScriptedConsumer([[record(5, 1.0)]]), KafkaPosition(5), lambda _: None)
    assert offsets_of(partition.next_batch()) == [5]
    assert partition.snapshot().topic_id is None


def test_a_topic_created_again_is_refused_before_anything_is_read() -> None:
    consumer = ScriptedConsumer([[record(0, 1.0)]])
    partition = scripted(consumer, KafkaPosition(5, None, "id-1"), lambda _: Topic("id-2", 1))
    with pytest.raises(KafkaPositionError, match=r"\(its id was id-1, it is id-2\)"):
        partition.next_batch()
    assert consumer.batches  # nothing consumed


def test_a_topic_the_broker_does_not_know_stops_the_run() -> None:
    def gone(topic: str) -> Topic | None:
        raise TopicGone("Broker: Unknown topic or partition")

    with pytest.raises(KafkaPositionError, match="no longer exists on the broker"):
        scripted(ScriptedConsumer([]), KafkaPosition(3), gone).next_batch()


def test_partitions_added_to_the_topic_stop_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytewax lists partitions once, when the flow is built: new ones would go unread until
    a restart, so the run stops and its next start reads them."""
    monkeypatch.setattr(kafka, "WATCH_SECONDS", 0.0)  # every batch asks
    answers = iter([Topic("id-1", 1), Topic("id-1", 1), Topic("id-1", 3)])
    consumer = ScriptedConsumer([[record(5, 1.0)], [record(6, 1.0)], [record(7, 1.0)]])
    partition = scripted(consumer, KafkaPosition(5), lambda _: next(answers))
    assert offsets_of(partition.next_batch()) == [5]
    assert offsets_of(partition.next_batch()) == [6]
    with pytest.raises(PartitionsAdded, match=r"has 3 partitions now, 1 when this run started"):
        partition.next_batch()
    assert partition.snapshot() == KafkaPosition(7, 1.0, "id-1")  # offset 7 was not read


def test_the_end_of_a_partition_ends_it_when_stopping_at_the_end() -> None:
    consumer = ScriptedConsumer([[record(3, 1.0), error(KafkaError._PARTITION_EOF)]])
    partition = scripted(consumer, KafkaPosition(3))
    assert offsets_of(partition.next_batch()) == [3]
    with pytest.raises(StopIteration):
        partition.next_batch()


def test_commits_follow_snapshots_and_the_last_one_is_synchronous() -> None:
    consumer = ScriptedConsumer([[record(5, 1.0)], [record(6, 1.0)]])
    partition = scripted(consumer, KafkaPosition(5), kafka_commit_group="monitoring")
    partition.snapshot()  # nothing read yet: nothing to commit
    partition.next_batch()
    partition.snapshot()
    partition.snapshot()  # unchanged: not committed again
    partition.next_batch()
    partition.close()
    assert consumer.commits == [(6, True), (7, False)]


# -- pure parts ------------------------------------------------------------------------


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_out_of_range_places_an_offset_against_the_log(offset: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    expected = "beyond_end" if offset > high else "deleted" if offset < low else None
    assert out_of_range(offset, low, high) == expected


def test_the_consumer_configuration() -> None:
    plain = consumer_config(
        kafka_settings("b:9092", TOPIC, kafka_options={"security.protocol": "ssl"})
    )
    assert plain["auto.offset.reset"] == "error"
    assert plain["enable.auto.commit"] is False
    assert plain["group.id"] == "BYTEWAX_IGNORED"
    assert plain["security.protocol"] == "ssl"
    grouped = consumer_config(
        kafka_settings("b:9092", TOPIC, kafka_commit_group="g", kafka_options={"group.id": "acl"})
    )
    assert grouped["group.id"] == "g"
    with pytest.raises(SettingsError, match="WRITECH_KAFKA_OFFSET_RESET"):
        consumer_config(kafka_settings("b:9092", TOPIC, kafka_options={"auto.offset.reset": "x"}))


def test_the_reset_policy_is_a_validated_setting() -> None:
    assert Settings.from_env({}).kafka_offset_reset == "earliest"
    assert Settings.from_env({"WRITECH_KAFKA_OFFSET_RESET": "error"}).kafka_offset_reset == "error"
    with pytest.raises(SettingsError, match="WRITECH_KAFKA_OFFSET_RESET"):
        Settings.from_env({"WRITECH_KAFKA_OFFSET_RESET": "latest"})


def test_positions_of_stores_written_by_bytewaxs_partition_still_load() -> None:
    assert KafkaPosition.of(1234) == KafkaPosition(1234)
    assert KafkaPosition.of(-2) == KafkaPosition(None)  # OFFSET_BEGINNING: nothing read
    assert KafkaPosition.of(None) == KafkaPosition(None)
    assert KafkaPosition(7, 1.5).position == 7
