"""The live latency: from producing an event to Kafka to its rows being readable in ClickHouse.

    .venv/bin/python -m benchmarks.latency [--rates 5000,20000] [--seconds 60] [--results DIR]

For each rate, the dataflow runs as production runs it: `python -m
bytewax.run writech.dataflow` with `WRITECH_SOURCE=kafka`, reading a fresh
3-partition topic on a Tansu broker from its tail (no stop at the end),
with the default flush interval, into a fresh ClickHouse HTTP fixture
(chDB behind ClickHouse's HTTP interface) and MariaDB database, in a
process of its own (`benchmarks.child module`, which also times its
consumer batches, `aggregate` batches and flushes, and inserts).

A producer sends generated events with current timestamps at a steady
rate: first `--warmup` seconds (not measured), then `--seconds`. Every
`--probe-every` seconds it also sends a probe: an event of a student of its
own whose id says when it was produced. A poller reads
`student_minute_stats` and `student_daily_stats` with FINAL every `--poll`
seconds and notes when each probe's window row and daily row are first
readable; a probe's latency is that moment minus its production time, so
it is late by up to one poll interval. After the producer stops, polling
goes on until every probe was seen (or `--drain` seconds).

The result says, per rate, the rate produced and how far the producer ever
fell behind its schedule, p50/p95/max of both latencies (and in the first
and last third of the run: a flow that cannot keep up gets slower as it
goes), the broker's acknowledgement time of the probes, and what bounds
the latency: the flush interval, the dataflow's batch, flush and insert
times, its CPU and the services'.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.services import (
    cpu_by_process,
    cpu_by_service,
    machine_busy_seconds,
    servers,
)

REPO = Path(__file__).resolve().parents[1]
PROBE: Final = "probe-"  # the id prefix of probe students
SERVICES: Final = ("kafka broker", "clickhouse fixture", "mariadb")
# What the dataflow's process times, call by call (`benchmarks.child --timed`).
TIMED: Final = {
    "consumer batch": "writech.sources.kafka:KafkaPartition.next_batch",
    "aggregate batch": "writech.shards:ShardLogic.on_batch",
    "shard flush": "writech.shards:ShardLogic.on_notify",
    "class flush": "writech.shards:ClassWindowLogic.on_notify",
    "insert": "writech.stores.sink:_RowsPartition.write_batch",
}
_PRELOAD: Final = (
    "writech.flow,writech.stores.clickhouse,writech.stores.mysql,writech.sources.kafka,"
    "writech.stores.kafka,bytewax.connectors.kafka"
)
_TICK: Final = 0.005  # the producer's pace: what is due is sent every 5 ms
_READY_TIMEOUT: Final = 120.0
# Both tables' probe rows, read as a reader of the tables would (FINAL).
_PROBES_QUERY: Final = """
SELECT 'window' AS kind, student_id FROM writech.student_minute_stats FINAL
WHERE student_id LIKE 'probe-%'
UNION ALL
SELECT 'daily' AS kind, student_id FROM writech.student_daily_stats FINAL
WHERE student_id LIKE 'probe-%'"""


# -- what is produced -----------------------------------------------------------


class Messages:
    """Generated events as templates: timestamp and event id are filled in when sent.

    `writech generate`'s stream (one day, `students` students, 1% malformed
    messages, sent as they are); an event with an id gets one of its own per
    message sent, so no event repeats another. Events without one (30%) are
    identified by a hash of their bytes, their timestamp included.
    """

    def __init__(self, count: int, students: int) -> None:
        from writech.generate import MALFORMED, generate

        malformed = set(MALFORMED)
        self.templates: list[bytes] = []
        for raw in generate(count, students=students, days=1, start=date.today(), duplicates=0.0):
            if raw in malformed:
                self.templates.append(raw.replace(b"%", b"%%"))
                continue
            message = msgspec.json.decode(raw)
            message["timestamp"] = "@@TIMESTAMP@@"
            if "event_id" in message:
                message["event_id"] = "latency-@@NUMBER@@"
            self.templates.append(
                msgspec.json.encode(message)
                .replace(b"%", b"%%")
                .replace(b"@@TIMESTAMP@@", b"%(t)s")
                .replace(b"@@NUMBER@@", b"%(n)d")
            )

    def message(self, number: int, timestamp: bytes) -> bytes:
        return self.templates[number % len(self.templates)] % {b"t": timestamp, b"n": number}


def probe(sent_at: float, timestamp: bytes) -> tuple[str, bytes]:
    """A probe's student id (its production time in µs) and message."""
    student = f"{PROBE}{round(sent_at * 1_000_000)}"
    message = {
        "event_type": "stroke_raw",
        "student_id": student,
        "class_id": "probe-class",
        "school_id": "probe-school",
        "timestamp": timestamp.decode(),
        "event_id": student,
        "payload": {"stroke_count": 1, "page_id": "probe", "subject": "chinese"},
    }
    return student, msgspec.json.encode(message)


def sent_at(student: str) -> float:
    """When a probe was produced, from its student id."""
    return int(student.removeprefix(PROBE)) / 1_000_000


def now_text() -> bytes:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()


@dataclass
class Production:
    """What a producer sent in one phase."""

    seconds: float = 0.0
    messages: int = 0
    probes: list[str] = field(default_factory=list)
    # the most messages ever due but not yet sent (how far it fell behind)
    most_behind: int = 0
    acknowledged: dict[str, float] = field(default_factory=dict)  # probe -> broker ack time

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


class Producer:
    """Sends `Messages` to a topic at a steady rate, with probes, round-robin over partitions."""

    def __init__(self, bootstrap: str, topic: str, messages: Messages, partitions: int = 3) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self._producer = KafkaProducer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "acks": "all",
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self._topic = topic
        self._messages = messages
        self._partitions = partitions
        self._number = 0

    def send(self, value: bytes, on_delivery: Callable[..., None] | None = None) -> None:
        partition = self._number % self._partitions
        self._number += 1
        while True:
            try:
                self._producer.produce(
                    self._topic, value=value, partition=partition, on_delivery=on_delivery
                )
                return
            except BufferError:  # the local queue is full: let librdkafka send
                self._producer.poll(0.01)

    def probe(self, production: Production) -> str:
        now = time.time()
        student, message = probe(now, now_text())

        def acknowledged(error: object, _: object) -> None:
            if error is None:
                production.acknowledged[student] = time.time() - now

        self.send(message, acknowledged)
        production.probes.append(student)
        return student

    def steadily(self, rate: int, seconds: float, probe_every: float | None) -> Production:
        """Send at `rate` messages a second for `seconds`; a probe every `probe_every` s."""
        production = Production()
        started = time.monotonic()
        next_probe = started
        first = self._number
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate)
            sent = self._number - first
            production.most_behind = max(production.most_behind, due - sent)
            timestamp = now_text()
            for _ in range(due - sent):
                self.send(self._messages.message(self._number, timestamp))
            if probe_every is not None and time.monotonic() >= next_probe:
                self.probe(production)
                next_probe += probe_every
            self._producer.poll(0)
            time.sleep(_TICK)
        production.seconds = time.monotonic() - started
        production.messages = self._number - first
        return production

    @property
    def sent(self) -> int:
        return self._number

    def flush(self) -> None:
        left = self._producer.flush(30)
        if left:
            raise RuntimeError(f"{left} messages not delivered to {self._topic}")


# -- what is read ---------------------------------------------------------------


class Poller(threading.Thread):
    """Reads the probes' rows every `interval` s; `seen[(kind, student)]` is when a row was
    first readable (the time its query was sent)."""

    def __init__(self, query: Callable[[str], list[tuple[str, str]]], interval: float) -> None:
        super().__init__(daemon=True)
        self._query = query
        self._interval = interval
        self._stopping = threading.Event()
        self.seen: dict[tuple[str, str], float] = {}
        self.query_seconds: list[float] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                started = time.time()
                rows = self._query(_PROBES_QUERY)
                took = time.time() - started
                self.query_seconds.append(took)
                for kind, student in rows:
                    self.seen.setdefault((kind, student), started)
                self._stopping.wait(max(0.0, self._interval - took))
        except BaseException as exc:  # said by the thread that waits for results
            self.failure = exc

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)
        if self.failure is not None:
            raise RuntimeError(f"polling ClickHouse failed: {self.failure}") from self.failure

    def all_seen(self, students: Sequence[str]) -> bool:
        return all((kind, student) in self.seen for student in students for kind in _KINDS)


_KINDS: Final = ("window", "daily")


# -- one rate -------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: float = 60.0
    warmup: float = 10.0
    probe_every: float = 0.5
    poll: float = 0.2
    drain: float = 60.0
    students: int = 5000
    templates: int = 50_000
    # WRITECH_FLUSH_INTERVAL for the dataflow; None: the product's default
    flush_interval: float | None = None


def measure(rate: int, folder: Path, options: Options, messages: Messages) -> dict[str, Any]:
    """Produce at `rate` with probes while the dataflow runs from Kafka; the latencies."""
    from tests.services.kafka import TansuBroker, create_topic

    folder.mkdir(parents=True, exist_ok=True)
    broker = TansuBroker(folder / "tansu.log")
    broker.start()
    try:
        topic = create_topic(broker.bootstrap, f"writech-latency-{rate}", 3)
        with servers(folder / "stores") as stores:
            client = stores.clickhouse.client()

            def query(sql: str) -> list[tuple[str, str]]:
                return [
                    (str(kind), str(student)) for kind, student in client.query(sql).result_rows
                ]

            env = {
                **{name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")},
                **stores.env,
                "WRITECH_SOURCE": "kafka",
                "WRITECH_KAFKA_BROKERS": broker.bootstrap,
                "WRITECH_KAFKA_TOPICS": topic,
                "WRITECH_KAFKA_DLQ_TOPIC": f"{topic}-dlq",
            }  # fmt: skip
            if options.flush_interval is not None:
                env["WRITECH_FLUSH_INTERVAL"] = str(options.flush_interval)
            return _run(
                rate,
                folder,
                options,
                messages,
                Producer(broker.bootstrap, topic, messages),
                query,
                env,
            )
    finally:
        broker.stop()


def _run(
    rate: int,
    folder: Path,
    options: Options,
    messages: Messages,
    producer: Producer,
    query: Callable[[str], list[tuple[str, str]]],
    env: dict[str, str],
) -> dict[str, Any]:
    output, log = folder / "dataflow.json", folder / "dataflow.log"
    command = [
        sys.executable, "-m", "benchmarks.child", str(output), "module", "--preload", _PRELOAD,
        "--timed", ",".join(TIMED.values()), "bytewax.run", "--", "writech.dataflow",
    ]  # fmt: skip
    with log.open("wb") as stream:
        dataflow = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=stream, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_ready(producer, query, dataflow, log)
        producer.steadily(rate, options.warmup, None)
        # CPU from here on: the measured production and the drain after it
        wall, busy, cpu = time.monotonic(), machine_busy_seconds(), cpu_by_process()
        own = os.times()
        poller = Poller(query, options.poll)
        poller.start()
        production = producer.steadily(rate, options.seconds, options.probe_every)
        producer.flush()
        deadline = time.monotonic() + options.drain
        while not poller.all_seen(production.probes) and time.monotonic() < deadline:
            time.sleep(options.poll)
        poller.stop()
        wall = time.monotonic() - wall
        used = {
            "seconds": round(wall, 1),
            "dataflow": round(_cpu_of(dataflow.pid) - cpu[dataflow.pid][1], 2),
            "producer_and_poller": round(sum(os.times()[:2]) - sum(own[:2]), 2),
            "services": cpu_by_service(cpu, SERVICES),
            "machine": round(machine_busy_seconds() - busy, 2),
            "load_average": os.getloadavg()[0],
        }
    finally:
        if dataflow.poll() is None:
            dataflow.send_signal(signal.SIGTERM)  # a clean stop: what was read is written
    if dataflow.wait():
        raise RuntimeError(f"the dataflow failed; its log {log}:\n{_tail(log)}")
    flow: dict[str, Any] = msgspec.json.decode(output.read_bytes())
    result = report(rate, options, production, poller, flow, used)
    result["produced_total"] = producer.sent
    return result


def _cpu_of(pid: int) -> float:
    return cpu_by_process()[pid][1]


def _wait_until_ready(
    producer: Producer,
    query: Callable[[str], list[tuple[str, str]]],
    dataflow: subprocess.Popen[bytes],
    log: Path,
) -> None:
    """Probe once a second until the dataflow wrote a probe's rows (it reads and writes)."""
    deadline = time.monotonic() + _READY_TIMEOUT
    ready = Production()
    while time.monotonic() < deadline:
        if dataflow.poll() is not None:
            raise RuntimeError(f"the dataflow exited; its log {log}:\n{_tail(log)}")
        producer.probe(ready)
        producer.flush()
        time.sleep(1)
        try:
            seen = {student for kind, student in query(_PROBES_QUERY) if kind == "window"}
        except Exception:  # the tables are not there yet
            continue
        if seen & set(ready.probes):
            return
    raise TimeoutError(f"the dataflow wrote no row within {_READY_TIMEOUT:.0f} s; log {log}")


def report(
    rate: int,
    options: Options,
    production: Production,
    poller: Poller,
    flow: dict[str, Any],
    cpu: dict[str, Any],
) -> dict[str, Any]:
    """The latencies of one rate, and what the run measured of what bounds them."""
    probes = production.probes
    latency: dict[str, Any] = {}
    for kind in _KINDS:
        found = [
            poller.seen[(kind, student)] - sent_at(student)
            for student in probes
            if (kind, student) in poller.seen
        ]
        third = max(1, len(probes) // 3)
        latency[kind] = {
            **percentiles(found),
            "unseen": len(probes) - len(found),
            "first_third_p50": _median(found[:third]),
            "last_third_p50": _median(found[-third:]),
        }
    acknowledged = list(production.acknowledged.values())
    return {
        "rate": rate,
        "produced_rate": round(production.rate),
        "seconds": round(production.seconds, 1),
        "messages": production.messages,
        "most_behind_messages": production.most_behind,
        "probes": len(probes),
        "poll_seconds": options.poll,
        "poll_query_seconds": percentiles(poller.query_seconds),
        "latency_seconds": latency,
        "kafka_ack_seconds": percentiles(acknowledged),
        "flush_interval_seconds": options.flush_interval or _default_flush_interval(),
        "dataflow": {
            "messages_read": flow.get("messages_read"),
            "rows_written": flow.get("rows_written"),
            "insert_seconds": flow.get("insert_seconds"),
            "inserts": flow.get("inserts"),
            "calls": {name: flow["call_seconds"].get(target) for name, target in TIMED.items()},
        },
        "cpu_seconds": cpu,
    }


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _default_flush_interval() -> float:
    from writech.settings import Settings

    return Settings().flush_interval


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def measure_rates(rates: Sequence[int], folder: Path, options: Options) -> list[dict[str, Any]]:
    messages = Messages(options.templates, options.students)
    results = []
    for rate in rates:
        print(f"-- latency at {rate:,} events/s ...", file=sys.stderr, flush=True)
        result = measure(rate, folder / f"latency-{rate}", options, messages)
        print(f"   {summary_line(result)}", file=sys.stderr, flush=True)
        results.append(result)
    return results


def summary_line(result: dict[str, Any]) -> str:
    window, daily = (result["latency_seconds"][kind] for kind in _KINDS)
    return (
        f"{result['produced_rate']:,} events/s produced; window row p50/p95/max "
        f"{window.get('p50')}/{window.get('p95')}/{window.get('max')} s, daily row "
        f"{daily.get('p50')}/{daily.get('p95')}/{daily.get('max')} s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", default="5000,20000", help="events a second, comma-separated")
    parser.add_argument("--seconds", type=float, default=Options.seconds)
    parser.add_argument("--warmup", type=float, default=Options.warmup)
    parser.add_argument("--probe-every", type=float, default=Options.probe_every)
    parser.add_argument("--poll", type=float, default=Options.poll)
    parser.add_argument(
        "--flush-interval",
        type=float,
        help="the dataflow's flush interval (default: the product's)",
    )
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    options = Options(
        args.seconds, args.warmup, args.probe_every, args.poll, flush_interval=args.flush_interval
    )
    results = measure_rates([int(rate) for rate in args.rates.split(",")], args.results, options)
    encoded = msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n"
    (args.results / "latency.json").write_bytes(encoded)
    for result in results:
        print(f"{result['rate']:>7,}/s: {summary_line(result)}")


if __name__ == "__main__":
    main()
