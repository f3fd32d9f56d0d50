"""Output files (`writech.outputs.written`): whole, or not there at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from writech.outputs import OutputError, written


def test_the_file_takes_its_name_only_once_complete(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("the previous report")
    with written(target) as stream:
        stream.write(b"half")
        assert target.read_text() == "the previous report"
        assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial")]
        stream.write(b" and the rest")
    assert target.read_bytes() == b"half and the rest"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.html"]


def test_the_mode_is_what_open_would_give(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        with written(tmp_path / "export.jsonl") as stream:
            stream.write(b"{}\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "export.jsonl").stat().st_mode) == 0o640


def _write_then_fail(target: Path, error: BaseException) -> None:
    with written(target) as stream:
        stream.write(b"half")
        raise error


def test_a_failure_leaves_the_previous_file_and_no_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("the previous report")
    with pytest.raises(RuntimeError, match="rendering failed"):
        _write_then_fail(target, RuntimeError("rendering failed"))
    with pytest.raises(OutputError, match=r"cannot write .*: disk full; nothing was put in"):
        _write_then_fail(target, OSError(28, "disk full"))
    assert target.read_text() == "the previous report"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.html"]


def test_a_directory_that_cannot_hold_it_is_said(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "report.html"
    with pytest.raises(OutputError, match=r"cannot write .*: No such file or directory"):
        written(missing).__enter__()


def test_a_dash_is_standard_output(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    with written("-") as stream:
        stream.write("报告\n".encode())
    assert capfdbinary.readouterr().out == "报告\n".encode()
