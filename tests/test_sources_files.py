"""The JSON-lines files source, its partitions built directly (no dataflow), and `writech
replay` over damaged, changed and missing inputs."""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import os
import resource
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import rows
from tests.helpers import REPO, read_tables, run_writech, summary_numbers
from writech import counters
from writech.events import UTF8_BOM, EventDecoder, RawBatch
from writech.generate import generate
from writech.schema import DeadLetter
from writech.settings import Settings, SettingsError
from writech.sources import files
from writech.sources.files import (
    HEAD_BYTES,
    FilePosition,
    Fingerprint,
    InputChanged,
    JsonLinesSource,
    changes,
    expand,
)

# A modification time far from the wall clock: what the future-skew check must use.
MTIME = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def lines_of(count: int, width: int = 0) -> list[bytes]:
    return [
        b'{"event_type": "login_event", "student_id": "s%d", "timestamp": "2026-03-01T08:00:00Z"'
        b', "pad": "%s"}' % (n, b"x" * (n % 7 + width))
        for n in range(count)
    ]


def read(path: Path, resume: FilePosition | tuple[int, int] | None = None, batch_size: int = 7):
    """Every batch of one file's partition until it ends, and its last snapshot."""
    partition = JsonLinesSource([str(path)], batch_size).build_part("read", str(path), resume)
    batches: list[RawBatch] = []
    try:
        while True:
            try:
                batches += partition.next_batch()
            except StopIteration:
                return batches, partition.snapshot()
    finally:
        partition.close()


def messages_of(batches: list[RawBatch]) -> list[bytes]:
    return [message for batch in batches for message in batch.messages]


def letters_of(batches: list[RawBatch]) -> list[DeadLetter]:
    return rows.dead_letters(row for batch in batches for row in batch.rejected)


def write_gz(path: Path, lines: list[bytes]) -> bytes:
    data = gzip.compress(b"".join(line + b"\n" for line in lines), mtime=0)
    path.write_bytes(data)
    return data


def decodable_prefix(compressed: bytes) -> bytes:
    """All that zlib can decode of a (possibly damaged) gzip stream: the oracle."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        return inflate.decompress(compressed)
    except zlib.error:
        return b""


# -- reading ---------------------------------------------------------------------------

# A plain file, a gzip file, and a gzip file named as a plain one (read as one
# bad_json letter per chunk of compressed bytes before it was recognised).
NAMES = ["events.jsonl", "events.jsonl.gz", "compressed-not-renamed.jsonl"]
GZIPPED = NAMES[1:]


@pytest.mark.parametrize("name", NAMES)
def test_lines_become_messages_with_their_line_numbers(tmp_path: Path, name: str) -> None:
    lines = lines_of(20)
    content = b"\n".join(lines[:10]) + b"\n\n   \r\n" + b"\r\n".join(lines[10:])  # no final "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name in GZIPPED else content)
    os.utime(path, (MTIME, MTIME))
    read_before = counters.value("writech_messages_read_total")

    batches, position = read(path)

    assert messages_of(batches) == lines  # blank lines skipped, "\r" dropped, last line kept
    offsets = [offset for batch in batches for offset in batch.offsets]
    assert offsets == [*range(1, 11), *range(13, 23)]  # lines 11 and 12 are blank
    assert all(len(batch.messages) <= 7 for batch in batches)
    assert {(batch.origin, batch.partition) for batch in batches} == {(str(path), 0)}
    assert letters_of(batches) == []
    assert counters.value("writech_messages_read_total") - read_before == 20
    assert position.position == (len(content), 22)
    assert not position.damaged


@pytest.mark.parametrize("name", NAMES)
def test_a_resume_continues_after_the_last_snapshot(tmp_path: Path, name: str) -> None:
    lines = lines_of(50)
    content = b"".join(line + b"\n" for line in lines)
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name in GZIPPED else content)
    partition = JsonLinesSource([str(path)], 10).build_part("read", str(path), None)
    first = partition.next_batch() + partition.next_batch()
    snapshot = partition.snapshot()
    partition.close()

    rest, end = read(path, snapshot)

    assert snapshot.position == (sum(len(line) + 1 for line in lines[:20]), 20)
    assert messages_of(first) == lines[:20]
    assert messages_of(rest) == lines[20:]
    assert [batch.offsets[0] for batch in rest][:1] == [21]
    assert end.position == (len(content), 50)


@pytest.mark.parametrize("name", NAMES)
def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_its_first_line(
    tmp_path: Path, name: str
) -> None:
    """A UTF-8 file saved by a Windows editor starts with the mark (its CRLF is read already).
    Only there: one on a later line belongs to that message, which then says so."""
    lines = lines_of(6)
    later = UTF8_BOM + lines[5]
    content = UTF8_BOM + b"\r\n".join([*lines[:5], later]) + b"\r\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name in GZIPPED else content)

    batches, position = read(path, batch_size=2)

    assert messages_of(batches) == [*lines[:5], later]
    assert position.position == (len(content), 6)  # the mark is counted in the offsets
    partition = JsonLinesSource([str(path)], 2).build_part("read", str(path), None)
    partition.next_batch()
    snapshot = partition.snapshot()
    partition.close()
    rest, _ = read(path, snapshot)  # a resume reads on from there, nothing stripped
    assert messages_of(rest) == [*lines[2:5], later]


def test_a_position_stored_before_fingerprints_still_resumes(tmp_path: Path) -> None:
    lines = lines_of(10)
    path = tmp_path / "old.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    rest, end = read(path, (sum(len(line) + 1 for line in lines[:4]), 4))
    assert messages_of(rest) == lines[4:]
    assert end.input == Fingerprint.of(str(path))


def test_produced_at_is_the_modification_time_recorded_at_first_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines_of(30)))
    os.utime(path, (MTIME, MTIME))
    partition = JsonLinesSource([str(path)], 10).build_part("read", str(path), None)
    first = partition.next_batch()
    snapshot = partition.snapshot()
    partition.close()

    rest, _ = read(path, snapshot)

    assert snapshot.input.mtime_ns == int(MTIME * 1e9)
    assert {at for batch in first + rest for at in batch.produced_at} == {MTIME}
    assert all(len(batch.produced_at) == len(batch.messages) for batch in first + rest)


def test_the_future_skew_decision_is_the_same_when_a_resume_re_reads(tmp_path: Path) -> None:
    """Issue 10 item 5, at the source: re-read messages carry the first reading's produced_at,
    so one far ahead of the file's time is dead-lettered both times and one within the skew
    is counted both times, although the wall clock moved on (it is months after MTIME)."""
    ahead = b'{"event_type": "login_event", "student_id": "a", "timestamp": "2026-03-03T00:00:00Z"}'
    within = (
        b'{"event_type": "login_event", "student_id": "w", "timestamp": "2026-03-01T06:00:00Z"}'
    )
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"%s\n%s\n%s\n" % (lines_of(1)[0], ahead, within))
    os.utime(path, (MTIME, MTIME))
    partition = JsonLinesSource([str(path)], 1).build_part("read", str(path), None)
    before_crash = partition.next_batch()
    snapshot = partition.snapshot()  # a resume re-reads what followed this snapshot
    before_crash += partition.next_batch() + partition.next_batch()
    partition.close()
    after_resume, _ = read(path, snapshot)
    decoder = EventDecoder(Settings().tz)

    def fates(batches: list[RawBatch]) -> dict[int, str]:
        found: dict[int, str] = {}
        for batch in batches:
            events, dead = decoder.decode_batch(batch)
            found |= {event.offset: "counted" for event in events}
            found |= {letter.offset: letter.reason for letter in rows.dead_letters(dead)}
        return found

    first_reading = {line: fate for line, fate in fates(before_crash).items() if line > 1}
    assert first_reading == {2: "bad_timestamp", 3: "counted"}
    assert fates(after_resume) == first_reading
    re_read = [at for batch in after_resume for at in batch.produced_at]
    assert re_read == [at for batch in before_crash[1:] for at in batch.produced_at] == [MTIME] * 2


# -- damaged input ---------------------------------------------------------------------


def test_a_truncated_gzip_gives_its_good_lines_and_one_dead_letter(tmp_path: Path) -> None:
    lines = lines_of(3000, width=40)
    data = write_gz(tmp_path / "events.jsonl.gz", lines)
    truncated = data[: len(data) // 2]
    (tmp_path / "events.jsonl.gz").write_bytes(truncated)
    decoded = decodable_prefix(truncated)
    good = decoded.count(b"\n")
    read_before = counters.value("writech_messages_read_total")

    batches, position = read(tmp_path / "events.jsonl.gz", batch_size=500)

    assert 0 < good < len(lines)
    assert messages_of(batches) == lines[:good]
    [letter] = letters_of(batches)
    assert (letter.reason, letter.offset, letter.partition) == ("damaged_input", good + 1, 0)
    assert letter.origin == str(tmp_path / "events.jsonl.gz")
    assert letter.message.startswith("truncated gzip stream")
    assert f"line {good + 1} on could not be read" in letter.message
    partial = decoded[decoded.rindex(b"\n") + 1 :]
    assert partial
    assert lines[good].startswith(partial)  # a partial line is no message
    assert (letter.raw, letter.raw_encoding) == (partial.decode(), "utf8")
    assert counters.value("writech_messages_read_total") - read_before == good + 1
    assert position.damaged
    assert position.position[1] == good


def test_a_gzip_cut_at_its_trailer_keeps_every_line(tmp_path: Path) -> None:
    lines = lines_of(100)
    data = write_gz(tmp_path / "events.jsonl.gz", lines)
    (tmp_path / "events.jsonl.gz").write_bytes(data[:-8])  # CRC and length gone

    batches, _ = read(tmp_path / "events.jsonl.gz")

    assert messages_of(batches) == lines
    [letter] = letters_of(batches)
    assert (letter.reason, letter.offset, letter.raw) == ("damaged_input", 101, "")


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=40),
    cut=st.floats(0.0, 1.0, exclude_max=True),
)
def test_any_truncation_emits_exactly_the_complete_lines_before_it(
    sizes: list[int], cut: float
) -> None:
    lines = [b"%d:%s" % (n, b"y" * size) for n, size in enumerate(sizes)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cut.jsonl.gz"
        data = write_gz(path, lines)
        truncated = data[: max(1, int(len(data) * cut))]
        path.write_bytes(truncated)
        batches, _ = read(path, batch_size=3)
    good = decodable_prefix(truncated).count(b"\n")
    assert messages_of(batches) == lines[:good]
    [letter] = letters_of(batches)
    assert (letter.reason, letter.offset) == ("damaged_input", good + 1)


def test_gzip_data_corrupt_from_its_start(tmp_path: Path) -> None:
    data = bytearray(write_gz(tmp_path / "events.jsonl.gz", lines_of(50)))
    data[10] = 0xFF  # the first deflate block: final, of the reserved type 3
    (tmp_path / "events.jsonl.gz").write_bytes(data)

    batches, position = read(tmp_path / "events.jsonl.gz")

    assert messages_of(batches) == []
    [letter] = letters_of(batches)
    assert (letter.reason, letter.offset) == ("damaged_input", 1)
    assert letter.message.startswith("corrupt gzip data (Error -3 while decompressing data")
    # unreadable from its first byte: the raw is the file as stored
    assert letter.raw_encoding == "base64"
    assert base64.b64decode(letter.raw) == bytes(data)
    assert position.damaged


def test_a_gzip_whose_checksum_fails(tmp_path: Path) -> None:
    lines = lines_of(40)
    data = bytearray(write_gz(tmp_path / "events.jsonl.gz", lines))
    data[-8] ^= 0xFF  # the CRC-32 of the trailer
    (tmp_path / "events.jsonl.gz").write_bytes(data)

    batches, _ = read(tmp_path / "events.jsonl.gz")

    assert messages_of(batches) == lines  # the checksum is only known at the end
    [letter] = letters_of(batches)
    assert letter.offset == 41
    assert letter.message.startswith("corrupt gzip data (CRC check failed")


def test_a_file_named_gz_that_is_not_gzip(tmp_path: Path) -> None:
    content = b"".join(line + b"\n" for line in lines_of(5))
    (tmp_path / "plain.jsonl.gz").write_bytes(content)

    batches, _ = read(tmp_path / "plain.jsonl.gz")

    assert messages_of(batches) == []
    [letter] = letters_of(batches)
    assert (letter.reason, letter.offset) == ("damaged_input", 1)
    assert letter.message.startswith("not gzip data (Not a gzipped file")
    assert (letter.raw, letter.raw_encoding) == (content.decode(), "utf8")


def test_the_raw_of_a_damage_letter_is_bounded(tmp_path: Path) -> None:
    content = b"x" * (3 * HEAD_BYTES)  # not gzip, and one long line
    (tmp_path / "big.jsonl.gz").write_bytes(content)
    [letter] = letters_of(read(tmp_path / "big.jsonl.gz")[0])
    assert letter.raw == "x" * HEAD_BYTES


def test_bytes_after_the_gzip_stream_that_are_not_gzip(tmp_path: Path) -> None:
    lines = lines_of(12)
    data = write_gz(tmp_path / "events.jsonl.gz", lines)
    (tmp_path / "events.jsonl.gz").write_bytes(data + b"<html>oops</html>")

    batches, _ = read(tmp_path / "events.jsonl.gz")

    assert messages_of(batches) == lines
    [letter] = letters_of(batches)
    assert letter.offset == 13
    assert letter.message.startswith("not gzip data")


def test_a_partition_that_ended_in_damage_resumes_to_nothing(tmp_path: Path) -> None:
    data = write_gz(tmp_path / "events.jsonl.gz", lines_of(30))
    (tmp_path / "events.jsonl.gz").write_bytes(data[: len(data) // 2])
    _, position = read(tmp_path / "events.jsonl.gz")
    read_before = counters.value("writech_messages_read_total")

    again, _ = read(tmp_path / "events.jsonl.gz", position)

    assert again == []  # no second dead letter for the same damage
    assert counters.value("writech_messages_read_total") == read_before


# -- changed and missing inputs --------------------------------------------------------


def snapshot_of_first_batch(path: Path) -> FilePosition:
    partition = JsonLinesSource([str(path)], 5).build_part("read", str(path), None)
    partition.next_batch()
    snapshot = partition.snapshot()
    partition.close()
    return snapshot


def test_a_new_file_under_the_same_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines_of(20)))
    snapshot = snapshot_of_first_batch(path)
    path.write_bytes(b"".join(line + b"\n" for line in lines_of(30)))

    with pytest.raises(InputChanged, match="changed since the recovery store began") as refused:
        read(path, snapshot)
    assert str(path) in str(refused.value)
    assert "size" in str(refused.value)
    assert "start a new recovery store" in str(refused.value)


def test_the_same_size_with_other_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = lines_of(20)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    os.utime(path, (MTIME, MTIME))
    snapshot = snapshot_of_first_batch(path)
    path.write_bytes(b"".join(line.replace(b"s1", b"t1") + b"\n" for line in lines))
    os.utime(path, (MTIME, MTIME))  # even with the old modification time

    with pytest.raises(InputChanged, match=r"reading it \(content of its first 64 KiB\):"):
        read(path, snapshot)


def test_changes_name_each_difference() -> None:
    recorded = Fingerprint(100, 1_700_000_000_000_000_000, b"a" * 16)
    assert changes(recorded, recorded) == []
    assert changes(recorded, Fingerprint(100, 1_700_000_000_000_000_000, b"b" * 16)) == [
        "content of its first 64 KiB"
    ]
    assert changes(recorded, Fingerprint(120, 1_700_000_001_000_000_000, b"a" * 16)) == [
        "size 100 -> 120 bytes",
        "modified 2023-11-14T22:13:20.000000+00:00 -> 2023-11-14T22:13:21.000000+00:00",
    ]


def test_check_resume_refuses_a_missing_file_and_accepts_a_new_one(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        (tmp_path / name).write_bytes(b"".join(line + b"\n" for line in lines_of(10)))
    a, b, c = (str(tmp_path / name) for name in ("a.jsonl", "b.jsonl", "c.jsonl"))
    stored = {a: snapshot_of_first_batch(Path(a)), b: snapshot_of_first_batch(Path(b))}

    JsonLinesSource([a, b, c]).check_resume(stored)  # a new file is read from its start
    with pytest.raises(InputChanged, match="not among the inputs now") as refused:
        JsonLinesSource([a, c]).check_resume(stored)
    assert b in str(refused.value)
    assert a not in str(refused.value)


# -- writech replay ----------------------------------------------------------------------


def replay_numbers(*args: str) -> dict[str, int]:
    return summary_numbers(run_writech("replay", "--quiet", *args).stdout)


def test_replay_reads_the_good_files_and_the_good_lines_of_a_truncated_one(
    tmp_path: Path,
) -> None:
    messages = list(generate(events=3000, students=60, days=3, malformed=0.02, seed=5))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.jsonl").write_bytes(b"".join(m + b"\n" for m in messages[:1000]))
    with gzip.open(inputs / "b.jsonl.gz", "wb") as out:
        out.write(b"".join(m + b"\n" for m in messages[1000:2000]))
    data = gzip.compress(b"".join(m + b"\n" for m in messages[2000:]))
    truncated = data[: len(data) * 2 // 3]
    (inputs / "c.jsonl.gz").write_bytes(truncated)
    good = decodable_prefix(truncated).count(b"\n")
    # what the run must equal: the same messages, the damaged file's good lines only
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "a.jsonl").write_bytes((inputs / "a.jsonl").read_bytes())
    (tmp_path / "expected" / "b.jsonl").write_bytes(
        b"".join(m + b"\n" for m in messages[1000:2000])
    )
    (tmp_path / "expected" / "c.jsonl").write_bytes(
        b"".join(m + b"\n" for m in messages[2000 : 2000 + good])
    )

    numbers = replay_numbers(str(inputs), "--data-dir", str(tmp_path / "data"))
    expected_numbers = replay_numbers(
        str(tmp_path / "expected"), "--data-dir", str(tmp_path / "clean")
    )

    assert 0 < good < 1000
    assert numbers["read"] == 2000 + good + 1
    assert (
        numbers["read"] == numbers["processed"] + numbers["duplicates"] + numbers["dead-lettered"]
    )
    assert numbers["damaged_input"] == 1
    assert numbers["processed"] == expected_numbers["processed"]
    tables, clean = read_tables(tmp_path / "data"), read_tables(tmp_path / "clean")
    assert tables["student_daily_stats"] == clean["student_daily_stats"]
    assert tables["analytics_metrics"] == clean["analytics_metrics"]
    damaged = [d for d in tables["dead_letter"] if d["reason"] == "damaged_input"]
    assert [(d["origin"], d["offset"]) for d in damaged] == [(str(inputs / "c.jsonl.gz"), good + 1)]
    others = Counter(d["reason"] for d in tables["dead_letter"] if d["reason"] != "damaged_input")
    assert others == Counter(d["reason"] for d in clean["dead_letter"])


def test_replay_resumes_only_from_the_same_files(tmp_path: Path) -> None:
    """What Bytewax did: a missing file stopped the run with "Key ... is not in this worker's
    routing map"; a changed file resumed at its old offset. Now: plain refusals, and a new file
    next to the old ones is read from its start."""
    a, b, c = (tmp_path / name for name in ("a.jsonl", "b.jsonl", "c.jsonl"))
    for seed, path in enumerate((a, b, c)):
        path.write_bytes(b"".join(m + b"\n" for m in generate(events=300, students=20, seed=seed)))
    recovery = tmp_path / "recovery"
    run_writech("recovery", "init", "--dir", str(recovery))
    data = ["--data-dir", str(tmp_path / "data"), "-r", str(recovery)]
    assert replay_numbers(str(a), str(b), *data)["read"] == 600

    missing = refused_replay(str(a), str(c), *data)
    assert (
        f"the recovery store holds positions in {b}, which is not among the inputs now" in missing
    )
    assert "routing map" not in missing

    assert replay_numbers(str(a), str(b), str(c), *data)["read"] == 300  # only the new file

    c.write_bytes(c.read_bytes() + b"\n")
    changed = refused_replay(str(a), str(b), str(c), *data)
    assert f"{c} changed since the recovery store began reading it (size" in changed


def refused_replay(*args: str) -> str:
    """The error of a `writech replay` that must be refused at start-up (exit 2)."""
    result = subprocess.run(
        [sys.executable, "-m", "writech", "replay", "--quiet", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    return result.stderr


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_large_messages_make_smaller_batches_and_a_resume_still_lines_up(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "BATCH_BYTES", 1_000)
    lines = lines_of(40, width=300)  # about 400 bytes a line
    content = b"".join(line + b"\n" for line in lines)
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)

    batches, end = read(path, batch_size=100)

    assert messages_of(batches) == lines
    assert all(sum(len(m) + 1 for m in batch.messages) <= 1_000 for batch in batches)
    assert all(len(batch.messages) >= 2 for batch in batches[:-1])
    assert end.position == (len(content), 40)

    partition = JsonLinesSource([str(path)], 100).build_part("read", str(path), None)
    first = partition.next_batch()
    snapshot = partition.snapshot()
    partition.close()
    rest, _ = read(path, snapshot, batch_size=100)
    assert messages_of(first) + messages_of(rest) == lines


def test_a_message_larger_than_the_batch_budget_is_a_batch_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "BATCH_BYTES", 1_000)
    lines = [*lines_of(3), *lines_of(1, width=5_000), *lines_of(3)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))

    batches, _ = read(path, batch_size=100)

    assert messages_of(batches) == lines
    assert [lines[3]] in [batch.messages for batch in batches]


def test_a_file_whose_name_is_not_utf8_is_refused_before_anything_is_read(
    tmp_path: Path,
) -> None:
    """Bytewax panicked on such a name while starting the flow; the run now stops before it
    reads, names the file and says what to do, and writes nothing."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "fine.jsonl").write_bytes(b"".join(line + b"\n" for line in lines_of(2)))
    strange = os.fsdecode(b"caf\xe9.jsonl")  # Latin-1, as an old archive may name it
    (inputs / strange).write_bytes(b"".join(line + b"\n" for line in lines_of(2)))

    with pytest.raises(SettingsError, match="not UTF-8 text"):
        JsonLinesSource([str(inputs)])

    data = tmp_path / "data"
    said = refused_replay(str(inputs), "--data-dir", str(data))
    assert "rename the file" in said
    assert "Traceback" not in said
    assert "panicked" not in said
    assert not data.exists()


# -- lines longer than the message limit ------------------------------------------------


def outcomes(content: bytes, limit: int) -> dict[int, tuple[str, bytes, str]]:
    """What each line of `content` becomes, read whole as the decoder reads a message:
    by line number, ("message", bytes, "") or ("too_large", raw kept, its message)."""
    lines = content.split(b"\n")
    if not lines[-1]:
        lines.pop()
    found: dict[int, tuple[str, bytes, str]] = {}
    for number, line in enumerate(lines, 1):
        message = line.rstrip(b"\r")
        if not message.strip():
            continue
        if len(message) > limit:
            said = f"message of {len(message)} bytes exceeds the limit of {limit} bytes"
            found[number] = ("too_large", message[:limit], said)
        else:
            found[number] = ("message", message, "")
    return found


def outcomes_read(batches: list[RawBatch], limit: int) -> dict[int, tuple[str, bytes, str]]:
    """The same from what a partition emitted, with the decoder's size check applied."""
    decoder = EventDecoder(UTC, max_message_bytes=limit)
    found: dict[int, tuple[str, bytes, str]] = {}
    for batch in batches:
        _, letters = decoder.decode_batch(batch)
        for letter in rows.dead_letters(letters):
            if letter.reason == "too_large":
                found[letter.offset] = ("too_large", letter.raw.encode(), letter.message)
        for offset, message in zip(batch.offsets, batch.messages, strict=True):
            if len(message) <= limit:
                found[offset] = ("message", message, "")
    return found


def read_limited(
    path: Path, limit: int, resume: FilePosition | None = None, most: int | None = None
) -> tuple[list[RawBatch], FilePosition]:
    """Batches of 3 lines of a partition under message limit `limit`, until it ends or
    `most` batches were read, and its snapshot then."""
    partition = JsonLinesSource([str(path)], 3, limit).build_part("read", str(path), resume)
    batches: list[RawBatch] = []
    try:
        while most is None or len(batches) < most:
            try:
                batches += partition.next_batch()
            except StopIteration:
                break
            # no line is held whole beyond the limit and a chunk
            assert all(len(line) <= limit + files.CHUNK_BYTES for line in partition._lines)
        return batches, partition.snapshot()
    finally:
        partition.close()


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(
        st.tuples(
            st.integers(0, 300),  # characters
            st.sampled_from([b"x", b" ", b"\r"]),  # of which
            st.sampled_from([b"", b"\r", b"\r\r", b" "]),  # ending it
        ),
        min_size=1,
        max_size=12,
    ),
    final_newline=st.booleans(),
    chunk=st.integers(1, 64),
    gz=st.booleans(),
    stop_after=st.integers(1, 4),
)
def test_a_line_longer_than_the_limit_is_said_too_large_without_being_kept_whole(
    pieces: list[tuple[int, bytes, bytes]],
    final_newline: bool,
    chunk: int,
    gz: bool,
    stop_after: int,
) -> None:
    """Whatever the lines, chunks and "\\r"s: every line ends as it would if kept whole,
    the position after them is the file's end, and a resume from a snapshot taken on the
    way reads exactly the rest."""
    limit = 40
    content = b"\n".join(b"a" + fill * count + end for count, fill, end in pieces)
    content += b"\n" if final_newline else b""
    with tempfile.TemporaryDirectory() as directory, mock.patch.object(files, "CHUNK_BYTES", chunk):
        path = Path(directory) / ("events.jsonl.gz" if gz else "events.jsonl")
        path.write_bytes(gzip.compress(content) if gz else content)
        batches, end = read_limited(path, limit)
        first, snapshot = read_limited(path, limit, most=stop_after)
        rest, resumed_end = read_limited(path, limit, resume=snapshot)
    assert outcomes_read(batches, limit) == outcomes(content, limit)
    assert end.position == (len(content), len(pieces))
    assert outcomes_read(first + rest, limit) == outcomes(content, limit)
    assert resumed_end.position == end.position


def test_a_file_that_is_one_long_line_is_read_in_little_memory(tmp_path: Path) -> None:
    """A JSON array of 48 MiB in one line, say: one too_large dead letter, found reading
    a chunk at a time. Kept whole, it took twice its size and time growing with its square."""
    path = tmp_path / "array.jsonl"
    line = b"[" + b'{"event_type": "login_event"},' * (48 * 1024 * 1024 // 30) + b"{}]"
    path.write_bytes(line + b"\n" + lines_of(1)[0] + b"\n")
    tracemalloc.start()
    try:
        batches, end = read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak:,} bytes at the peak"
    (letter,) = letters_of(batches)
    assert (letter.offset, letter.reason) == (1, "too_large")
    assert letter.message == f"message of {len(line)} bytes exceeds the limit of 1048576 bytes"
    assert letter.raw.encode() == line[: 1 << 20]
    assert messages_of(batches) == lines_of(1)
    assert end.position == (path.stat().st_size, 2)


def test_a_directory_of_more_files_than_the_soft_limit_replays(tmp_path: Path) -> None:
    """Every file is held open while read: with `ulimit -n` at the usual 1,024, 1,100 files
    failed mid-run ("Too many open files"). The soft limit is raised to what they need,
    and where the hard limit forbids it, the run is refused before it starts, in one line.
    `writech validate` reads one file at a time, so that limit does not refuse it."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    lines = lines_of(1_100)
    for number, line in enumerate(lines):
        (inputs / f"part-{number:05d}.jsonl").write_bytes(line + b"\n")

    def replay(hard: int, command: str = "replay") -> subprocess.CompletedProcess[str]:
        data = tmp_path / f"data-{hard}"
        return subprocess.run(
            [sys.executable, "-m", "writech", command, str(inputs)]
            + (["--data-dir", str(data)] if command == "replay" else []),
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1_024, hard)),
            env={**os.environ, "WRITECH_CLICKHOUSE_URL": "", "WRITECH_MYSQL_URL": ""},
            capture_output=True,
            text=True,
            timeout=300,
        )

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    enough = 1_100 + files.OTHER_FILES
    if hard != resource.RLIM_INFINITY and hard < enough:
        pytest.fail(f"this machine's hard limit of open files ({hard:,}) is below {enough:,}")
    result = replay(enough)
    assert result.returncode == 0, result.stderr
    assert summary_numbers(result.stdout)["read"] == 1_100

    refused = replay(1_024)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "1,100 input files, and this process may hold at most 1,024 files open" in refused.stderr
    assert not (tmp_path / "data-1024").exists()

    validated = replay(1_024, "validate")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith("1100 files, 1,100 messages: 1,100 valid,")


@pytest.mark.parametrize("others", [[], ["events.ndjson", "notes.txt"]])
def test_a_directory_without_json_lines_files_is_refused(tmp_path: Path, others: list[str]) -> None:
    """Read as empty, such a directory ended a replay with nothing read and exit 0: a
    directory of `.ndjson` files looked replayed. It is refused, saying what it holds."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in others:
        (inputs / name).write_bytes(b"".join(line + b"\n" for line in lines_of(2)))
    said = refused_inputs(tmp_path, inputs, r"no \.jsonl or \.jsonl\.gz file in this directory")
    assert (
        "(it holds 2 other file(s), such as 'events.ndjson')" if others else "directory\n"
    ) in said


def refused_inputs(tmp_path: Path, inputs: Path, match: str) -> str:
    """The one line the files source and `writech replay` refuse `inputs` with (matching
    `match`), before anything is opened: exit 2, no data dir."""
    with pytest.raises(SettingsError, match=match):
        JsonLinesSource([str(inputs)])
    data = tmp_path / "data"
    said = refused_replay(str(inputs), "--data-dir", str(data))
    assert said.count("\n") == 1
    assert not data.exists()
    return said


def test_a_pipe_is_refused_as_what_it_is(tmp_path: Path) -> None:
    """`writech replay /dev/stdin` under a shell pipe, or a named pipe: said to be missing
    before, though it exists. A stream cannot be read again from a position after a
    resume, so it is refused, saying what to do instead."""
    pipe = tmp_path / "events.jsonl"
    os.mkfifo(pipe)
    assert refused_inputs(tmp_path, pipe, "not a regular file or directory") == (
        f"writech: {pipe}: not a regular file or directory (a pipe, socket or device); a "
        "replay reads files it can read again from a position: write the stream to a .jsonl "
        "(or .jsonl.gz) file and replay that\n"
    )


def test_standard_input_is_refused_as_a_stream(tmp_path: Path) -> None:
    """`zcat events.jsonl.gz | writech replay -` said "no such file or directory: -"."""
    said = refused_inputs(tmp_path, Path("-"), "standard input")
    assert said.startswith("writech: - (standard input): not a regular file or directory")
    assert "write the stream to a .jsonl (or .jsonl.gz) file and replay that" in said


@pytest.mark.parametrize(
    ("kind", "compress"),
    [("bzip2", bz2.compress), ("xz", lzma.compress), ("zstd", None), ("zip", None)],
)
def test_a_file_compressed_otherwise_than_with_gzip_is_refused(
    tmp_path: Path, kind: str, compress: Callable[[bytes], bytes] | None
) -> None:
    """Read as text, such a file became one bad_json letter per newline byte of its
    compressed data, and the replay exited 0 with nothing counted."""
    content = b"".join(line + b"\n" for line in lines_of(50))
    path = tmp_path / f"events.jsonl.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("events.jsonl", content)
    elif kind == "zstd":  # its frame header, as `zstd` writes it, then anything
        path.write_bytes(b"\x28\xb5\x2f\xfd" + content)
    else:
        assert compress is not None
        path.write_bytes(compress(content))
    assert refused_inputs(tmp_path, path, f"compressed with {kind}") == (
        f"writech: {path}: compressed with {kind}; a replay reads JSON lines, plain or gzip: "
        "decompress it (or compress it with gzip) and run again\n"
    )


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    """By its path and its absolute path, a link, a directory holding it: read twice
    before, its events were counted once but each dead letter was stored twice."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = inputs / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in [*lines_of(5), b"{not json"]))
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    relative = os.path.relpath(path, REPO)
    assert expand([str(path), str(link), str(inputs), str(path.resolve())]) == [str(path)]

    once, twice = tmp_path / "once", tmp_path / "twice"
    run_writech("replay", str(path), "--data-dir", str(once), "-q")
    names = (str(path), relative, str(link), str(inputs))
    result = run_writech("replay", *names, "--data-dir", str(twice))
    assert summary_numbers(result.stdout)["read"] == 6
    assert read_tables(twice) == read_tables(once)
    assert len(read_tables(twice)["dead_letter"]) == 1
