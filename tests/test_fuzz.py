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
from writech.events import Event, EventDecoder, Invalid, RawBatch, Reason

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
    _check(bytes(raw))


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
