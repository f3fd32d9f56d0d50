"""Columns as Arrow, by each column's ClickHouse type: how rows reach ClickHouse.

Both ClickHouse stores insert Arrow (chDB through its Python table
function, a server through clickhouse-connect's Arrow insert): each
column converts in one C call, where a text format had ClickHouse parse
every value of every row again. Dates arrive as days since 1970-01-01 and
times as integers (microseconds, or seconds for `DateTime`), so they are
reinterpreted, not converted.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any, Final

import pyarrow as pa

from writech.rows import TableRows

_TYPES: Final[dict[str, pa.DataType]] = {
    "String": pa.string(),
    "LowCardinality(String)": pa.string(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Float64": pa.float64(),
    "Array(String)": pa.list_(pa.string()),
    "Array(LowCardinality(String))": pa.list_(pa.string()),
    "Array(UInt32)": pa.list_(pa.uint32()),
    "Array(Float64)": pa.list_(pa.float64()),
}
# Integers stored as they are, then read as the temporal type they encode.
_REINTERPRETED: Final[dict[str, tuple[pa.DataType, pa.DataType]]] = {
    "Date": (pa.int32(), pa.date32()),
    "DateTime('UTC')": (pa.int64(), pa.timestamp("s", tz="UTC")),
    "DateTime64(6, 'UTC')": (pa.int64(), pa.timestamp("us", tz="UTC")),
}


def arrow_type(clickhouse_type: str) -> pa.DataType:
    if clickhouse_type in _REINTERPRETED:
        return _REINTERPRETED[clickhouse_type][1]
    return _TYPES[clickhouse_type]


def _array(values: list[Any], clickhouse_type: str) -> pa.Array:
    if clickhouse_type in _REINTERPRETED:
        stored, shown = _REINTERPRETED[clickhouse_type]
        return pa.array(values, stored).view(shown)
    return pa.array(values, _TYPES[clickhouse_type])


def to_arrow(rows: TableRows) -> pa.Table:
    """`rows` as an Arrow table with the table's column names and types."""
    table = rows.table
    return pa.Table.from_arrays(
        [
            _array(values, type_)
            for values, type_ in zip(rows.columns, table.column_types, strict=True)
        ],
        names=list(table.column_names),
    )


class _PandasAbsent(MetaPathFinder):
    """An import finder that finds no pandas."""

    def find_spec(self, name: str, *_: object) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"no module named {name!r}", name=name)


def _answer_pyarrow_pandas_probe() -> None:
    """Tell pyarrow, once, that pandas is not there, unless it is imported already.

    pyarrow's first conversion of a Python list asks whether the list might
    be a pandas object by importing pandas (installed here as a dependency of
    chDB), and keeps the answer for the rest of the process. This product
    hands it lists only, so the import bought nothing and cost 44 MiB of the
    replay's peak RSS (3 pairs of 1M events) and 0.4-0.9 s at the first insert.
    Asked here, with the one finder in front that finds no pandas, the probe
    fails and pyarrow converts lists as before. An explicit use of pandas
    later (`to_pandas()`, `import pandas`) still imports it: only the probe's
    answer is kept.
    """
    if "pandas" in sys.modules:
        return
    finder = _PandasAbsent()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([], pa.int8())
    finally:
        sys.meta_path.remove(finder)


_answer_pyarrow_pandas_probe()
