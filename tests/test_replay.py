"""`writech replay` end to end into the embedded stores (chDB + SQLite), against an
independent computation of SPEC §3/§4 (tests/reference.py)."""

from __future__ import annotations

import gzip
import os
import pty
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.cases import INVALID, VALID, message
from tests.helpers import REPO, read_tables, run_writech, summary_numbers
from writech.events import UTF8_BOM, raw_of
from writech.generate import generate

HOSTILE = [
    "'; DROP TABLE error_record; --",
    'quote " and backslash \\ and \\n',
    "nul \x00 byte",
    "emoji 🧑‍🏫✍️ 𝄞",
    "汉字：笔顺、偏旁部首",
    "x" * 10_000,
]


def _messages() -> list[bytes]:
    """Every event type, every kind of invalid message, exact duplicates."""
    generated = list(
        generate(events=3000, students=60, days=4, malformed=0.02, duplicates=0.03, seed=11)
    )
    hand_made = [raw for _, raw, _ in INVALID] + [raw for _, raw in VALID]
    return generated + hand_made + generated[:50]  # a re-sent tail: exact duplicates


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One replay of a file mixing everything, split over a .jsonl and a .jsonl.gz with blank
    lines; the second as a Windows editor saves text (a byte order mark, CRLF)."""
    folder = tmp_path_factory.mktemp("input")
    messages = _messages()
    half = len(messages) // 2
    (folder / "a.jsonl").write_bytes(b"\n".join(messages[:half]) + b"\n\n   \n")
    with gzip.open(folder / "b.jsonl.gz", "wb") as out:
        out.write(UTF8_BOM + b"\r\n".join(messages[half:]) + b"\r\n")
    data = tmp_path_factory.mktemp("data")
    result = run_writech("replay", str(folder), "--data-dir", str(data))
    return {
        "messages": messages,
        "folder": folder,
        "data": data,
        "stdout": result.stdout,
        "tables": read_tables(data),
    }


def test_every_message_is_accounted_for(replayed: dict[str, Any]) -> None:
    numbers = summary_numbers(replayed["stdout"])
    expected = reference.expected(replayed["messages"])
    assert numbers["read"] == len(replayed["messages"])  # blank lines are not messages
    assert (
        numbers["read"] == numbers["processed"] + numbers["duplicates"] + numbers["dead-lettered"]
    )
    assert numbers["processed"] == expected.processed
    assert numbers["duplicates"] == expected.duplicates
    assert numbers["dead-lettered"] == sum(expected.dead_letters.values())


def test_daily_stats_match_the_independent_computation(replayed: dict[str, Any]) -> None:
    expected = reference.expected(replayed["messages"]).stats
    rows = {
        (r["student_id"], r["date"], r["subject"]): r
        for r in replayed["tables"]["student_daily_stats"]
    }
    assert rows.keys() == expected.keys()
    for key, values in expected.items():
        for name, value in values.items():
            assert rows[key][name] == pytest.approx(value, abs=1e-6), (key, name)


def test_metrics_match_the_independent_computation(replayed: dict[str, Any]) -> None:
    expected = reference.expected(replayed["messages"]).metrics
    rows = {(r["student_id"], r["metric_id"]): r for r in replayed["tables"]["analytics_metrics"]}
    assert rows.keys() == expected.keys()
    for key, values in expected.items():
        for name, value in values.items():
            assert rows[key][name] == pytest.approx(value), (key, name)


def test_error_records_match_the_independent_computation(replayed: dict[str, Any]) -> None:
    expected = reference.expected(replayed["messages"]).errors
    rows = {(r["event_id"], r["position"]): r for r in replayed["tables"]["error_record"]}
    assert rows.keys() == expected.keys()
    for key, values in expected.items():
        assert {name: rows[key][name] for name in values} == values


def test_dead_letters_have_reason_raw_bytes_and_position(replayed: dict[str, Any]) -> None:
    expected = reference.expected(replayed["messages"]).dead_letters
    letters = replayed["tables"]["dead_letter"]
    assert Counter(letter["reason"] for letter in letters) == expected
    by_reason = {reason for _, _, reason in INVALID}
    assert by_reason <= {letter["reason"] for letter in letters}
    lines = {}
    for name in ("a.jsonl", "b.jsonl.gz"):
        path = replayed["folder"] / name
        content = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        lines[name] = content.split(b"\n")
    for letter in letters:
        raw = raw_of(letter["raw"], letter["raw_encoding"])
        line = lines[Path(letter["origin"]).name][letter["offset"] - 1].rstrip(b"\r")
        assert line == raw, letter
        assert letter["message"]


def test_replaying_again_changes_no_table(replayed: dict[str, Any]) -> None:
    run_writech("replay", str(replayed["folder"]), "--data-dir", str(replayed["data"]))
    assert read_tables(replayed["data"]) == replayed["tables"]


def test_hostile_strings_land_byte_identical(tmp_path: Path) -> None:
    """SPEC §9.6: values are never parsed as SQL, whatever they hold."""
    raws = []
    for number, text in enumerate(HOSTILE):
        short = text[:64]
        raws.append(
            message(
                "grade_result",
                {
                    "subject": text,
                    "homework_id": text,
                    "errors": [{"question_id": text, "knowledge_point": text, "error_type": text}],
                },
                student_id=short,
                class_id=text,
                school_id=text,
                event_id=f"{text}-{number}",
            )
        )
        raws.append(
            message(
                "stroke_raw",
                {"page_id": text, "subject": text},
                student_id=short,
                class_id=text,
                school_id=text,
                event_id=f"s{number}",
            )
        )
    (tmp_path / "hostile.jsonl").write_bytes(b"\n".join(raws))
    run_writech("replay", str(tmp_path / "hostile.jsonl"), "--data-dir", str(tmp_path / "data"))
    tables = read_tables(tmp_path / "data")
    errors = tables["error_record"]
    assert sorted(e["knowledge_point"] for e in errors) == sorted(HOSTILE)
    for e in errors:
        assert (
            e["question_id"]
            == e["error_type"]
            == e["class_id"]
            == e["subject"]
            == e["knowledge_point"]
        )
        assert e["event_id"].startswith(e["knowledge_point"])
    assert sorted(r["dimension"] for r in tables["analytics_metrics"]) == sorted(HOSTILE)
    assert sorted(
        r["subject"] for r in tables["student_daily_stats"] if r["homework_completed"]
    ) == sorted(HOSTILE)
    assert sorted(
        r["class_id"] for r in tables["student_daily_stats"] if r["homework_completed"]
    ) == sorted(HOSTILE)
    assert sorted(
        r["student_id"] for r in tables["student_daily_stats"] if r["homework_completed"]
    ) == sorted(t[:64] for t in HOSTILE)


def test_default_dataflow_runs_on_the_bundled_sample(tmp_path: Path) -> None:
    """`python -m bytewax.run dataflow` with no configuration replays the sample into ./data."""
    shutil.copy(REPO / "dataflow.py", tmp_path / "dataflow.py")
    env = {key: value for key, value in os.environ.items() if not key.startswith("WRITECH_")}
    result = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    tables = read_tables(tmp_path / "data")
    sample = gzip.decompress(
        (REPO / "writech" / "sample" / "events.jsonl.gz").read_bytes()
    ).splitlines()
    expected = reference.expected([line for line in sample if line.strip()])
    assert len(tables["student_daily_stats"]) == len(expected.stats)
    assert len(tables["analytics_metrics"]) == len(expected.metrics)
    assert len(tables["error_record"]) == len(expected.errors)
    assert len(tables["dead_letter"]) == sum(expected.dead_letters.values())


def test_batching_flushes_and_workers_do_not_change_the_tables(
    replayed: dict[str, Any], tmp_path: Path
) -> None:
    """Tiny batches, a flush after nearly every batch, and two workers routing shards between them."""
    run_writech(
        "replay",
        str(replayed["folder"]),
        "--data-dir",
        str(tmp_path),
        "--workers",
        "2",
        env={"WRITECH_BATCH_SIZE": "7", "WRITECH_FLUSH_INTERVAL": "0.001"},
    )
    tables = read_tables(tmp_path)
    for name in ("student_daily_stats", "analytics_metrics", "error_record"):
        assert tables[name] == replayed["tables"][name], name
    assert Counter(r["reason"] for r in tables["dead_letter"]) == Counter(
        r["reason"] for r in replayed["tables"]["dead_letter"]
    )


def test_progress_bar_on_a_terminal(replayed: dict[str, Any], tmp_path: Path) -> None:
    """On a terminal, replay shows bytes read, messages/s and dead letters so far."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "writech",
            "replay",
            str(replayed["folder"]),
            "--data-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        env={
            **os.environ,
            "WRITECH_BATCH_SIZE": "50",
            "COLUMNS": "160",
        },  # small batches: a longer run
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output.extend(chunk)
    os.close(controller)
    text = output.decode(errors="replace")
    assert process.wait(timeout=600) == 0, text
    assert "msg/s" in text
    assert "dead letters" in text
    assert "read " in text  # the closing summary follows the bar
