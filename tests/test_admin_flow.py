"""The day-2 commands with the dataflow running: dead letters re-driven through Kafka count
once, and a forgotten student stays forgotten when a resume reads their messages again."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers import (
    CHURN,
    REPO,
    dataflow_command,
    dataflow_environment,
    init_recovery_store,
    kill,
    read_positions,
    read_tables,
    run_dataflow,
    snapshots,
    start_dataflow,
    summary_numbers,
    wait_for_commit,
)
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.kafka import consume_all, produce
from tests.services.mysql import MysqlUser
from tests.test_admin import FORGOTTEN, is_theirs, letter_of, message, write_lines
from tests.test_end_to_end_kafka import _server_tables
from writech.admin import Exported, message_of
from writech.events import event_id_of, raw_of
from writech.generate import generate
from writech.privacy import named_student
from writech.rows import TableRows
from writech.schema import DEAD_LETTER
from writech.shards import restore_shard
from writech.stores.chdb import open_store


def writech(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writech", *args],
        cwd=REPO,
        env=dataflow_environment(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(*args: str, env: dict[str, str]) -> str:
    result = writech(*args, env=env)
    assert result.returncode == 0, f"writech {' '.join(args)}:\n{result.stderr}"
    return result.stdout


# -- re-driving ----------------------------------------------------------------


def scores_as_strings() -> list[bytes]:
    """Graded homework whose producer sent scores as strings: four with an event id,
    two without (their id is then the hash of their bytes)."""
    with_ids = [
        message(f"stu-r{n}", "grade_result", event_id=f"r{n}",
                payload={"score": "80", "homework_id": f"h{n}"})
        for n in range(4)
    ]  # fmt: skip
    without = [
        message(f"stu-r{n}", "grade_result", payload={"score": "60", "homework_id": f"n{n}"})
        for n in range(2)
    ]
    return with_ids + without


def corrected(export: Path, to: Path) -> list[bytes]:
    """The export with every score made a number, as an operator would; the messages."""
    lines = [msgspec.json.decode(line, type=Exported) for line in export.read_bytes().splitlines()]
    for line in lines:
        line.value["payload"]["score"] = float(line.value["payload"]["score"])
    to.write_bytes(b"".join(msgspec.json.encode(line) + b"\n" for line in lines))
    return [message_of(line) for line in lines]


@pytest.mark.services
def test_corrected_dead_letters_are_redriven_into_the_flow_and_count_once(
    kafka_broker: str,
    kafka_topic: str,
    clickhouse_server: ClickHouseServer,
    mysql_user: MysqlUser,
    mysql_database: str,
    tmp_path: Path,
) -> None:
    good = list(generate(events=400, students=8, days=1, malformed=0, duplicates=0, seed=3))
    produce(kafka_broker, kafka_topic, good + scores_as_strings())
    env = {
        "WRITECH_SOURCE": "kafka",
        "WRITECH_KAFKA_BROKERS": kafka_broker,
        "WRITECH_KAFKA_TOPICS": kafka_topic,
        "WRITECH_KAFKA_DLQ_TOPIC": f"{kafka_topic}-dlq",
        "WRITECH_KAFKA_STOP_AT_END": "true",
        "WRITECH_CLICKHOUSE_URL": clickhouse_server.url,
        "WRITECH_MYSQL_URL": mysql_database,
        "WRITECH_DATA_DIR": str(tmp_path / "unused"),
    }
    recovery = init_recovery_store(tmp_path / "recovery")

    def run_the_flow() -> dict[str, Any]:
        run_dataflow(dataflow_command(recovery), env, tmp_path / "flow.log")
        return _server_tables(clickhouse_server, mysql_user, mysql_database)

    first = run_the_flow()
    assert len(first["dead_letter"]) == 6
    export, fixed = tmp_path / "dead.jsonl", tmp_path / "fixed.jsonl"
    ok("dead-letters", "export", "--reason", "bad_payload", "-o", str(export), env=env)
    messages = corrected(export, fixed)

    assert "would send 6 messages" in ok(
        "dead-letters", "redrive", str(fixed), "--dry-run", env=env
    )
    assert len(consume_all(kafka_broker, kafka_topic)) == len(good) + 6  # the dry run sent none
    assert "sent 6 messages" in ok("dead-letters", "redrive", str(fixed), env=env)
    second = run_the_flow()

    homework = {row["event_id"]: row for row in second["homework_result"]}
    scores = {
        json.loads(raw).get("event_id") or event_id_of(raw): json.loads(raw)["payload"]["score"]
        for raw in messages
    }
    assert sorted(scores.values()) == [60.0] * 2 + [80.0] * 4
    assert {event_id: homework[event_id]["score_percent"] for event_id in scores} == scores
    assert len(second["homework_result"]) == len(first["homework_result"]) + 6
    assert second["dead_letter"] == first["dead_letter"]  # the letters stay: what happened
    listed = ok("dead-letters", "list", "--format", "json", env=env).splitlines()
    assert [json.loads(line)["redriven"] for line in listed] == [True] * 6
    assert ok("dead-letters", "list", "--not-redriven", env=env).strip() == "0 letters"

    again = ok("dead-letters", "redrive", str(fixed), env=env)
    assert again.count("re-driven before") == 6
    assert "sent 0 messages" in again
    assert "sent 6 messages" in ok("dead-letters", "redrive", str(fixed), "--again", env=env)
    assert len(consume_all(kafka_broker, kafka_topic)) == len(good) + 18
    assert run_the_flow() == second  # the same events again: duplicates, counted once

    still_wrong = tmp_path / "still-wrong.jsonl"
    still_wrong.write_bytes(export.read_bytes() + fixed.read_bytes())
    refused = writech("dead-letters", "redrive", str(still_wrong), env=env)
    assert refused.returncode == 1
    assert refused.stdout.count(": bad_payload: ") == 6
    assert "nothing was sent" in refused.stderr
    assert len(consume_all(kafka_broker, kafka_topic)) == len(good) + 18


@pytest.mark.services
def test_a_message_near_the_size_limit_is_redriven_and_one_not_delivered_is_named(
    kafka_broker: str, kafka_topic: str, tmp_path: Path
) -> None:
    """librdkafka's default record limit (1,000,000 bytes) is below the 1 MiB a message may
    have: a correction that large failed at produce, the command stopped there, and the
    messages sent before it were not recorded, so that no run could ever send it or skip
    them. Now each message not delivered is named by its line, the others are recorded,
    and a run with the limit set sends only what is left."""
    open_store(tmp_path / "clickhouse").close()
    small = message("stu-a", "grade_result", event_id="g1", payload={"score": 80.0})
    large = message("stu-b", event_id="s1", payload={"stroke_count": 3, "points": "0" * 1_020_000})
    lines = tmp_path / "fixed.jsonl"
    lines.write_bytes(
        b"".join(msgspec.json.encode(letter_of(raw, offset)) + b"\n"
                 for offset, raw in ((7, small), (8, large)))
    )  # fmt: skip
    env = {
        "WRITECH_DATA_DIR": str(tmp_path),
        "WRITECH_KAFKA_BROKERS": kafka_broker,
        "WRITECH_KAFKA_TOPICS": kafka_topic,
    }
    stingy = writech(
        "dead-letters", "redrive", str(lines),
        env=env | {"WRITECH_KAFKA_OPTIONS": "message.max.bytes=200000"},
    )  # fmt: skip
    assert stingy.returncode == 1, stingy.stderr
    assert f"{lines}:2: not delivered: " in stingy.stdout
    assert "sent 1 messages" in stingy.stdout
    assert "1 messages were not delivered" in stingy.stderr

    second = ok("dead-letters", "redrive", str(lines), env=env)
    assert second.count("re-driven before") == 1
    assert "sent 1 messages" in second
    assert sorted((record.value() or b"") for record in consume_all(kafka_broker, kafka_topic)) == (
        sorted(
            [json.dumps(json.loads(raw), separators=(",", ":")).encode() for raw in (small, large)]
        )
    )
    assert f"sent 0 messages to {kafka_topic}; 2 skipped" in ok(
        "dead-letters", "redrive", str(lines), env=env
    )


# -- forgetting while the flow has state ----------------------------------------------


def test_a_forgotten_student_stays_forgotten_after_a_resume(tmp_path: Path) -> None:
    """Killed mid-run, the flow resumes from a snapshot that holds the student's totals and
    reads their messages after it again: none of it may come back. Their new messages,
    written after the request, are counted."""
    old = list(generate(events=20_000, students=40, days=3, malformed=0.02, seed=13))
    for number in range(200, len(old), 400):  # invalid messages naming them, all along
        old.insert(number, message(FORGOTTEN, payload={"stroke_count": "1"}))
    events = write_lines(tmp_path / "events.jsonl", old)
    data, recovery = tmp_path / "data", init_recovery_store(tmp_path / "recovery")
    env = CHURN | {"WRITECH_DATA_DIR": str(data)}
    replay = [sys.executable, "-m", "writech", "replay", "--quiet", "-r", str(recovery),
              "-s", "1"]  # fmt: skip
    log = tmp_path / "replay.log"

    process = start_dataflow([*replay, str(events)], env, log)
    wait_for_commit(recovery, process, log, beyond=0)
    kill(process)
    _, line = read_positions(recovery)[str(events)]
    assert line < len(old) - 2000, "the run ended before its kill: make the input larger"
    reread = [raw for raw in old[line:] if named_student(raw) == FORGOTTEN]
    # dead letters naming them that the snapshot holds unwritten: the resume
    # replaces them by `forgotten` letters too (`writech.privacy.without_forgotten`)
    held = [raw for raw in pending_dead_letters(recovery) if named_student(raw) == FORGOTTEN]
    assert any(
        student == FORGOTTEN
        for state in snapshots(recovery, "aggregate").values()
        for _, student in students_in(state)
    )

    ok("forget", FORGOTTEN, env=env)
    new = write_lines(  # written after the request: new data
        tmp_path / "new.jsonl",
        [message(FORGOTTEN, "login_event", event_id=f"new-{n}", timestamp="2026-09-04T09:00:00+08:00")
         for n in range(3)],
    )  # fmt: skip
    run_dataflow([*replay, str(events), str(new)], env, log)

    numbers = summary_numbers(log.read_text().rpartition("== ")[2])
    assert (
        numbers["read"] == numbers["processed"] + numbers["duplicates"] + numbers["dead-lettered"]
    )
    assert numbers["forgotten"] == len(reread) > 0
    tables = read_tables(data)
    theirs = {
        table: [row for row in rows if is_theirs(table, row)] for table, rows in tables.items()
    }
    assert [(row["date"], row["login_count"]) for row in theirs["student_daily_stats"]] == [
        ("2026-09-04", 3)
    ]
    assert sorted(row["metric_id"] for row in theirs["analytics_metrics"]) == [
        f"new-{n}" for n in range(3)
    ]
    assert theirs["homework_result"] == theirs["error_record"] == theirs["dead_letter"] == []
    forgotten = [row for row in tables["dead_letter"] if row["reason"] == "forgotten"]
    assert {(row["raw"], row["event_id"]) for row in forgotten} == {("", "")}
    assert len(forgotten) == len(reread) + len(held)
    new_day = date(2026, 9, 4).toordinal()
    assert {day for state in snapshots(recovery, "aggregate").values()
            for day, student in students_in(state) if student == FORGOTTEN} == {new_day}  # fmt: skip


def pending_dead_letters(recovery: Path) -> list[bytes]:
    """The messages of the dead letters a `batch_rows` snapshot holds, not yet written."""
    state = snapshots(recovery, "batch_rows").get(DEAD_LETTER.name)
    pending: TableRows | None = pickle.loads(state) if state is not None else None
    if pending is None:
        return []
    return [
        raw_of(raw, encoding)
        for raw, encoding in zip(pending.column("raw"), pending.column("raw_encoding"), strict=True)
    ]


def students_in(state: bytes) -> set[tuple[int, str]]:
    """(day, student) of every daily row an `aggregate` snapshot holds."""
    shard = restore_shard(state, 64)[0]
    return {
        (number, student) for number, day in shard.days.items() for student, _ in day.live_rows()
    }
