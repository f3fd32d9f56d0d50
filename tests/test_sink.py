"""The sink every table uses (`writech.stores.sink`), on the embedded stores."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prometheus_client import REGISTRY

from writech.rows import TableRows
from writech.schema import ANALYTICS_METRICS
from writech.settings import Settings
from writech.stores.base import open_clickhouse
from writech.stores.sink import RowsSink

TODAY = (date.today() - date(1970, 1, 1)).days  # within the tables' TTL


def metrics(first: int, count: int) -> TableRows:
    return TableRows.from_rows(
        ANALYTICS_METRICS,
        [
            (f"e-{n}", "s", "c", "k", "math", "login", 1.0, "", "daily", TODAY, TODAY, n)
            for n in range(first, first + count)
        ],
    )


def inserts(table: str) -> float:
    return REGISTRY.get_sample_value("writech_sink_batch_seconds_count", {"table": table}) or 0.0


def test_each_item_is_one_insert_and_every_row_is_stored_before_the_call_returns(
    tmp_path: Path,
) -> None:
    """`batch_rows` makes its items as large as an insert should be: the sink must not
    join them into one larger insert (which holds every row twice for a moment)."""
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    partition = RowsSink("sink_test", lambda: open_clickhouse(settings)).build("write", 0, 1)
    before = inserts("sink_test")
    try:
        partition.write_batch([metrics(0, 3), metrics(3, 0), metrics(3, 2)])
    finally:
        partition.close()
    assert inserts("sink_test") - before == 2, "one insert per item, none for an empty one"
    store = open_clickhouse(settings)
    try:
        stored = store.query("SELECT metric_id FROM writech.analytics_metrics FINAL")
    finally:
        store.close()
    assert sorted(row["metric_id"] for row in stored) == [f"e-{n}" for n in range(5)]
