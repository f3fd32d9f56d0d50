"""The product's counters, in the Prometheus client's default registry.

Bytewax serves that registry on its dataflow API (`/metrics`, port 3030,
when `BYTEWAX_DATAFLOW_API_ENABLED` is set), so these are exported beside
its own metrics. They count per process: `processed + duplicates +
dead_lettered == read` holds for every run (SPEC §2).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info

from writech import __version__
from writech.schema import SCHEMA_VERSION

# Which release a pod runs, and the schema it writes: what a dashboard needs to
# tell a rollout (or a pod left behind by one) from a fault.
BUILD = Info("writech_build", "The release this process runs and the table schema it writes")
BUILD.info({"version": __version__, "schema": str(SCHEMA_VERSION)})

MESSAGES_READ = Counter("writech_messages_read", "Messages read from the input")
BYTES_READ = Counter("writech_input_bytes_read", "Bytes of input files consumed")
PROCESSED = Counter("writech_events_processed", "Distinct valid events counted into the outputs")
DUPLICATES = Counter("writech_events_duplicate", "Events whose id was already counted")
DEAD_LETTERED = Counter(
    "writech_messages_dead_lettered", "Messages written to the dead-letter store", ["reason"]
)
ROWS_WRITTEN = Counter("writech_rows_written", "Rows written to a table", ["table"])
SINK_BATCH_SECONDS = Histogram(
    "writech_sink_batch_seconds", "Time to write one batch to a table", ["table"]
)
STORE_RETRIES = Counter(
    "writech_store_retries", "Requests to a store retried after a transient failure", ["store"]
)
KAFKA_CONSUMER_LAG = Gauge(
    "writech_kafka_consumer_lag",
    "Messages between a Kafka partition's next offset to read and its high watermark",
    ["topic", "partition"],
)
KAFKA_OFFSETS_SKIPPED = Counter(
    "writech_kafka_offsets_skipped",
    "Kafka offsets deleted by the broker's retention before they were read",
    ["topic", "partition"],
)
WINDOW_EVENTS_TOO_LATE = Counter(
    "writech_window_events_too_late",
    "Events counted in their daily row whose minute window was already final",
)
STATE_ROWS = Gauge("writech_state_rows", "Daily rows retained in this process's state")
STATE_EVENT_IDS = Gauge(
    "writech_state_event_ids", "Event ids retained in this process's state for dedup"
)


def value(name: str, **labels: str) -> float:
    """The current value of a counter sample, 0 when it was never set."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def dead_lettered_by_reason() -> dict[str, int]:
    """Dead-lettered message counts per reason, as far as this process saw them."""
    found: dict[str, int] = {}
    for metric in DEAD_LETTERED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                found[sample.labels["reason"]] = int(sample.value)
    return found
