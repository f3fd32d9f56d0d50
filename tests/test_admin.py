"""The day-2 commands (`writech.admin`): a producer's files validated, dead letters selected
and exported, a student's data deleted on request; in the embedded stores and on the
servers (the ClickHouse HTTP fixture and MariaDB).

Re-driving into Kafka and the dataflow's side of a deletion are in
`tests/test_admin_flow.py`.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import REPO, Tables, dataflow_environment, read_tables, summary_numbers
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.mysql import MysqlUser
from tests.test_end_to_end_kafka import _server_tables
from writech import admin
from writech.admin import (
    STUDENT_TABLES,
    Exported,
    Position,
    Selection,
    corrections,
    exported,
    message_of,
    validate,
)
from writech.aggregate import Shard
from writech.events import (
    EventDecoder,
    Invalid,
    RawBatch,
    Reason,
    dead_letter,
    event_id_of,
    raw_of,
)
from writech.generate import generate
from writech.privacy import (
    LETTER_NAMES_STUDENT,
    ForgetRequests,
    drop_forgotten,
    forget_in_state,
    named_student,
    student_hash,
    without_forgotten,
)
from writech.rows import TableRows
from writech.schema import (
    CLICKHOUSE_TABLES,
    DEAD_LETTER,
    DEAD_LETTER_REDRIVE,
    STUDENT_DAILY_STATS,
    DeadLetterRow,
)
from writech.settings import Settings
from writech.shards import ShardLogic, restore_shard
from writech.stores.base import ClickHouse
from writech.stores.chdb import ChdbStore, open_store
from writech.stores.clickhouse import open_store as open_server
from writech.windows import StudentWindows

DECODER = EventDecoder(Settings().tz)
FORGOTTEN = "stu-000003"


def writech(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run `writech` in a fresh process with only `env`'s settings; any exit code."""
    return subprocess.run(
        [sys.executable, "-m", "writech", *args],
        cwd=REPO,
        env=dataflow_environment(env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = writech(*args, env=env)
    assert result.returncode == 0, f"writech {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def message(student: str, event_type: str = "stroke_raw", **fields: Any) -> bytes:
    return json.dumps(
        {"event_type": event_type, "student_id": student,
         "timestamp": "2026-09-01T09:00:00+08:00", **fields}
    ).encode()  # fmt: skip


def write_lines(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(b"".join(raw + b"\n" for raw in messages))
    return path


# -- validate ------------------------------------------------------------------


def test_validate_reports_what_a_replay_dead_letters(tmp_path: Path) -> None:
    messages = list(
        generate(events=3000, students=30, days=2, malformed=0.05, duplicates=0.03, seed=5)
    )
    events = write_lines(tmp_path / "events.jsonl", messages)

    result = writech("validate", "--format", "json", "--examples", "2", str(events))
    assert result.returncode == 1, result.stderr  # some messages would be dead-lettered
    report = json.loads(result.stdout)
    replay = ok("replay", "--quiet", str(events), "--data-dir", str(tmp_path / "data"))
    letters = read_tables(tmp_path / "data")["dead_letter"]

    assert report["dead_lettered"] == dict(Counter(letter["reason"] for letter in letters))
    assert len(report["dead_lettered"]) >= 5  # many reasons, not one
    numbers = summary_numbers(replay)
    assert (report["messages"], report["valid"], report["duplicates"]) == (
        numbers["read"],
        numbers["processed"],
        numbers["duplicates"],
    )
    positions = {(letter["reason"], letter["offset"]) for letter in letters}
    for reason, examples in report["examples"].items():
        assert 0 < len(examples) <= 2
        for example in examples:
            assert example["file"] == str(events)
            assert (reason, example["line"]) in positions
    duplicate = report["duplicate_examples"][0]
    first_line = int(duplicate["message"].rpartition(":")[2])
    assert messages[duplicate["line"] - 1] == messages[first_line - 1]


def test_validate_exits_0_for_valid_files_and_2_for_usage_errors(tmp_path: Path) -> None:
    events = write_lines(
        tmp_path / "good.jsonl", [message("stu-a", event_id="1"), message("stu-a", event_id="1")]
    )
    result = writech("validate", str(events))
    assert result.returncode == 0, result.stderr
    assert "2 messages: 1 valid, 1 duplicates, 0 would be dead-lettered" in result.stdout
    assert "the same event as" in result.stdout  # a duplicate is shown, not an error

    missing = writech("validate", str(tmp_path / "nothing.jsonl"))
    assert missing.returncode == 2
    assert "no such file or directory" in missing.stderr
    assert writech("validate", "--format", "yaml", str(events)).returncode == 2


def test_validate_judges_future_timestamps_by_the_files_modification_time(
    tmp_path: Path,
) -> None:
    """As the files source does: a file written before its events happened is wrong."""
    ahead = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    events = write_lines(tmp_path / "events.jsonl", [message("stu-a", timestamp=ahead)])
    report = json.loads(writech("validate", "--format", "json", str(events)).stdout)
    assert report["dead_lettered"] == {"bad_timestamp": 1}

    later = (datetime.now(UTC) + timedelta(days=4)).timestamp()
    os.utime(events, (later, later))
    assert writech("validate", str(events)).returncode == 0


def validate_input(stdin: bytes, *paths: str) -> subprocess.CompletedProcess[bytes]:
    """`writech validate --format json PATHS... -` reading `stdin`."""
    return subprocess.run(
        [sys.executable, "-m", "writech", "validate", "--format", "json", *paths, "-"],
        cwd=REPO, env=dataflow_environment({}), input=stdin, capture_output=True, timeout=300,
    )  # fmt: skip


def test_validate_reads_standard_input_as_a_file_named_dash(tmp_path: Path) -> None:
    """`producer | writech validate -` was refused as a missing file (then as a stream): a
    check needs no position to resume from. Standard input is read as a file is (gzip or
    not, a byte order mark, CRLF), after the files named, and named `-`."""
    messages = list(generate(events=400, students=9, days=1, malformed=0.05, seed=8))
    lines = b"".join(line + b"\r\n" for line in messages)
    events = write_lines(tmp_path / "events.jsonl", messages)
    as_file = json.loads(writech("validate", "--format", "json", str(events)).stdout)
    for stdin in (lines, b"\xef\xbb\xbf" + lines, gzip.compress(lines)):
        result = validate_input(stdin)
        assert result.returncode == 1, result.stderr  # some would be dead-lettered
        report = json.loads(result.stdout)
        assert report["files"] == ["-"]
        for key in ("messages", "valid", "duplicates", "dead_lettered"):
            assert report[key] == as_file[key]
        for examples in report["examples"].values():
            assert {example["file"] for example in examples} == {"-"}

    both = json.loads(validate_input(lines, str(events)).stdout)
    assert both["files"] == [str(events), "-"]
    assert both["messages"] == 2 * len(messages)
    assert both["valid"] == as_file["valid"]  # the same events, once
    assert both["duplicates"] == as_file["valid"] + 2 * as_file["duplicates"]

    zstd = validate_input(b"\x28\xb5\x2f\xfd" + lines)
    assert zstd.returncode == 2
    assert zstd.stderr.decode().startswith("writech: -: compressed with zstd;")


def test_a_reader_that_leaves_ends_the_command_quietly() -> None:
    """`writech validate ... | head`, or generated data piped into `head`: the command ended
    in a BrokenPipeError logged as a failed run, with its traceback."""
    command = [sys.executable, "-m", "writech", "generate", "--events", "50000", "-o", "-"]
    with subprocess.Popen(
        command, cwd=REPO, env=dataflow_environment({}), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.read(100).startswith(b'{"event_type"')
        process.stdout.close()  # as `head -c 100` does
        said = process.stderr.read()
    assert process.returncode == 141  # 128 + SIGPIPE, as a program SIGPIPE ended
    assert said == b""


messages_of_all_kinds = st.lists(
    st.sampled_from(
        [
            message("stu-a", event_id="1"),
            message("stu-b", event_id="1"),  # the same id, another student: not a duplicate
            message("stu-a", event_id="2"),
            message("stu-a", payload={"stroke_count": -1}),
            b"{not json",
            b"[]",
            message("stu-a", event_type="pen_lost"),
        ]
    ),
    max_size=40,
)


@given(messages_of_all_kinds, st.integers(min_value=1, max_value=7))
def test_validation_accounts_for_every_message(messages: list[bytes], batch: int) -> None:
    batches = [
        RawBatch("f", 0, list(range(start + 1, start + 1 + len(part))), part)
        for start in range(0, len(messages), batch)
        for part in [messages[start : start + batch]]
    ]
    report = validate(["f"], batches, DECODER, examples=1)
    dead = sum(report.dead_lettered.values())
    assert report.messages == len(messages) == report.valid + report.duplicates + dead
    identities = set()
    for raw in messages:
        try:
            event = DECODER.decode(raw)
        except Invalid:
            continue
        identities.add((event.student_id, event.event_id))
    assert report.valid == len(identities)
    assert all(len(examples) == 1 for examples in report.examples.values())


# -- exporting and correcting dead letters -------------------------------------


def letter_of(raw: bytes, offset: int = 1) -> Exported:
    origin, partition, line, reason, error, text, encoding, _, produced = dead_letter(
        "topic", 2, offset, raw, "bad_payload", "why", produced_at=1.5e9
    )
    return exported(Position(origin, partition, line), reason, error, str(produced), text, encoding)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.binary(max_size=200) | json_values.map(lambda value: json.dumps(value).encode()))
def test_an_export_line_gives_back_its_message(raw: bytes) -> None:
    line = letter_of(raw)
    again = msgspec.json.decode(msgspec.json.encode(line), type=Exported)
    assert again == line
    if line.value is msgspec.UNSET:
        assert message_of(again) == raw  # as it was read, byte for byte
    else:  # JSON: the same value, encoded compactly
        assert msgspec.json.decode(message_of(again)) == msgspec.json.decode(raw)


def test_json_messages_are_exported_as_values_to_correct() -> None:
    line = letter_of(message("stu-a", payload={"score": "80"}))
    assert line.value["payload"] == {"score": "80"}
    assert letter_of(b"\xff\xfe").raw_encoding == "base64"
    assert letter_of(b'{"a": 1e999}').raw == '{"a": 1e999}'  # no JSON value re-encodes it


def test_corrections_are_decoded_as_the_dataflow_would() -> None:
    fixed = letter_of(message("stu-a", "grade_result", payload={"score": 80}), offset=7)
    still_wrong = letter_of(message("stu-a", "grade_result", payload={"score": "80"}))
    lines = [
        msgspec.json.encode(fixed),
        b"",
        b'{"origin": "topic"}',  # no position
        msgspec.json.encode(still_wrong),
    ]
    found, problems = corrections(lines, DECODER, now=2e9)
    (correction,) = found
    assert (correction.line, correction.letter) == (1, Position("topic", 2, 7))
    assert correction.student_id == "stu-a"
    assert correction.event_id == event_id_of(message_of(fixed))  # the id the flow gives it
    assert [(problem.line, problem.reason) for problem in problems] == [
        (3, "bad_line"),
        (4, "bad_payload"),
    ]


def test_redrive_sends_nothing_while_a_line_is_wrong(tmp_path: Path) -> None:
    """Checked before any store or broker is reached: none is configured here."""
    fixed = letter_of(message("stu-a", "grade_result", payload={"score": 80}))
    wrong = letter_of(message("stu-a", "grade_result", payload={"score": "80"}))
    lines = b"".join(msgspec.json.encode(line) + b"\n" for line in (fixed, wrong))
    result = writech(
        "dead-letters", "redrive", "-", env={"WRITECH_DATA_DIR": str(tmp_path)},
        stdin=(lines + b"not json\n").decode(),
    )  # fmt: skip
    assert result.returncode == 1
    second, third = result.stdout.splitlines()
    assert second == "-:2: bad_payload: payload: Expected `float`, got `str` - at `$.score`"
    assert third.startswith("-:3: bad_line: not an export line: JSON is malformed")
    assert "2 lines cannot be re-driven; nothing was sent" in result.stderr
    assert not tmp_path.joinpath("clickhouse").exists()


def test_redrive_refuses_a_position_beyond_its_columns(tmp_path: Path) -> None:
    """A partition of 2**32 wrapped around in the query and named partition 0's letter."""
    letter = letter_of(message("stu-a", "grade_result", payload={"score": 80}))
    wide = msgspec.structs.replace(letter, partition=2**32)
    result = writech(
        "dead-letters", "redrive", "-", env={"WRITECH_DATA_DIR": str(tmp_path)},
        stdin=msgspec.json.encode(wide).decode() + "\n",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Expected `int` <= 2147483647" in result.stdout
    assert "nothing was sent" in result.stderr


@pytest.mark.parametrize("letter", ["f.jsonl:4294967296:23", "f.jsonl:0:18446744073709551639"])
def test_a_letter_beyond_the_columns_ranges_is_refused(letter: str, tmp_path: Path) -> None:
    result = writech(
        "dead-letters", "list", "--letter", letter, env={"WRITECH_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "out of range" in result.stderr


def test_redrive_of_a_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    result = writech("dead-letters", "redrive", str(tmp_path), env={"WRITECH_DATA_DIR": "d"})
    assert result.returncode == 2
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_letters_redriven_before_are_found_among_thousands(tmp_path: Path) -> None:
    """One query for every line of an export passed ClickHouse's 256 KiB at about 3,300."""
    store = open_store(tmp_path / "clickhouse")
    try:
        letters = [Position("/exports/a-long-file-name.jsonl", n % 3, n) for n in range(3_500)]
        sent = [letters[7], letters[3_333]]
        now = round(time.time() * 1_000_000)  # within the table's TTL
        store.insert(TableRows.from_rows(DEAD_LETTER_REDRIVE, [
            (letter.origin, letter.partition, letter.offset, now, "t", 0, n, "")
            for n, letter in enumerate(sent)
        ]))  # fmt: skip
        assert admin._redriven(store, letters) == set(sent)
    finally:
        store.close()


def test_forget_refuses_a_data_dir_without_its_error_store(tmp_path: Path) -> None:
    """With the analytics tables elsewhere (a server), a mistyped --data-dir made a new,
    empty error store, and forget said it removed 0 error records."""
    open_store(tmp_path / "clickhouse").close()
    result = writech("forget", "stu-000001", env={"WRITECH_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "no error_record store at" in result.stderr
    assert not (tmp_path / "writech.db").exists()


def test_redrive_with_kafka_options_librdkafka_refuses_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    """A typo in WRITECH_KAFKA_OPTIONS: a traceback from the producer's constructor before."""
    open_store(tmp_path / "clickhouse").close()
    fixed = letter_of(message("stu-a", "grade_result", payload={"score": 80}))
    result = writech(
        "dead-letters", "redrive", "-",
        env={"WRITECH_DATA_DIR": str(tmp_path), "WRITECH_KAFKA_OPTIONS": "no.such=1"},
        stdin=msgspec.json.encode(fixed).decode() + "\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "writech: WRITECH_KAFKA_BROKERS and WRITECH_KAFKA_OPTIONS make no Kafka client: "
        'No such configuration property: "no.such"\n'
    )


@pytest.mark.parametrize(
    ("arguments", "environment", "said"),
    [
        (["--topic", "^events.*"], {}, "--topic: '^events.*' is not a Kafka topic name"),
        ([], {"WRITECH_KAFKA_TOPICS": ""}, "WRITECH_KAFKA_TOPICS: '' is not a Kafka topic name"),
    ],
)
def test_redrive_to_a_topic_no_broker_can_hold_says_so_in_one_line(
    tmp_path: Path, arguments: list[str], environment: dict[str, str], said: str
) -> None:
    """The first waited out the store deadline, then said its messages were undelivered
    ("Message timed out"); with no topic configured the command ended in an IndexError."""
    open_store(tmp_path / "clickhouse").close()
    fixed = letter_of(message("stu-a", "grade_result", payload={"score": 80}))
    result = writech(
        "dead-letters", "redrive", "-", *arguments,
        env={"WRITECH_DATA_DIR": str(tmp_path), **environment},
        stdin=msgspec.json.encode(fixed).decode() + "\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"writech: {said} (")
    assert result.stderr.count("\n") == 1


# -- selecting dead letters ------------------------------------------------------


@pytest.fixture
def letters_store(tmp_path: Path) -> Iterator[ChdbStore]:
    """Dead letters of every combination of two reasons, two origins, four times and
    three offsets; some of them re-driven."""
    store = open_store(tmp_path / "clickhouse")
    first_offsets: dict[Reason, int] = {"bad_json": 100, "bad_payload": 0}
    rows: list[DeadLetterRow] = [
        dead_letter(origin, 0, first + 10 * hour + n, b"x", reason, "", produced_at=at(hour))
        for reason, first in first_offsets.items()
        for origin in ("a.jsonl", "topic")
        for hour in range(4)
        for n in range(3)
    ]
    store.insert(TableRows.from_rows(DEAD_LETTER, rows))
    redriven = [row for row in rows if row[2] % 2]
    store.insert(
        TableRows.from_rows(
            DEAD_LETTER_REDRIVE,
            [(*row[:3], row[8], "t", 0, number, "") for number, row in enumerate(redriven)],
        )
    )
    yield store
    store.close()


# Recent times: tables expire old rows (WRITECH_DEAD_LETTER_TTL_DAYS and others).
RECENTLY: Final = round(time.time()) - 5 * 86400


def at(hour: int) -> float:
    return RECENTLY + 3600.0 * hour


selections = st.builds(
    Selection,
    reasons=st.lists(st.sampled_from(["bad_json", "bad_payload", "too_late"]), max_size=2).map(
        tuple
    ),
    origins=st.lists(st.sampled_from(["a.jsonl", "topic", "b"]), max_size=2).map(tuple),
    since=st.none() | st.integers(0, 4).map(lambda hour: datetime.fromtimestamp(at(hour), UTC)),
    until=st.none() | st.integers(0, 4).map(lambda hour: datetime.fromtimestamp(at(hour), UTC)),
    letters=st.lists(
        st.builds(Position, st.sampled_from(["a.jsonl", "topic"]), st.just(0), st.integers(0, 140)),
        max_size=3,
    ).map(tuple),
    not_redriven=st.booleans(),
)


def selected_in_python(letter: dict[str, Any], selection: Selection) -> bool:
    produced = letter["produced_us"] / 1e6
    position = Position(letter["origin"], letter["partition"], letter["offset"])
    return (
        (not selection.reasons or letter["reason"] in selection.reasons)
        and (not selection.origins or letter["origin"] in selection.origins)
        and (selection.since is None or produced >= selection.since.timestamp())
        and (selection.until is None or produced < selection.until.timestamp())
        and (not selection.letters or position in selection.letters)
        and not (selection.not_redriven and letter["offset"] % 2)
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(selections)
def test_a_selection_selects_in_clickhouse_what_it_says(
    letters_store: ChdbStore, selection: Selection
) -> None:
    every = letters_store.query(
        "SELECT origin, partition, offset, reason, toUnixTimestamp64Micro(produced_at) AS "
        "produced_us FROM writech.dead_letter FINAL"
    )
    where, params = selection.where()
    chosen = letters_store.query(
        f"SELECT origin, partition, offset FROM writech.dead_letter FINAL WHERE {where}", params
    )
    expected = [letter for letter in every if selected_in_python(letter, selection)]
    assert sorted(map(position_of, chosen)) == sorted(map(position_of, expected))


def position_of(row: dict[str, Any]) -> tuple[str, int, int]:
    return (row["origin"], row["partition"], row["offset"])


def test_letters_are_read_in_pages_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=str(tmp_path))
    store = open_store(settings.clickhouse_dir)
    rows = [dead_letter("f", 0, 7 - n, b"x", "bad_json", "", produced_at=at(n)) for n in range(7)]
    store.insert(TableRows.from_rows(DEAD_LETTER, rows))
    store.close()
    monkeypatch.setattr(admin, "_PAGE", 2)
    offsets = [row["offset"] for row in admin._letters(settings, Selection(), True)]
    assert offsets == [7, 6, 5, 4, 3, 2, 1]
    for limit in (0, 3, 4, 9):
        found = [row["offset"] for row in admin._letters(settings, Selection(), False, limit)]
        assert found == offsets[:limit]


# -- which student a dead letter names --------------------------------------------

TRICKY = [
    message(FORGOTTEN, payload={"score": "x"}),
    message(FORGOTTEN)[:30],  # cut short: not JSON
    b'{"student_id" :\t"' + FORGOTTEN.encode() + b'", "payload": {"a": [1,',
    b'{"payload": {"student_id": "' + FORGOTTEN.encode() + b'"}, "student_id": "stu-x"}',
    b'{"note": "\\"student_id\\": \\"' + FORGOTTEN.encode() + b'\\""}',
    b'["student_id", "' + FORGOTTEN.encode() + b'"]',
    b'{"student_id": "stu\\u002d000003"}',  # escaped, still the same id
    b'{"student_id": "stu\\u002d000003", "cut',
    b'{"student_id": 3}',
    b'\xff{"student_id": "' + FORGOTTEN.encode() + b'"}',  # not UTF-8: stored as base64
    b'{"student_id": "' + FORGOTTEN.encode() + b'0"}',  # another student
    b"",
]


def names_in_clickhouse(store: ChdbStore, raws: list[bytes], student: str) -> list[bool]:
    store.command("TRUNCATE TABLE writech.dead_letter")
    rows = [
        dead_letter("names", 0, number, raw, "bad_json", "", produced_at=RECENTLY)
        for number, raw in enumerate(raws)
    ]
    store.insert(TableRows.from_rows(DEAD_LETTER, rows))
    named = store.query(
        f"SELECT offset FROM writech.dead_letter WHERE {LETTER_NAMES_STUDENT}",
        {"student": student},
    )
    found = {row["offset"] for row in named}
    return [number in found for number in range(len(raws))]


@pytest.fixture
def names_store(tmp_path: Path) -> Iterator[ChdbStore]:
    store = open_store(tmp_path / "clickhouse")
    yield store
    store.close()


def test_clickhouse_and_the_dataflow_agree_on_who_a_letter_names(names_store: ChdbStore) -> None:
    in_python = [named_student(raw) == FORGOTTEN for raw in TRICKY]
    assert in_python == [True, False, True, False, False, False, True, True, False, True,
                         False, False]  # fmt: skip
    assert names_in_clickhouse(names_store, TRICKY, FORGOTTEN) == in_python


students = st.text(min_size=1, max_size=12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(students, st.lists(st.tuples(students, json_values, st.integers(0, 200)), max_size=6))
def test_any_message_cut_anywhere_names_the_same_student_in_both(
    names_store: ChdbStore, student: str, messages: list[tuple[str, Any, int]]
) -> None:
    raws = [
        json.dumps({"student_id": owner, "payload": value}, ensure_ascii=bool(cut % 2)).encode()[
            :cut
        ]
        for owner, value, cut in messages
    ]
    raws.append(json.dumps({"student_id": student}).encode())
    in_python = [named_student(raw) == student for raw in raws]
    assert in_python[-1]
    assert names_in_clickhouse(names_store, raws, student) == in_python


# -- the dataflow's filter ----------------------------------------------------------


def test_the_deleted_data_of_a_forgotten_student_becomes_letters_without_bytes() -> None:
    request = RECENTLY + 100.0
    requests = ForgetRequests({"r": student_hash(FORGOTTEN)}, {student_hash(FORGOTTEN): request})
    raws = [message(FORGOTTEN, event_id="1"), message("stu-x", event_id="1"),
            message(FORGOTTEN, event_id="2")]  # fmt: skip
    produced = [request - 1, request - 1, request]
    events, dead = DECODER.decode_batch(RawBatch("f", 0, [1, 2, 3], raws, produced_at=produced))
    cut = message(FORGOTTEN)[:-10]  # not JSON, but it names them
    invalid = [
        dead_letter("f", 0, 4, cut, "bad_json", "", produced_at=request - 1),
        dead_letter("f", 0, 5, cut, "bad_json", "", produced_at=request + 1),
    ]
    kept, letters = drop_forgotten(events, dead + invalid, requests)
    # produced before the request: deleted data; at or after it: new data, counted
    assert [(event.student_id, event.offset) for event in kept] == [("stu-x", 2), (FORGOTTEN, 3)]
    assert [(letter[2], letter[3], letter[5]) for letter in letters] == [
        (1, "forgotten", ""),
        (4, "forgotten", ""),
        (5, "bad_json", cut.decode()),
    ]
    # produced when it was: a letter re-emitted by a later resume is equal
    assert letters[0][8] == round((request - 1) * 1_000_000)


def test_a_state_forgets_a_request_once_and_keeps_the_students_new_data() -> None:
    shard, windows = Shard(), StudentWindows(60, 86400)
    requests = ForgetRequests({"r": student_hash(FORGOTTEN)}, {student_hash(FORGOTTEN): 1.0})

    def count(event_id: str, *students: str) -> None:
        raws = [message(student, event_id=event_id) for student in students]
        events, _ = DECODER.decode_batch(RawBatch("f", 0, [1] * len(raws), raws))
        windows.apply(shard.apply(events).counted)

    count("1", FORGOTTEN, "stu-x")
    applied = forget_in_state(shard, windows, frozenset(), requests)
    assert applied == {"r"}
    assert {row[0] for row in shard.flush()} == {"stu-x"}
    assert {student for student, _ in windows.window_keys()} == {"stu-x"}

    count("2", FORGOTTEN)  # back after the request: new data
    assert forget_in_state(shard, windows, applied, requests) == {"r"}
    assert {student for student, _ in windows.window_keys()} == {FORGOTTEN, "stu-x"}
    assert {row[0] for row in shard.flush()} == {FORGOTTEN}


def test_a_snapshot_without_requests_keeps_the_form_earlier_releases_read() -> None:
    shard, windows = Shard(), StudentWindows(60, 86400)
    logic = ShardLogic(shard, windows, DECODER, timedelta(seconds=1), 64)
    assert len(pickle.loads(logic.snapshot())) == 3  # (shards, shard, windows)
    assert restore_shard(logic.snapshot(), 64).forgotten == frozenset()
    requests = ForgetRequests({"r": "h"}, {"h": 1.0})
    logic = ShardLogic(shard, windows, DECODER, timedelta(seconds=1), 64, requests)
    assert restore_shard(logic.snapshot(), 64).forgotten == {"r"}


def test_rows_not_yet_written_lose_the_forgotten_students_rows() -> None:
    requests = ForgetRequests({"r": student_hash(FORGOTTEN)}, {student_hash(FORGOTTEN): 1e10})
    shard = Shard()
    shard.apply(DECODER.decode_batch(
        RawBatch("f", 0, [1, 2], [message(FORGOTTEN, "login_event"), message("stu-x", "login_event")])
    )[0])  # fmt: skip
    stats = TableRows.from_rows(STUDENT_DAILY_STATS, shard.flush())
    kept = pickle.loads(without_forgotten(pickle.dumps(stats), requests) or b"")
    assert kept.column("student_id") == ["stu-x"]
    letters = TableRows.from_rows(DEAD_LETTER, [
        dead_letter("f", 0, 1, message(FORGOTTEN)[:-3], "bad_json", "", produced_at=RECENTLY),
        dead_letter("f", 0, 2, b"{", "bad_json", "", produced_at=RECENTLY),
    ])  # fmt: skip
    kept = pickle.loads(without_forgotten(pickle.dumps(letters), requests) or b"")
    assert kept.column("reason") == ["forgotten", "bad_json"]
    assert kept.column("raw") == ["", "{"]
    assert without_forgotten(None, requests) is None
    nothing_pending = pickle.dumps(None)
    assert without_forgotten(nothing_pending, requests) == nothing_pending


# -- forget and the dead-letter commands, on every kind of store ----------------------


@dataclass(frozen=True)
class Stores:
    """Where a test's commands write: the settings, and every table read back."""

    env: dict[str, str]
    read: Callable[[], Tables]


@pytest.fixture(params=["embedded", pytest.param("servers", marks=pytest.mark.services)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    if request.param == "embedded":
        data = tmp_path / "data"
        return Stores(
            {"WRITECH_DATA_DIR": str(data)},
            lambda: read_tables(data) | forget_requests(lambda: open_store(data / "clickhouse")),
        )
    clickhouse: ClickHouseServer = request.getfixturevalue("clickhouse_server")
    mysql_user: MysqlUser = request.getfixturevalue("mysql_user")
    mysql_database: str = request.getfixturevalue("mysql_database")
    return Stores(
        {
            "WRITECH_CLICKHOUSE_URL": clickhouse.url,
            "WRITECH_MYSQL_URL": mysql_database,
            "WRITECH_DATA_DIR": str(tmp_path / "unused"),
        },
        lambda: (
            _server_tables(clickhouse, mysql_user, mysql_database)
            | forget_requests(lambda: open_server(Settings(clickhouse_url=clickhouse.url)))
        ),
    )


def forget_requests(open_clickhouse: Callable[[], ClickHouse]) -> Tables:
    store = open_clickhouse()
    try:
        return {"forget_requests": store.query("SELECT * FROM writech.forget_requests FINAL")}
    finally:
        store.close()


def forgotten_students_messages() -> list[bytes]:
    """The forgotten student's messages of every kind, some invalid, among others'."""
    theirs = [
        message(FORGOTTEN, "grade_result", event_id="g1", payload={
            "score": 70, "homework_id": "h1", "errors": [{"knowledge_point": "kp"}]}),
        message(FORGOTTEN, "stroke_order", event_id="o1", payload={"score": 90, "character": "永"}),
        message(FORGOTTEN, "login_event", event_id="l1"),
        message(FORGOTTEN, "grade_result", payload={"score": "70"}),  # bad_payload
        message(FORGOTTEN, timestamp="yesterday"),  # bad_timestamp
        message(FORGOTTEN, payload={"page_id": "x" * 3000}),  # too_large: kept cut short
        message(FORGOTTEN)[:-1] + b', "note": "\xff"}',  # not UTF-8: kept as base64
    ]  # fmt: skip
    decoys = [
        message("stu-x", payload={"page_id": FORGOTTEN}),  # names them, but not as the student
        message(FORGOTTEN + "0", "login_event"),
        message("stu-x", "grade_result", payload={"score": "bad", "homework_id": FORGOTTEN}),
    ]
    return theirs + decoys


def is_theirs(table: str, row: dict[str, Any]) -> bool:
    if table == "dead_letter":
        return named_student(raw_of(row["raw"], row["raw_encoding"])) == FORGOTTEN
    return row.get("student_id") == FORGOTTEN


def test_forget_deletes_a_student_from_every_table_and_records_the_request(
    stores: Stores, tmp_path: Path
) -> None:
    messages = [*generate(events=2000, students=12, days=2, malformed=0.03, seed=9),
                *forgotten_students_messages()]  # fmt: skip
    events = write_lines(tmp_path / "events.jsonl", messages)
    env = stores.env | {"WRITECH_MAX_MESSAGE_BYTES": "2000"}
    ok("replay", "--quiet", str(events), env=env)
    before = stores.read()
    theirs = {
        table: [row for row in rows if is_theirs(table, row)] for table, rows in before.items()
    }
    for table in (*STUDENT_TABLES, "error_record"):
        assert theirs[table], f"nothing of theirs in {table}: the test proves nothing"
    reasons = {letter["reason"] for letter in theirs["dead_letter"]}
    assert reasons >= {"bad_payload", "bad_timestamp", "too_large", "bad_json"}

    result = writech("forget", FORGOTTEN, env=env)
    assert result.returncode == 0, result.stderr
    after = stores.read()

    for table, rows in before.items():
        if table == "forget_requests":
            continue
        assert after[table] == [row for row in rows if not is_theirs(table, row)], table
    assert after["class_minute_stats"] == before["class_minute_stats"] != []  # class sums stay
    requests = after["forget_requests"]
    assert {row["table"]: row["rows_removed"] for row in requests} == {
        table: len(rows) for table, rows in theirs.items() if table not in
        ("class_minute_stats", "forget_requests")
    }  # fmt: skip
    assert {row["student_hash"] for row in requests} == {student_hash(FORGOTTEN)}
    assert FORGOTTEN in result.stdout
    (audit,) = [json.loads(line) for line in result.stderr.splitlines() if "forget request" in line]
    assert audit["student_hash"] == student_hash(FORGOTTEN)
    assert audit["rows_removed"]["dead_letter"] == len(theirs["dead_letter"])
    assert FORGOTTEN not in result.stderr  # the log names the student by hash only

    again = writech("forget", FORGOTTEN, env=env)
    assert again.returncode == 0, again.stderr
    assert stores.read() | {"forget_requests": []} == after | {"forget_requests": []}


def test_every_table_that_holds_student_ids_is_one_forget_deletes_from() -> None:
    """A new table with a student id must be added to `forget` (or this test changed)."""
    with_students = {t.name for t in CLICKHOUSE_TABLES if "student_id" in t.column_names}
    assert set(STUDENT_TABLES) == with_students
    assert {"student_daily_stats", "analytics_metrics", "homework_result",
            "student_minute_stats"} <= with_students  # fmt: skip
    assert "class_minute_stats" not in with_students


def test_forget_refuses_what_is_no_student_id(tmp_path: Path) -> None:
    result = writech("forget", "x" * 65, env={"WRITECH_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "is not a student id" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("forget",),
        ("report", "student"),
        ("report", "parent"),
        ("report", "class"),
        ("report", "school"),
    ],
)
def test_an_id_argument_that_is_not_utf8_is_refused_before_any_store_opens(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """A byte that is not UTF-8 (0xff here) made the engine fail with a traceback that named
    no argument; the command now says which argument and why, and opens nothing."""
    data = tmp_path / "data"
    result = writech(*command, "id-\udcff", env={"WRITECH_DATA_DIR": str(data)})
    assert result.returncode == 2, result.stderr
    assert "is not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data.exists()


def test_dead_letters_are_summed_listed_and_exported_by_reason_origin_and_time(
    stores: Stores, tmp_path: Path
) -> None:
    early, late = tmp_path / "early.jsonl", tmp_path / "late.jsonl"
    write_lines(early, [message("stu-a", payload={"stroke_count": "1"}), b"{", b"[]"])
    write_lines(late, [message("stu-b", "grade_result", payload={"score": "9"}), b"{"])
    now = datetime.now(UTC)
    for path, days_ago in ((early, 3), (late, 1)):
        produced = (now - timedelta(days=days_ago)).timestamp()
        os.utime(path, (produced, produced))
    between = (now - timedelta(days=2)).isoformat()
    ok("replay", "--quiet", str(early), str(late), env=stores.env)
    env = stores.env

    summary = json.loads(ok("dead-letters", "summary", "--format", "json", env=env))
    assert sorted((g["reason"], g["origin"], g["letters"]) for g in summary) == [
        ("bad_json", str(early), 1),
        ("bad_json", str(late), 1),
        ("bad_payload", str(early), 1),
        ("bad_payload", str(late), 1),
        ("not_an_object", str(early), 1),
    ]
    listed = ok("dead-letters", "list", "--format", "json", "--reason", "bad_payload",
                "--since", between, env=env)  # fmt: skip
    (letter,) = map(json.loads, listed.splitlines())
    assert (letter["origin"], letter["offset"], letter["redriven"]) == (str(late), 1, False)
    assert letter["produced_at"][:10] == (now - timedelta(days=1)).date().isoformat()
    text = ok("dead-letters", "list", "--origin", str(early), "--until", between, env=env)
    assert text.count(f"{early}:0:") == 3
    assert text.rstrip().endswith("3 letters")

    out = tmp_path / "dead.jsonl"
    ok("dead-letters", "export", "--letter", f"{early}:0:1", "--letter", f"{late}:0:2",
       "-o", str(out), env=env)  # fmt: skip
    lines = [msgspec.json.decode(line, type=Exported) for line in out.read_bytes().splitlines()]
    assert [(line.origin, line.offset, line.reason) for line in lines] == [
        (str(early), 1, "bad_payload"),
        (str(late), 2, "bad_json"),
    ]
    assert lines[0].value["payload"] == {"stroke_count": "1"}
    assert (lines[1].raw, lines[1].value) == ("{", msgspec.UNSET)

    wrong = writech("dead-letters", "list", "--letter", "no-position", env=env)
    assert wrong.returncode == 2
    assert writech("dead-letters", "list", "--since", "soon", env=env).returncode == 2


def test_forget_finds_a_student_id_with_quotes_backslashes_and_newlines(
    stores: Stores, tmp_path: Path
) -> None:
    hostile = "stu '\"\\n\\\n\t汉"
    near = hostile.replace("\\", "")  # what unescaping the id once would make of it
    messages = [message(student, "login_event", event_id="1") for student in (hostile, near)]
    events = write_lines(tmp_path / "events.jsonl", [*messages, messages[0][:-5]])
    ok("replay", "--quiet", str(events), env=stores.env)
    ok("forget", hostile, env=stores.env)
    tables = stores.read()
    assert [row["student_id"] for row in tables["student_daily_stats"]] == [near]
    assert tables["dead_letter"] == []
    assert {row["rows_removed"] for row in tables["forget_requests"] if row["table"] in
            ("student_daily_stats", "analytics_metrics", "dead_letter")} == {1}  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ["report", "class", "class-0000"],
        ["report", "class", "--all-classes", "--out-dir", "{tmp}/out"],
        ["dead-letters", "summary"],
        ["dead-letters", "export"],
        ["forget", "stu-000001"],
    ],
)
def test_a_data_dir_without_a_store_is_said_and_left_alone(
    tmp_path: Path, command: list[str]
) -> None:
    """A mistyped --data-dir: a command that reads or deletes made an empty store there,
    and `forget` recorded its request in it, forgetting nobody. It is now refused."""
    missing = tmp_path / "datta"
    args = [part.format(tmp=tmp_path) for part in command]
    result = writech(*args, env={"WRITECH_DATA_DIR": str(missing)})
    assert result.returncode == 2
    assert result.stderr == (
        f"writech: no store in {missing}: nothing was replayed there (check --data-dir)\n"
    )
    assert not missing.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["replay", "{tmp}/events.jsonl"], "cannot hold a store (Not a directory); check --data"),
        (["init-db"], "cannot hold a store (Not a directory); check --data-dir"),
        (["report", "class", "class-0000"], "no store in"),
        (["recovery", "init", "--dir", "{data}/recovery"], "cannot hold a store (Not a di"),
    ],
)
def test_a_data_dir_that_is_a_file_is_said_in_one_line(
    tmp_path: Path, command: list[str], said: str
) -> None:
    """`--data-dir` naming a file (or a path under one) ended in a NotADirectoryError
    traceback from deep in opening the store; so did `writech recovery init --dir` there."""
    (tmp_path / "events.jsonl").write_text("{}\n")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory\n")
    for data_dir in (a_file, a_file / "data"):
        args = [part.format(tmp=tmp_path, data=data_dir) for part in command]
        result = writech(*args, env={"WRITECH_DATA_DIR": str(data_dir)})
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("writech: ")
        assert said in result.stderr
        assert a_file.read_text() == "not a directory\n"


@pytest.fixture
def store_open_elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose embedded store another process holds open, as a replay,
    the dataflow or `writech serve` does while it runs."""
    (tmp_path / "events.jsonl").write_bytes(
        b"".join(json.dumps(event).encode() + b"\n" for event in _few_events())
    )
    data = tmp_path / "data"
    assert (
        writech("replay", str(tmp_path / "events.jsonl"), "-q", "--data-dir", str(data)).returncode
        == 0
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from writech.stores.chdb import open_store; "
         "open_store(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
         str(data / "clickhouse")],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        yield data
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder then exits
        holder.wait(60)


def _few_events() -> list[dict[str, Any]]:
    return [
        {"event_type": "login_event", "student_id": f"s{n}", "class_id": "c", "school_id": "x",
         "timestamp": "2026-09-01T08:00:00+08:00", "payload": {}, "event_id": f"e{n}"}
        for n in range(3)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "{tmp}/events.jsonl"],
        ["report", "class", "c"],
        ["dead-letters", "summary"],
        ["serve", "--access-file", "{tmp}/access.toml", "--port", "0"],
    ],
)
def test_a_store_open_in_another_process_is_said_in_one_line(
    store_open_elsewhere: Path, tmp_path: Path, command: list[str]
) -> None:
    """A replay (or a report) while `writech serve` had the store open ended in a
    traceback, saying only "Error initializing EmbeddedServer"; `writech serve` next
    to a running replay exited 3 after a traceback in its start-up."""
    hashed = writech("serve", "--hash-password", stdin="pass phrase\n").stdout.strip()
    (tmp_path / "access.toml").write_text(f'[users.u]\nschool = "x"\npassword = "{hashed}"\n')
    args = [part.format(tmp=tmp_path) for part in command]
    result = writech(*args, env={"WRITECH_DATA_DIR": str(store_open_elsewhere)})
    assert result.returncode == 2
    assert result.stderr == (
        f"writech: embedded ClickHouse at {(store_open_elsewhere / 'clickhouse').resolve()} is "
        "open in another process (a replay, the dataflow or `writech serve`); one process at a "
        "time can use an embedded store: stop the other one, or use a ClickHouse server "
        "(WRITECH_CLICKHOUSE_URL) for both\n"
    )
