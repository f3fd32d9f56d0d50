"""The id and number arguments of the commands (`writech.arguments`): what no event can
carry, and numbers out of their range, are refused."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import writech
from tests.helpers import REPO
from writech.arguments import (
    fraction,
    id_argument,
    non_negative_int,
    output_directory,
    output_file,
    port,
    positive_int,
    seconds,
    student_id_argument,
)
from writech.events import MAX_STUDENT_ID_CHARS
from writech.schema import SCHEMA_VERSION
from writech.timestamps import TimestampParser


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_STUDENT_ID_CHARS))
def test_text_a_message_can_carry_is_taken_as_it_is(value: str) -> None:
    assert id_argument(value) == value
    assert student_id_argument(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("stu-\udcff", "is not UTF-8 text"),  # the byte 0xff, as Python keeps it from argv
        ("\ud800", "is not UTF-8 text"),
        ("", "cannot be empty"),
    ],
)
def test_an_id_no_event_can_carry_is_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        id_argument(value)


@pytest.mark.parametrize("value", ["", "x" * (MAX_STUDENT_ID_CHARS + 1), "stu-\udcff"])
def test_a_student_id_is_one_to_the_longest_an_event_may_carry(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        student_id_argument(value)


@pytest.mark.parametrize(
    ("parse", "taken", "refused"),
    [
        (positive_int, ["1", "64"], ["0", "-1", "1.5", "x", ""]),
        (non_negative_int, ["0", "10000"], ["-5", "nan", "1e3"]),
        (seconds, ["0", "2.5", "1e3", "inf"], ["-0.5", "-1", "nan", "x"]),
        (fraction, ["0", "0.01", "1"], ["-0.1", "1.01", "2", "nan"]),
        (port, ["0", "8080", "65535"], ["-1", "65536", "70000"]),
    ],
)
def test_numbers_are_taken_in_their_range_and_refused_outside_it(
    parse: Callable[[str], float], taken: list[str], refused: list[str]
) -> None:
    assert [parse(text) for text in taken] == [float(text) for text in taken]
    for text in refused:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(repr(text))} is not "):
            parse(text)


def test_outputs_are_files_in_directories_and_directories_not_under_files(
    tmp_path: Path,
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert output_file("-") == "-"
    assert output_file(str(tmp_path / "report.html")) == str(tmp_path / "report.html")
    assert output_directory(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    refusals: list[tuple[Callable[[str], object], Path, str]] = [
        (output_file, tmp_path, "is a directory; name a file in it"),
        (output_file, tmp_path / "missing" / "r.html", "there is no directory"),
        (output_file, a_file / "r.html", "there is no directory"),
        (output_directory, a_file, "is a file, not a directory"),
        (output_directory, a_file / "sub", "is a file, not a directory"),
    ]
    for parse, path, said in refusals:
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            parse(str(path))


def _writech(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writech", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["report", "class", "c", "--out", "."],  # each a traceback once the work was done
        ["report", "class", "c", "--out", "notes.txt/c.html"],
        ["report", "class", "--all-classes", "--out-dir", "notes.txt/reports"],
        ["dead-letters", "export", "-o", "."],
        ["generate", "-o", "."],
    ],
)
def test_commands_refuse_an_output_they_could_not_write(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = _writech(args, tmp_path)
    assert result.returncode == 2
    assert "error: argument" in result.stderr.splitlines()[-1]
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "x.jsonl", "--workers", "0"],  # ran with no worker: nothing read, exit 0
        ["replay", "x.jsonl", "-s", "-1"],
        ["generate", "--students", "0"],  # a traceback from the generator
        ["generate", "--class-size", "0"],
        ["generate", "--malformed", "2"],
        ["generate", "--events", "-5"],  # wrote nothing, exit 0
        ["recovery", "init", "--partitions", "0"],  # a store of no partition
        ["dead-letters", "list", "--limit", "-5"],  # "0 letters"
        ["serve", "--port", "70000"],  # a traceback
    ],
)
def test_commands_refuse_numbers_out_of_range_before_doing_anything(
    args: list[str], tmp_path: Path
) -> None:
    result = _writech(args, tmp_path)
    assert result.returncode == 2
    assert " is not a" in result.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # nothing made: no data dir, no store, no file


@pytest.mark.parametrize(
    "days",
    [
        ["--start", "9999-12-31"],  # an OverflowError from the generator
        ["--start", "2106-02-07", "--days", "1"],  # only letters: the stores hold no such day
        ["--start", "2106-02-03"],  # five days by default: the last is past the stores' end
        ["--start", "1969-12-31", "--days", "1"],
        ["--days", "999999999999"],
    ],
)
def test_generate_refuses_days_the_stores_cannot_hold(days: list[str], tmp_path: Path) -> None:
    result = _writech(["generate", "--events", "20", "-o", "g.jsonl", *days], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "writech: --start and --days: the school days must lie from 1970-01-01 to 2106-02-06, "
        "the days whose events the stores can hold\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("start", ["1970-01-01", "2106-02-06"])
def test_generate_makes_events_the_stores_can_hold_on_the_first_and_the_last_day(
    start: str, tmp_path: Path
) -> None:
    result = _writech(["generate", "--events", "500", "--start", start, "--days", "1",
                       "-o", "g.jsonl"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    parser = TimestampParser(ZoneInfo("Asia/Shanghai"))
    for line in (tmp_path / "g.jsonl").read_bytes().splitlines():
        try:
            timestamp = msgspec.json.decode(line)["timestamp"]
        except (msgspec.DecodeError, KeyError, TypeError):
            continue  # the generator's malformed messages
        if isinstance(timestamp, str) and timestamp.startswith(start[:4]):
            parser.parse(timestamp)  # raises if out of range


def test_the_version_is_one_release_said_alike_everywhere() -> None:
    """`writech --version` names the release the package's metadata names (pyproject.toml
    reads it from `writech.__version__`) and the table schema it writes."""
    said = subprocess.run(
        [sys.executable, "-m", "writech", "--version"], capture_output=True, text=True, check=True
    )
    assert said.stdout == f"writech {writech.__version__} (table schema {SCHEMA_VERSION})\n"
    assert importlib.metadata.version("writech") == writech.__version__
