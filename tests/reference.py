"""An independent computation of SPEC §1-§4, for checking the pipeline.

Written from the contract with the standard library only (json, datetime,
zoneinfo, math.fsum), deliberately sharing no code with `writech`: plain
dicts, straightforward loops, floating-point means. It knows nothing of
shards, batches or flushes. Retention (SPEC §5) is out of its scope: feed
it inputs that span fewer days than the retention period.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

TYPES = {
    "stroke_raw",
    "grade_result",
    "homework_submit",
    "ocr_result",
    "stroke_order",
    "writing_quality",
    "exam_score",
    "login_event",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _payload_ok(event_type: str, p: dict[str, Any]) -> None:
    def string(name: str) -> None:
        if name in p and not isinstance(p[name], str):
            raise Rejected("bad_payload")

    def number(
        name: str, low: float | None = None, high: float | None = None, integer: bool = False
    ) -> None:
        if name not in p:
            return
        value = p[name]
        if not (_is_int(value) if integer else _is_number(value)):
            raise Rejected("bad_payload")
        if (low is not None and value < low) or (high is not None and value > high):
            raise Rejected("bad_payload")

    if event_type == "stroke_raw":
        number("stroke_count", 0, 2**31 - 1, integer=True)
        string("page_id")
        string("subject")
    elif event_type in ("grade_result", "exam_score"):
        number("score", 0)
        number("total_score")
        if "total_score" in p and p["total_score"] <= 0:
            raise Rejected("bad_payload")
        if p.get("score", 0) > p.get("total_score", 100):
            raise Rejected("bad_payload")
        for name in ("subject", "homework_id", "exam_id"):
            string(name)
        if event_type == "grade_result" and "errors" in p:
            if not isinstance(p["errors"], list):
                raise Rejected("bad_payload")
            for item in p["errors"]:
                if not isinstance(item, dict) or any(
                    not isinstance(item.get(k, ""), str)
                    for k in ("question_id", "knowledge_point", "error_type")
                ):
                    raise Rejected("bad_payload")
    elif event_type == "homework_submit":
        string("subject")
        number("time_cost_minutes", 0, 1440, integer=True)
    elif event_type == "ocr_result":
        number("confidence", 0, 1)
        number("char_count", 0, 2**31 - 1, integer=True)
    elif event_type == "stroke_order":
        number("score", 0, 100)
        string("character")
    elif event_type == "writing_quality":
        number("quality_score", 0, 100)
        number("speed", 0, 1e300)  # the product's documented bound


@dataclass
class Valid:
    event_id: str
    event_type: str
    student_id: str
    class_id: str
    school_id: str
    instant: datetime
    day: date
    payload: dict[str, Any]


def _timestamp(text: str) -> datetime:
    """The documented grammar, checked piece by piece, then read by Python's parser."""
    digits = set("0123456789")

    def numeric(part: str) -> bool:
        return bool(part) and set(part) <= digits

    date_part, time_part = text[:10], text[10:]
    if not (len(date_part) == 10 and date_part[4] == date_part[7] == "-"):
        raise ValueError(text)
    if not all(numeric(date_part[a:b]) for a, b in ((0, 4), (5, 7), (8, 10))):
        raise ValueError(text)
    if not time_part:
        return datetime.fromisoformat(date_part)
    if time_part[0] not in "Tt " or len(time_part) < 6 or time_part[3] != ":":
        raise ValueError(text)
    clock, zone = time_part[1:], ""
    for marker in ("Z", "z", "+", "-"):
        if marker in clock:
            clock, zone = clock[: clock.index(marker)], clock[clock.index(marker) :]
            break
    if zone and zone not in ("Z", "z"):
        hours_minutes = zone[1:].replace(":", "", 1) if len(zone) == 6 else zone[1:]
        if len(hours_minutes) not in (2, 4) or not numeric(hours_minutes):
            raise ValueError(text)
        zone = f"{zone[0]}{hours_minutes[:2]}:{hours_minutes[2:] or '00'}"
    elif zone:
        zone = "+00:00"
    whole, _, fraction = clock.replace(",", ".").partition(".")
    pieces = whole.split(":")
    if len(pieces) not in (2, 3) or not all(len(p) == 2 and numeric(p) for p in pieces):
        raise ValueError(text)
    if "." in clock.replace(",", ".") and not (numeric(fraction) and len(fraction) <= 9):
        raise ValueError(text)
    if len(pieces) == 3 and int(pieces[2]) > 59:
        raise ValueError(text)
    fraction = f".{fraction[:6]}" if fraction else ""
    return datetime.fromisoformat(f"{date_part}T{whole}{fraction}{zone}")


def parse(raw: bytes, tz: ZoneInfo, max_bytes: int = 1 << 20, now: float | None = None) -> Valid:
    if len(raw) > max_bytes:
        raise Rejected("too_large")
    try:
        obj = json.loads(raw.decode("utf-8"))
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # lone surrogates are not text
    except (UnicodeError, ValueError, RecursionError):
        raise Rejected("bad_json") from None
    if not isinstance(obj, dict):
        raise Rejected("not_an_object")
    for name in ("class_id", "school_id", "source", "student_id", "event_type", "event_id"):
        if name in obj and obj[name] is not None and not isinstance(obj[name], str):
            raise Rejected("bad_field")
    for name in ("class_id", "school_id", "source"):
        if name in obj and obj[name] is None:
            raise Rejected("bad_field")
    if (
        "timestamp" in obj
        and obj["timestamp"] is not None
        and not isinstance(obj["timestamp"], str)
    ):
        raise Rejected("bad_timestamp")
    if not obj.get("event_type"):
        raise Rejected("missing_field")
    if obj["event_type"] not in TYPES:
        raise Rejected("unknown_event_type")
    if not obj.get("student_id"):
        raise Rejected("missing_field")
    if len(obj["student_id"]) > 64:
        raise Rejected("bad_field")
    if not obj.get("timestamp"):
        raise Rejected("missing_field")
    try:
        moment = _timestamp(obj["timestamp"])
    except ValueError:
        raise Rejected("bad_timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        local = moment.astimezone(tz)
    except OverflowError:
        raise Rejected("bad_timestamp") from None
    if local.date() < date(1970, 1, 1) or moment.timestamp() < 0:
        raise Rejected("bad_timestamp")
    if moment.timestamp() >= 2**32:  # ClickHouse's DateTime ends in 2106
        raise Rejected("bad_timestamp")
    reference_time = datetime.now(UTC).timestamp() if now is None else now
    if local.timestamp() > reference_time + 86400:
        raise Rejected("bad_timestamp")
    payload = obj.get("payload", {})
    if not isinstance(payload, dict):
        raise Rejected("bad_payload")
    _payload_ok(obj["event_type"], payload)
    event_id = obj.get("event_id") or hashlib.blake2b(raw, digest_size=16).hexdigest()
    return Valid(
        event_id=event_id,
        event_type=obj["event_type"],
        student_id=obj["student_id"],
        class_id=obj.get("class_id", ""),
        school_id=obj.get("school_id", ""),
        instant=moment.astimezone(UTC),
        day=local.date(),
        payload=payload,
    )


@dataclass
class _Row:
    values: list[Valid] = field(default_factory=list)


@dataclass
class Expected:
    stats: dict[tuple[str, str, str], dict[str, Any]]
    metrics: dict[tuple[str, str], dict[str, Any]]  # (student_id, metric_id)
    errors: dict[tuple[str, int], dict[str, Any]]
    dead_letters: Counter[str]
    processed: int
    duplicates: int
    read: int
    # (student_id, window start in seconds) and (class_id, window start)
    student_minutes: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    class_minutes: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def _subject(event: Valid) -> str:
    if event.event_type in ("ocr_result", "stroke_order", "writing_quality"):
        return "chinese"
    if event.event_type == "login_event":
        return ""
    return str(event.payload.get("subject", "unknown"))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def expected(messages: list[bytes], tz: str = "Asia/Shanghai") -> Expected:
    """What the tables must hold after replaying `messages` (no blank lines)."""
    zone = ZoneInfo(tz)
    dead: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    by_row: dict[tuple[str, str, str], list[Valid]] = defaultdict(list)
    duplicates = 0
    for raw in messages:
        try:
            event = parse(raw, zone)
        except Rejected as rejected:
            dead[rejected.reason] += 1
            continue
        if (event.student_id, event.event_id) in seen:
            duplicates += 1
            continue
        seen.add((event.student_id, event.event_id))
        by_row[(event.student_id, event.day.isoformat(), _subject(event))].append(event)

    stats: dict[tuple[str, str, str], dict[str, Any]] = {}
    metrics: dict[tuple[str, str], dict[str, Any]] = {}
    errors: dict[tuple[str, int], dict[str, Any]] = {}
    for key, events in by_row.items():
        of = defaultdict(list)
        for event in events:
            of[event.event_type].append(event)
        grades = of["grade_result"]
        exams = of["exam_score"]
        orders = of["stroke_order"]
        quality = of["writing_quality"]
        points = [
            item["knowledge_point"]
            for event in grades
            for item in event.payload.get("errors", [])
            if item.get("knowledge_point")
        ]

        def latest(attribute: str, events: list[Valid] = events) -> str:
            named = [e for e in events if getattr(e, attribute)]
            if not named:
                return ""
            return str(getattr(max(named, key=lambda e: (e.instant, e.event_id)), attribute))

        def percent(event: Valid) -> float:
            return (
                float(event.payload.get("score", 0))
                / float(event.payload.get("total_score", 100))
                * 100
            )

        stats[key] = {
            "class_id": latest("class_id"),
            "school_id": latest("school_id"),
            "homework_count": len(of["homework_submit"]),
            "homework_completed": len(grades),
            "homework_avg_score": _mean([percent(e) for e in grades]),
            "study_duration_minutes": sum(
                e.payload.get("time_cost_minutes", 0) for e in of["homework_submit"]
            ),
            "stroke_count_total": sum(e.payload.get("stroke_count", 0) for e in of["stroke_raw"]),
            "practice_total_chars": sum(e.payload.get("char_count", 0) for e in of["ocr_result"]),
            "practice_count": len(orders),
            "stroke_order_accuracy": _mean([float(e.payload.get("score", 0)) for e in orders]),
            "writing_quality_count": len(quality),
            "writing_quality_avg": _mean(
                [float(e.payload.get("quality_score", 0)) for e in quality]
            ),
            "writing_speed_avg": _mean([float(e.payload.get("speed", 0)) for e in quality]),
            "error_count": len(points),
            "error_knowledge_points": sorted(set(points)),
            "exam_count": len(exams),
            "exam_avg_score": _mean([percent(e) for e in exams]),
            "login_count": len(of["login_event"]),
            "version": len(events),
        }
        for event in events:
            metric = _metric_of(event)
            if metric:
                metrics[(event.student_id, event.event_id)] = metric
            if event.event_type == "grade_result":
                for position, item in enumerate(event.payload.get("errors", [])):
                    if item.get("knowledge_point"):
                        errors[(event.event_id, position)] = {
                            "student_id": event.student_id,
                            "class_id": event.class_id,
                            "school_id": event.school_id,
                            "homework_id": event.payload.get("homework_id", ""),
                            "question_id": item.get("question_id", ""),
                            "subject": event.payload.get("subject", "unknown"),
                            "knowledge_point": item["knowledge_point"],
                            "error_type": item.get("error_type", ""),
                            "date": event.day.isoformat(),
                        }
    processed = sum(len(events) for events in by_row.values())
    counted = [event for events in by_row.values() for event in events]
    return Expected(
        stats,
        metrics,
        errors,
        dead,
        processed,
        duplicates,
        len(messages),
        _windows(counted, lambda e: e.student_id),
        _windows([e for e in counted if e.class_id], lambda e: e.class_id),
    )


def _windows(
    events: list[Valid], key: Callable[[Valid], str], seconds: int = 60
) -> dict[tuple[str, int], dict[str, Any]]:
    """Minute windows of `events` grouped by `key`: what student/class_minute_stats hold."""
    grouped: dict[tuple[str, int], list[Valid]] = defaultdict(list)
    for event in events:
        instant = int(event.instant.timestamp())
        grouped[(key(event), instant - instant % seconds)].append(event)
    found = {}
    for window, members in grouped.items():
        orders = [e for e in members if e.event_type == "stroke_order"]
        quality = [e for e in members if e.event_type == "writing_quality"]
        characters: dict[str, list[float]] = defaultdict(list)
        for e in orders:
            characters[e.payload.get("character", "")].append(float(e.payload.get("score", 0)))
        names = sorted(characters)
        found[window] = {
            "active_students": len({e.student_id for e in members}),
            "events": len(members),
            "strokes": sum(
                e.payload.get("stroke_count", 0) for e in members if e.event_type == "stroke_raw"
            ),
            "stroke_order_count": len(orders),
            "stroke_order_avg": _mean([float(e.payload.get("score", 0)) for e in orders]),
            "writing_quality_count": len(quality),
            "writing_quality_avg": _mean(
                [float(e.payload.get("quality_score", 0)) for e in quality]
            ),
            "homework_submitted": sum(e.event_type == "homework_submit" for e in members),
            "characters": names,
            "character_attempts": [len(characters[n]) for n in names],
            "character_scores": [_mean(characters[n]) for n in names],
            "version": len(members),
        }
    return found


def _metric_of(event: Valid) -> dict[str, Any] | None:
    p = event.payload
    if event.event_type == "stroke_raw":
        return {
            "metric_type": "stroke_count",
            "metric_value": float(p.get("stroke_count", 0)),
            "dimension": p.get("page_id", ""),
            "subject": p.get("subject", "unknown"),
        }
    if event.event_type == "ocr_result":
        return {
            "metric_type": "ocr_confidence",
            "metric_value": float(p.get("confidence", 0)),
            "dimension": "",
            "subject": "chinese",
        }
    if event.event_type == "exam_score":
        value = float(p.get("score", 0)) / float(p.get("total_score", 100)) * 100
        return {
            "metric_type": "exam_score",
            "metric_value": value,
            "dimension": p.get("exam_id", ""),
            "subject": p.get("subject", "unknown"),
        }
    if event.event_type == "login_event":
        return {"metric_type": "login", "metric_value": 1.0, "dimension": "", "subject": ""}
    if event.event_type == "stroke_order":
        return {
            "metric_type": "stroke_order_score",
            "metric_value": float(p.get("score", 0)),
            "dimension": p.get("character", ""),
            "subject": "chinese",
        }
    return None
