"""Deletion on request (PIPL): which student a message names, and the flow's side of it.

`writech forget` (`writech.admin`) deletes a student's rows from the
tables and records the request in `forget_requests`: a hash of the
student id (`student_hash`; the id itself is not kept) and the time of the
request. The dataflow reads the requests when it starts
(`read_forget_requests`): it drops the student's rows from the state it
resumes with, and a message of theirs produced before their request is
deleted data, so when a resume reads it again it becomes a `forgotten` dead
letter without its bytes (`drop_forgotten`). Their messages produced later
are new data and are counted.

A dead letter belongs to a student when its message names them
(`named_student`, and `LETTER_NAMES_STUDENT`, the same rule in SQL).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
from typing import TYPE_CHECKING, Final

import msgspec

from writech.events import Event, dead_letter, raw_of
from writech.rows import TableRows
from writech.schema import DATABASE, DEAD_LETTER, FORGET_REQUESTS, DeadLetterRow
from writech.stores.base import ClickHouse

if TYPE_CHECKING:
    from writech.aggregate import Shard
    from writech.windows import StudentWindows

# A `"student_id": "..."` member in a message that is not valid JSON (a
# `too_large` letter keeps only the start of its message): JSON whitespace
# around the colon, the string's escapes kept.
_STUDENT_MEMBER: Final = re.compile(rb'"student_id"[ \t\n\r]*:[ \t\n\r]*"((?:[^"\\]|\\.)*)"')

# The same, as a ClickHouse condition on a dead letter's raw text (its bytes
# when base64): true when the letter names `{student:String}` as
# `named_student` reads it. `tests/test_admin.py` holds the two to agree.
_LETTER_TEXT: Final = "if(raw_encoding = 'base64', tryBase64Decode(raw), raw)"
LETTER_NAMES_STUDENT: Final = (
    f"if(isValidJSON({_LETTER_TEXT}), JSONExtractString({_LETTER_TEXT}, 'student_id'), "
    f"JSONExtractString(concat('\"', extract({_LETTER_TEXT}, "
    r"""'"student_id"[ \\t\\n\\r]*:[ \\t\\n\\r]*"((?:[^"\\\\]|\\\\.)*)"'), '"'))) """
    "= {student:String}"
)


class _NamedStudent(msgspec.Struct):
    student_id: str | None = None


_named_student = msgspec.json.Decoder(_NamedStudent)


def named_student(raw: bytes) -> str:
    """The student a message names ("" if none): its top-level `student_id` string.

    Unlike routing (`EventDecoder.student_of`), this reads any message,
    however large, and one that is not JSON by its `"student_id"` member.
    """
    try:
        return _named_student.decode(raw).student_id or ""
    except msgspec.ValidationError:  # JSON, but no object naming a student by a string
        return ""
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    found = _STUDENT_MEMBER.search(raw)
    if found is None:
        return ""
    try:
        return msgspec.json.decode(b'"' + found[1] + b'"', type=str)
    except msgspec.DecodeError:
        return ""


@functools.lru_cache(maxsize=1 << 16)  # looked up per event while requests exist
def student_hash(student_id: str) -> str:
    """How `forget_requests` names a student: a BLAKE2b hash of the id, never the id."""
    return hashlib.blake2b(student_id.encode(), digest_size=16).hexdigest()


class ForgetRequests(msgspec.Struct, frozen=True):
    """The deletion requests recorded when the flow started."""

    students: dict[str, str] = msgspec.field(default_factory=dict)  # request id: student hash
    # per student hash: messages produced before this time (seconds since the
    # epoch, the newest request's) are deleted data
    before: dict[str, float] = msgspec.field(default_factory=dict)


NO_REQUESTS: Final = ForgetRequests()


def read_forget_requests(store: ClickHouse) -> ForgetRequests:
    """Every request recorded in `forget_requests`."""
    rows = store.query(
        f"SELECT DISTINCT request_id, student_hash, toUnixTimestamp64Micro(requested_at) AS at "
        f"FROM `{DATABASE}`.`{FORGET_REQUESTS.name}`"
    )
    before: dict[str, float] = {}
    for row in rows:
        at = row["at"] / 1_000_000
        before[row["student_hash"]] = max(at, before.get(row["student_hash"], at))
    return ForgetRequests({row["request_id"]: row["student_hash"] for row in rows}, before)


def forget_in_state(
    shard: Shard, windows: StudentWindows, applied: frozenset[str], requests: ForgetRequests
) -> frozenset[str]:
    """Drop from a shard's state the students of the requests it has not had yet; the ids
    of every request it has had since.

    A request is applied once: state built after it holds only the student's
    new data, which a later resume must keep.
    """
    pending = {requests.students[request] for request in requests.students.keys() - applied}
    if pending:
        verdicts: dict[str, bool] = {}  # by student: one hash each, not one per window

        def forgotten(student: str) -> bool:
            verdict = verdicts.get(student)
            if verdict is None:
                verdict = verdicts[student] = student_hash(student) in pending
            return verdict

        shard.forget([student for student in shard.students() if forgotten(student)])
        # the windows' students are found where they are dropped: each cold hour
        # decoded once, not once more to list them
        windows.forget(forgotten)
    return applied | requests.students.keys()


def drop_forgotten(
    events: list[Event], dead: list[DeadLetterRow], requests: ForgetRequests
) -> tuple[list[Event], list[DeadLetterRow]]:
    """`events` and `dead` with the deleted data of forgotten students turned into
    `forgotten` dead letters (position kept, bytes not)."""
    before = requests.before
    kept: list[Event] = []
    letters: list[DeadLetterRow] = []
    for event in events:
        deadline = before.get(student_hash(event.student_id))
        if deadline is not None and event.produced_at < deadline:
            letters.append(
                _forgotten(event.origin, event.partition, event.offset, event.produced_at)
            )
        else:
            kept.append(event)
    letters += (_unless_forgotten(letter, before) for letter in dead)
    return kept, letters


def without_forgotten(resume: bytes | None, requests: ForgetRequests) -> bytes | None:
    """A `batch_rows` snapshot (rows not yet written) without forgotten students' rows.

    Those rows carry no production time: every row of such a student goes,
    and a dead letter naming them goes as `drop_forgotten` would have it.
    """
    if resume is None or not requests.before:
        return resume
    pending: TableRows | None = pickle.loads(resume)
    if pending is None:
        return resume
    table, before = pending.table, requests.before
    if table is DEAD_LETTER:
        rows = [_unless_forgotten(letter, before) for letter in pending.rows()]
    elif "student_id" in table.column_names:
        student = table.column_names.index("student_id")
        rows = [row for row in pending.rows() if student_hash(row[student]) not in before]
    else:
        return resume
    return pickle.dumps(TableRows.from_rows(table, rows), protocol=pickle.HIGHEST_PROTOCOL)


def _unless_forgotten(letter: DeadLetterRow, before: dict[str, float]) -> DeadLetterRow:
    """`letter`, or a `forgotten` letter in its place when it is a forgotten student's
    deleted data."""
    origin, partition, offset, _, _, raw, encoding, _, produced_us = letter
    student = named_student(raw_of(raw, encoding))
    deadline = before.get(student_hash(student)) if student else None
    produced_at = produced_us / 1_000_000
    if deadline is not None and produced_at < deadline:
        return _forgotten(origin, partition, offset, produced_at)
    return letter


def _forgotten(origin: str, partition: int, offset: int, produced_at: float) -> DeadLetterRow:
    return dead_letter(
        origin,
        partition,
        offset,
        b"",
        "forgotten",
        "its student's data was deleted on request (writech forget); the message is not kept",
        produced_at=produced_at,
    )
