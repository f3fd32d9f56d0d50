"""Rows to Arrow without pandas: pyarrow's probe for it is answered, not imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

CONVERT = """
import sys
from writech.rows import TableRows
from writech.schema import STUDENT_MINUTE_STATS
from writech.stores.arrow import to_arrow

row = ("s1", "c1", "k1", 60, 60, 1, 2, 1, 0.5, 0, 0.0, 0, ["a"], [1], [0.5], 1)
table = to_arrow(TableRows.from_rows(STUDENT_MINUTE_STATS, [row]))
print("pandas" in sys.modules)
import pandas  # a later explicit use still finds it
print(table.to_pandas().iloc[0]["character_scores"].tolist(), "pandas" in sys.modules)
"""


def test_converting_rows_leaves_pandas_unimported_and_importable() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CONVERT], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["False", "[0.5] True"]


REPLAY = """
import atexit, runpy, sys
atexit.register(lambda: print("pandas imported:", "pandas" in sys.modules))
sys.argv = ["writech", *sys.argv[1:]]
runpy.run_module("writech", run_name="__main__", alter_sys=True)
"""


def test_a_replay_never_imports_pandas(tmp_path: Path) -> None:
    sample = REPO / "writech" / "sample" / "events.jsonl.gz"
    result = subprocess.run(
        [sys.executable, "-c", REPLAY, "replay", "-q", "--data-dir", str(tmp_path), str(sample)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.splitlines()[-1] == "pandas imported: False"
