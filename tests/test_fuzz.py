"""Bad input at scale (SPEC §2): whatever bytes arrive, decoding either yields an
event or a dead letter with a reason; no exception escapes.

CI runs a bounded number of examples; set WRITECH_FUZZ_EXAMPLES (e.g. 200000)
for the long mode described in the README.
"""

from __future__ import annotations

import json
import os
from typing import get_args
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cases import INVALID, VALID
from writech.events import UTF8_BOM, Event, EventDecoder, Invalid, RawBatch, Reason

EXAMPLES = int(os.environ.get("WRITECH_FUZZ_EXAMPLES", "1500"))
REASONS = set(get_args(Reason))
decoder = EventDecoder(ZoneInfo("Asia/Shanghai"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [raw for _, raw in VALID] + [raw for _, raw, _ in INVALID]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "event_type",
        "student_id",
        "timestamp",
        "class_id",
        "school_id",
        "source",
        "event_id",
        "payload",
        "score",
        "total_score",
        "errors",
        "stroke_count",
        "speed",
        "subject",
    ]
)


def _outcome(raw: bytes) -> Event | Invalid:
    try:
        return decoder.decode(raw)
    except Invalid as invalid:
        return invalid


def _check(raw: bytes) -> None:
    """One input: an event, or a dead letter with a known reason; never anything else."""
    outcome = _outcome(raw)  # any other exception fails the test
    if isinstance(outcome, Invalid):
        assert outcome.reason in REASONS
        assert outcome.message
    else:
        assert outcome.student_id
        assert len(outcome.student_id) <= 64
        assert outcome.event_id
    events, dead = decoder.decode_batch(RawBatch("fuzz", 0, [1], [raw]))
    assert len(events) + len(dead) == 1  # nothing lost, nothing doubled


@fuzz
@given(st.binary(max_size=600))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@fuzz
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_messages(seed: bytes, data: st.DataObject) -> None:
    """Byte-level mutations of real messages: flips, cuts, insertions."""
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip" and raw:
            raw[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[position : position + data.draw(st.integers(1, 8))]
        elif action == "insert":
            raw[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[position:]
    _check(UTF8_BOM * data.draw(st.sampled_from([0, 0, 1, 2])) + bytes(raw))  # Windows files


@fuzz
@given(st.sampled_from([raw for _, raw in VALID]), field_names, json_values, st.booleans())
def test_structurally_mutated_messages(
    seed: bytes, name: str, value: object, in_payload: bool
) -> None:
    """Valid messages with one field replaced by any JSON value, at the top or in the payload."""
    document = json.loads(seed)
    target = document.setdefault("payload", {}) if in_payload else document
    target[name] = value
    _check(json.dumps(document, ensure_ascii=bool(value is None)).encode("utf-8", "surrogatepass"))


# -- resource shapes: what an attacker would send ------------------------------

VALID_SEEDS = [raw for _, raw in VALID]
where = st.sampled_from(["envelope", "payload", "error item"])


def _with_ignored_field(seed: bytes, place: str, value_text: bytes) -> bytes:
    """`seed` with an unknown field holding `value_text` (raw JSON) at `place`."""
    document = json.loads(seed)
    marker = "\u2063marker\u2063"
    if place == "envelope":
        document["x-extra"] = marker
    elif place == "payload":
        document.setdefault("payload", {})
        if not isinstance(document["payload"], dict):
            document["payload"] = {}
        document["payload"]["x-extra"] = marker
    else:
        document["event_type"] = "grade_result"
        document["payload"] = {"errors": [{"knowledge_point": "拼音", "x-extra": marker}]}
    text = json.dumps(document, ensure_ascii=False).encode()
    return text.replace(json.dumps(marker, ensure_ascii=False).encode(), value_text)


@fuzz
@given(st.sampled_from(VALID_SEEDS), where, st.integers(1, 6000), st.sampled_from([b"[]", b"{}"]))
def test_deep_nesting_in_ignored_fields(seed: bytes, place: str, depth: int, kind: bytes) -> None:
    opener = b"[" if kind == b"[]" else b'{"k":'
    closer = b"]" if kind == b"[]" else b"}"
    nested = opener * depth + (b"" if kind == b"[]" else b"1") + closer * depth
    raw = _with_ignored_field(seed, place, nested)
    _check(raw)
    if depth >= 2000:  # beyond any decoder's reach: a dead letter, never an exception
        assert _outcome(raw).__class__ is Invalid


@fuzz
@given(
    st.sampled_from(VALID_SEEDS),
    where,
    st.sampled_from(
        [
            b"1e400",
            b"-1e400",
            b"1" * 5000,
            b"-" + b"9" * 400,
            b"4.9e-324",
            b"-0.0",
            b"123456789012345678901234567890",
        ]
    ),
)
def test_huge_numbers_in_ignored_fields(seed: bytes, place: str, number: bytes) -> None:
    raw = _with_ignored_field(seed, place, number)
    _check(raw)
    assert isinstance(_outcome(raw), Event)  # ignored, whatever its size


@fuzz
@given(
    st.sampled_from(VALID_SEEDS),
    where,
    st.integers(0, 200_000),
    st.integers(0, 3000),
)
def test_long_strings_and_many_keys(seed: bytes, place: str, length: int, keys: int) -> None:
    many = b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(keys)) + b"}"
    _check(_with_ignored_field(seed, place, b'"' + b"x" * length + b'"'))
    _check(_with_ignored_field(seed, place, many))


@fuzz
@given(st.sampled_from(VALID_SEEDS), where, st.binary(min_size=1, max_size=6))
def test_invalid_utf8_in_ignored_fields(seed: bytes, place: str, junk: bytes) -> None:
    text = junk.replace(b'"', b"")
    raw = _with_ignored_field(seed, place, b'"' + text + b'"')
    _check(raw)
    try:
        text.decode()
    except UnicodeDecodeError:
        outcome = _outcome(raw)
        assert isinstance(outcome, Invalid)
        assert outcome.reason == "bad_json"
