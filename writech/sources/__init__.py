"""The inputs: JSON-lines files (`files`) and Kafka topics (`kafka`), as Bytewax sources of `RawBatch`es."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bytewax.inputs import FixedPartitionedSource, Source, StatefulSourcePartition

from writech.events import RawBatch
from writech.failures import stop_requested
from writech.settings import Settings


def open_source(settings: Settings) -> Source[RawBatch]:
    """The configured source (SPEC §7); the Kafka module is imported only when configured."""
    if settings.source == "kafka":
        from writech.sources.kafka import kafka_source

        return kafka_source(settings)
    from writech.sources.files import JsonLinesSource

    return JsonLinesSource(settings.inputs, settings.batch_size, settings.max_message_bytes)


class _StoppablePartition(StatefulSourcePartition[RawBatch, Any]):
    """A partition whose input ends once a stop is requested (`writech.failures`)."""

    def __init__(self, inner: StatefulSourcePartition[RawBatch, Any]) -> None:
        self._inner = inner

    def next_batch(self) -> list[RawBatch]:
        if stop_requested():
            raise StopIteration
        return list(self._inner.next_batch())

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class StoppableSource(FixedPartitionedSource[RawBatch, Any]):
    """`source`, ending its input on SIGTERM or Ctrl-C so that the run stops as at its end.

    Everything read before the stop is processed and written, and the
    positions reached are in the last snapshot, so a resume continues there.
    """

    def __init__(self, source: FixedPartitionedSource[RawBatch, Any]) -> None:
        self.source = source

    def list_parts(self) -> list[str]:
        return self.source.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePartition:
        return _StoppablePartition(self.source.build_part(step_id, for_part, resume_state))
