"""Which source and which stores a configuration means (SPEC §7).

Embedded by default (JSON-lines files, chDB, SQLite); a ClickHouse URL,
a MySQL URL or the Kafka source switch to the production connectors.
The server modules are imported only when configured.
"""

from __future__ import annotations

from typing import Any

from bytewax.inputs import Source
from bytewax.outputs import DynamicSink

from writech.events import RawBatch
from writech.schema import DeadLetter, ErrorRecord, Table
from writech.settings import Settings
from writech.sinks import ClickHouse, ClickHouseWriter, RowsSink, Writer


def open_source(settings: Settings) -> Source[RawBatch]:
    if settings.source == "kafka":
        from writech.sources.kafka import kafka_source

        return kafka_source(settings)
    from writech.sources.files import JsonLinesSource

    return JsonLinesSource(settings.inputs, settings.batch_size)


def open_clickhouse(settings: Settings) -> ClickHouse:
    """The configured ClickHouse, schema applied; the caller closes it."""
    if settings.clickhouse_url:
        from writech.sinks import clickhouse

        return clickhouse.open_store(settings.clickhouse_url)
    from writech.sinks import chdb

    return chdb.open_store(settings.clickhouse_dir)


def open_error_writer(settings: Settings) -> Writer[ErrorRecord]:
    if settings.mysql_url:
        from writech.sinks.mysql import MysqlErrorWriter

        return MysqlErrorWriter(settings.mysql_url)
    from writech.sinks.sqlite import SqliteErrorWriter

    return SqliteErrorWriter(settings.sqlite_path)


def clickhouse_sink(settings: Settings, table: Table) -> RowsSink[Any]:
    return RowsSink(table.name, lambda: ClickHouseWriter(open_clickhouse(settings), table))


def error_record_sink(settings: Settings) -> RowsSink[ErrorRecord]:
    return RowsSink("error_record", lambda: open_error_writer(settings))


def extra_dead_letter_sinks(settings: Settings) -> list[tuple[str, DynamicSink[list[DeadLetter]]]]:
    """Where dead letters go besides the table: the Kafka topic when reading Kafka."""
    if settings.source == "kafka" and settings.kafka_dlq_topic:
        from writech.sinks.kafka import dead_letter_sink

        return [("write_dead_letter_topic", dead_letter_sink(settings))]
    return []


def init_db(settings: Settings) -> None:
    """Create every table the configuration writes to (idempotent)."""
    open_clickhouse(settings).close()
    open_error_writer(settings).close()
