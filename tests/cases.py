"""Hand-written messages: one that breaks each rule of SPEC §1, with its reason, and valid edge cases."""

from __future__ import annotations

import json
from typing import Any

TS = "2026-09-02T09:00:00+08:00"


def message(event_type: Any = "grade_result", payload: Any = ..., **fields: Any) -> bytes:
    """A JSON message; `fields` override envelope fields, and `...` leaves a field out."""
    envelope: dict[str, Any] = {
        "event_type": event_type,
        "student_id": "stu-x",
        "class_id": "class-x",
        "school_id": "school-x",
        "timestamp": TS,
    }
    if payload is not ...:
        envelope["payload"] = payload
    envelope.update(fields)
    envelope = {name: value for name, value in envelope.items() if value is not ...}
    return json.dumps(envelope, ensure_ascii=False).encode()


# (test id, raw message, the reason it must be dead-lettered with)
INVALID: list[tuple[str, bytes, str]] = [
    # the message as a whole
    ("truncated json", b'{"event_type": "login_event", "student_id": "s"', "bad_json"),
    ("not json", b"hello world", "bad_json"),
    ("not utf-8", b'{"event_type": "login_event", "student_id": "\xff\xfe"}', "bad_json"),
    ("lone surrogate", b'{"event_type": "login_event", "student_id": "\\ud800"}', "bad_json"),
    # the whole message must be UTF-8 text, the fields the contract ignores too
    (
        "not utf-8 in an unknown field",
        message("login_event").replace(b"}", b', "x": "\xff"}'),
        "bad_json",
    ),
    (
        "not utf-8 in an unknown payload field",
        message("stroke_raw", {"stroke_count": 1}).replace(b"1}", b'1, "note": "\xc3"}'),
        "bad_json",
    ),
    (
        "not utf-8 in an unknown error item field",
        message("grade_result", {"errors": [{}]}).replace(b"{}", b'{"hint": "\xe4\xb8"}'),
        "bad_json",
    ),
    ("overlong utf-8", message("login_event").replace(b"}", b', "x": "\xc0\xaf"}'), "bad_json"),
    (
        "utf-8 surrogate",
        message("login_event").replace(b"}", b', "x": "\xed\xa0\x80"}'),
        "bad_json",
    ),
    (
        "escaped surrogate in an unknown field",
        message("login_event").replace(b"}", b', "x": "\\udc00"}'),
        "bad_json",
    ),
    # poison: nesting deeper than any decoder can follow, in an ignored field
    (
        "deeply nested unknown field",
        message("login_event").replace(b"}", b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        "bad_json",
    ),
    (
        "deeply nested unknown payload field",
        message("stroke_raw", {"stroke_count": 1}).replace(
            b"1}", b'1, "p": ' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}"
        ),
        "bad_json",
    ),
    ("array", b"[1, 2, 3]", "not_an_object"),
    ("string", b'"login_event"', "not_an_object"),
    ("number", b"42", "not_an_object"),
    ("null", b"null", "not_an_object"),
    # event_type
    ("event_type missing", message(...), "missing_field"),
    ("event_type null", message(None), "missing_field"),
    ("event_type empty", message(""), "missing_field"),
    ("event_type number", message(3), "bad_field"),
    ("event_type unknown", message("pen_dropped"), "unknown_event_type"),
    ("event_type wrong case", message("Login_Event"), "unknown_event_type"),
    # student_id
    ("student_id missing", message(student_id=...), "missing_field"),
    ("student_id null", message(student_id=None), "missing_field"),
    ("student_id empty", message(student_id=""), "missing_field"),
    ("student_id number", message(student_id=12345), "bad_field"),
    ("student_id 65 chars", message(student_id="s" * 65), "bad_field"),
    # timestamp
    ("timestamp missing", message(timestamp=...), "missing_field"),
    ("timestamp null", message(timestamp=None), "missing_field"),
    ("timestamp empty", message(timestamp=""), "missing_field"),
    ("timestamp not iso", message(timestamp="02/09/2026 09:00"), "bad_timestamp"),
    ("timestamp words", message(timestamp="yesterday"), "bad_timestamp"),
    ("timestamp epoch number", message(timestamp=1788310800), "bad_timestamp"),
    ("timestamp impossible date", message(timestamp="2026-02-30T09:00:00"), "bad_timestamp"),
    ("timestamp far future", message(timestamp="2999-01-01T00:00:00Z"), "bad_timestamp"),
    # the grammar of writech.timestamps, nothing Python's parser also takes
    ("timestamp trailing NUL", message(timestamp="2026-09-02T09:00:00\u0000"), "bad_timestamp"),
    ("timestamp trailing newline", message(timestamp="2026-09-02T09:00:00\n"), "bad_timestamp"),
    ("timestamp trailing space", message(timestamp="2026-09-02T09:00:00 "), "bad_timestamp"),
    ("timestamp week date", message(timestamp="2026-W36-3"), "bad_timestamp"),
    ("timestamp basic format", message(timestamp="20260902T090000"), "bad_timestamp"),
    ("timestamp hour only", message(timestamp="2026-09-02T09"), "bad_timestamp"),
    ("timestamp hour 24", message(timestamp="2026-09-02T24:00:00"), "bad_timestamp"),
    ("timestamp leap second", message(timestamp="2026-09-02T23:59:60Z"), "bad_timestamp"),
    ("timestamp wide digits", message(timestamp="２０２６-09-02T09:00:00"), "bad_timestamp"),
    ("timestamp offset of a day", message(timestamp="2026-09-02T09:00:00+24:00"), "bad_timestamp"),
    (
        "timestamp ten fraction digits",
        message(timestamp="2026-09-02T09:00:00.1234567891"),
        "bad_timestamp",
    ),
    ("timestamp zone without time", message(timestamp="2026-09-02Z"), "bad_timestamp"),
    ("timestamp before 1970", message(timestamp="1969-12-31T12:00:00+08:00"), "bad_timestamp"),
    (
        "timestamp year 1 with offset",
        message(timestamp="0001-01-01T00:00:00+05:00"),
        "bad_timestamp",
    ),
    # optional envelope strings
    ("class_id number", message(class_id=7), "bad_field"),
    ("class_id null", message(class_id=None), "bad_field"),
    ("school_id list", message(school_id=["a"]), "bad_field"),
    ("source object", message(source={"kind": "pad"}), "bad_field"),
    ("event_id number", message(event_id=99), "bad_field"),
    # payload as a whole
    ("payload null", message(payload=None), "bad_payload"),
    ("payload list", message(payload=[1]), "bad_payload"),
    ("payload string", message(payload="score=90"), "bad_payload"),
    # stroke_raw
    ("stroke_count negative", message("stroke_raw", {"stroke_count": -1}), "bad_payload"),
    ("stroke_count float", message("stroke_raw", {"stroke_count": 3.5}), "bad_payload"),
    ("stroke_count numeric string", message("stroke_raw", {"stroke_count": "12"}), "bad_payload"),
    ("stroke_count boolean", message("stroke_raw", {"stroke_count": True}), "bad_payload"),
    ("stroke_count huge", message("stroke_raw", {"stroke_count": 2**31}), "bad_payload"),
    ("page_id number", message("stroke_raw", {"page_id": 5}), "bad_payload"),
    ("subject number", message("stroke_raw", {"subject": 1}), "bad_payload"),
    # grade_result
    (
        "score above total",
        message("grade_result", {"score": 101, "total_score": 100}),
        "bad_payload",
    ),
    ("score above default total", message("grade_result", {"score": 100.5}), "bad_payload"),
    ("score negative", message("grade_result", {"score": -1}), "bad_payload"),
    ("score boolean", message("grade_result", {"score": True}), "bad_payload"),
    ("score numeric string", message("grade_result", {"score": "90"}), "bad_payload"),
    ("total_score zero", message("grade_result", {"score": 0, "total_score": 0}), "bad_payload"),
    ("total_score negative", message("grade_result", {"total_score": -10}), "bad_payload"),
    (
        "errors not a list",
        message("grade_result", {"errors": {"knowledge_point": "a"}}),
        "bad_payload",
    ),
    ("errors element not object", message("grade_result", {"errors": ["拼音"]}), "bad_payload"),
    (
        "errors knowledge_point number",
        message("grade_result", {"errors": [{"knowledge_point": 3}]}),
        "bad_payload",
    ),
    ("homework_id number", message("grade_result", {"homework_id": 3}), "bad_payload"),
    # homework_submit
    (
        "time_cost above a day",
        message("homework_submit", {"time_cost_minutes": 1441}),
        "bad_payload",
    ),
    ("time_cost negative", message("homework_submit", {"time_cost_minutes": -5}), "bad_payload"),
    ("time_cost float", message("homework_submit", {"time_cost_minutes": 12.5}), "bad_payload"),
    # ocr_result
    ("confidence above 1", message("ocr_result", {"confidence": 1.5}), "bad_payload"),
    ("confidence negative", message("ocr_result", {"confidence": -0.1}), "bad_payload"),
    ("char_count negative", message("ocr_result", {"char_count": -1}), "bad_payload"),
    # stroke_order
    ("stroke order score above 100", message("stroke_order", {"score": 100.01}), "bad_payload"),
    ("character number", message("stroke_order", {"character": 27704}), "bad_payload"),
    # writing_quality
    ("quality negative", message("writing_quality", {"quality_score": -1}), "bad_payload"),
    ("quality above 100", message("writing_quality", {"quality_score": 101}), "bad_payload"),
    ("speed negative", message("writing_quality", {"speed": -0.5}), "bad_payload"),
    ("speed overflow", message("writing_quality", {"speed": 1e301}), "bad_payload"),
    # exam_score
    ("exam above total", message("exam_score", {"score": 151, "total_score": 150}), "bad_payload"),
    ("exam numeric string", message("exam_score", {"score": "90"}), "bad_payload"),
    ("exam_id number", message("exam_score", {"exam_id": 1}), "bad_payload"),
]

# Valid messages at the edges of the rules, each with what it must become.
VALID: list[tuple[str, bytes]] = [
    ("student_id of 64 chars", message("login_event", student_id="s" * 64)),
    ("naive timestamp", message("login_event", timestamp="2026-09-02T23:30:00")),
    ("utc timestamp", message("login_event", timestamp="2026-09-02T15:30:00Z")),
    ("date-only timestamp", message("login_event", timestamp="2026-09-02")),
    ("space separator", message("login_event", timestamp="2026-09-02 09:00:00")),
    ("minutes only", message("login_event", timestamp="2026-09-02T09:00")),
    ("nanoseconds", message("login_event", timestamp="2026-09-02T09:00:00.123456789Z")),
    ("comma fraction", message("login_event", timestamp="2026-09-02T09:00:00,5+08:00")),
    ("compact offset", message("login_event", timestamp="2026-09-02T09:00:00-0530")),
    ("hour offset", message("login_event", timestamp="2026-09-02T09:00:00+08")),
    ("lower-case separators", message("login_event", timestamp="2026-09-02t01:00:00z")),
    (
        "nested unknown field within limits",
        message("login_event").replace(b"}", b', "x": ' + b"[" * 200 + b"]" * 200 + b"}"),
    ),
    ("unknown utf-8 field", message("login_event").replace(b"}", ', "备注": "好"}'.encode())),
    ("no payload", message("stroke_order")),
    ("empty payload", message("stroke_order", {})),
    (
        "unknown fields ignored",
        message("stroke_raw", {"stroke_count": 3, "pressure": [1, 2]}, firmware="2.1"),
    ),
    ("integer score", message("grade_result", {"score": 90, "total_score": 120})),
    ("score equal to total", message("exam_score", {"score": 150, "total_score": 150})),
    ("empty event_id", message("login_event", event_id="")),
    ("error item with defaults", message("grade_result", {"errors": [{}]})),
    ("login payload with fields", message("login_event", {"device": "pad"})),
    ("time_cost of a whole day", message("homework_submit", {"time_cost_minutes": 1440})),
]
