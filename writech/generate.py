"""Synthetic event streams that look like a school's (for samples, tests and benchmarks).

Students sit in classes of schools and each has a steady ability, so
scores, stroke-order accuracy and writing quality vary per student
around it. Events follow a school day's rhythm in the school time zone,
mixed in the proportions a pen-and-pad deployment produces: mostly raw
strokes and scoring of written characters, some homework, a few exams
and logins. A chosen fraction of messages is malformed (one of every
kind a producer gets wrong) or an exact re-send of an earlier one.
Everything is a function of `seed`: the same arguments give the same bytes.
"""

from __future__ import annotations

import gzip
import itertools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import IO, Any, Final

import msgspec

# Share of each event type in a school's stream.
EVENT_MIX: Final = {
    "stroke_raw": 0.38,
    "stroke_order": 0.16,
    "writing_quality": 0.10,
    "ocr_result": 0.10,
    "homework_submit": 0.07,
    "grade_result": 0.07,
    "login_event": 0.10,
    "exam_score": 0.02,
}
SUBJECTS: Final = ("chinese", "math", "english")
SUBJECT_WEIGHTS: Final = (0.55, 0.3, 0.15)
KNOWLEDGE_POINTS: Final = {
    "chinese": (
        "拼音",
        "笔顺",
        "偏旁部首",
        "形近字",
        "多音字",
        "标点符号",
        "古诗词默写",
        "阅读理解",
    ),
    "math": ("加减法", "乘法口诀", "分数", "应用题", "几何图形", "单位换算"),
    "english": ("phonics", "spelling", "grammar", "vocabulary"),
}
CHARACTERS: Final = "永字八法天地人你我他山水火木日月书写学习作业笔顺"
DEVICES: Final = ("pad", "pad", "pad", "mobile", "pc", "board")
SCHOOL_TZ: Final = timezone(timedelta(hours=8))
# Each kind of broken message, as a producer might send it.
MALFORMED: Final = (
    b'{"event_type": "stroke_raw", "student_id": "s1", "timestamp": ',  # truncated
    b"[1, 2, 3]",
    b'{"event_type": "login_event", "timestamp": "2026-09-01T08:00:00+08:00"}',
    b'{"event_type": "login_event", "student_id": 42, "timestamp": "2026-09-01T08:00:00+08:00"}',
    b'{"event_type": "pen_lost", "student_id": "s1", "timestamp": "2026-09-01T08:00:00+08:00"}',
    b'{"event_type": "login_event", "student_id": "s1", "timestamp": "yesterday"}',
    b'{"event_type": "grade_result", "student_id": "s1", "timestamp": "2026-09-01T08:00:00+08:00",'
    b' "payload": {"score": 120, "total_score": 100}}',
    b'{"event_type": "stroke_raw", "student_id": "s1", "timestamp": "2026-09-01T08:00:00+08:00",'
    b' "payload": {"stroke_count": "12"}}',
    b'{"event_type": "stroke_order", "student_id": "s1", "timestamp": "2026-09-01T08:00:00+08:00",'
    b' "payload": null}',
    b"\xff\xfe not utf-8 \x80",
)


@dataclass(frozen=True)
class Student:
    student_id: str
    class_id: str
    school_id: str
    ability: float  # 0..1, drives every score
    activity: float  # relative share of events


def make_students(count: int, class_size: int, rng: random.Random) -> list[Student]:
    students = []
    for number in range(count):
        class_number = number // class_size
        students.append(
            Student(
                student_id=f"stu-{number:06d}",
                class_id=f"class-{class_number:04d}",
                school_id=f"school-{class_number // 12:03d}",
                ability=min(0.98, max(0.15, rng.betavariate(5, 2))),
                activity=rng.lognormvariate(0, 0.5),
            )
        )
    return students


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _payload(event_type: str, student: Student, rng: random.Random) -> dict[str, Any]:
    ability = student.ability
    subject = rng.choices(SUBJECTS, SUBJECT_WEIGHTS)[0]
    if event_type == "stroke_raw":
        return {
            "stroke_count": rng.randint(5, 400),
            "page_id": f"page-{rng.randint(1, 500):04d}",
            "subject": subject,
        }
    if event_type == "stroke_order":
        return {
            "score": round(_clamp(rng.gauss(ability * 100, 12), 0, 100), 1),
            "character": rng.choice(CHARACTERS),
        }
    if event_type == "writing_quality":
        return {
            "quality_score": round(_clamp(rng.gauss(ability * 95, 10), 0, 100), 1),
            "speed": round(_clamp(rng.gauss(12 + ability * 10, 4), 0.5, 60), 2),
        }
    if event_type == "ocr_result":
        return {
            "confidence": round(_clamp(rng.gauss(0.6 + ability * 0.35, 0.08), 0, 1), 3),
            "char_count": rng.randint(1, 300),
        }
    if event_type == "homework_submit":
        return {"subject": subject, "time_cost_minutes": rng.randint(5, 90)}
    if event_type == "grade_result":
        total = rng.choice((10, 20, 50, 100, 100, 100, 120))
        score = round(_clamp(rng.gauss(ability, 0.12), 0, 1) * total, 1)
        wrong = round((1 - score / total) * rng.randint(2, 8))
        points = KNOWLEDGE_POINTS[subject]
        return {
            "score": score,
            "total_score": total,
            "subject": subject,
            "homework_id": f"hw-{rng.randint(1, 300):04d}",
            "errors": [
                {
                    "question_id": f"q{rng.randint(1, 30)}",
                    "knowledge_point": rng.choice(points) if rng.random() > 0.05 else "",
                    "error_type": rng.choice(("concept", "careless", "stroke", "spelling")),
                }
                for _ in range(wrong)
            ],
        }
    if event_type == "exam_score":
        total = rng.choice((100, 120, 150))
        return {
            "subject": subject,
            "score": round(_clamp(rng.gauss(ability, 0.1), 0, 1) * total, 1),
            "total_score": total,
            "exam_id": f"exam-{rng.randint(1, 20):03d}",
        }
    return {}


def _timestamp(moment: datetime, rng: random.Random) -> str:
    """Producers disagree on formats: UTC with Z, an offset, or naive local time."""
    style = rng.random()
    if style < 0.5:
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if style < 0.85:
        return moment.isoformat(timespec="seconds")
    return moment.replace(tzinfo=None).isoformat(timespec="seconds")


def generate(
    events: int,
    students: int = 500,
    days: int = 5,
    start: date = date(2026, 9, 1),
    class_size: int = 40,
    malformed: float = 0.01,
    duplicates: float = 0.01,
    large: float = 0.0,
    seed: int = 7,
) -> Iterator[bytes]:
    """Yield `events` messages (one JSON document each, without newline)."""
    rng = random.Random(seed)
    roster = make_students(students, class_size, rng)
    # cumulative weights: `choices` then bisects instead of summing per call
    student_weights = list(itertools.accumulate(student.activity for student in roster))
    types = list(EVENT_MIX)
    type_weights = list(itertools.accumulate(EVENT_MIX.values()))
    encoder = msgspec.json.Encoder()
    recent: list[bytes] = []
    seconds_per_event = days * 9 * 3600 / max(events, 1)  # school hours 08:00-17:00
    first = datetime(start.year, start.month, start.day, 8, tzinfo=SCHOOL_TZ)
    for number in range(events):
        roll = rng.random()
        if roll < malformed:
            yield rng.choice(MALFORMED)
            continue
        if roll < malformed + duplicates and recent:
            yield rng.choice(recent)
            continue
        elapsed = number * seconds_per_event + rng.uniform(-120, 120)
        day_index, in_day = divmod(max(0.0, elapsed), 9 * 3600)
        moment = first + timedelta(days=int(day_index), seconds=in_day)
        student = rng.choices(roster, cum_weights=student_weights)[0]
        event_type = rng.choices(types, cum_weights=type_weights)[0]
        message: dict[str, Any] = {
            "event_type": event_type,
            "student_id": student.student_id,
            "class_id": student.class_id,
            "school_id": student.school_id,
            "timestamp": _timestamp(moment, rng),
            "source": rng.choice(DEVICES),
            "payload": _payload(event_type, student, rng),
        }
        if rng.random() < 0.7:
            message["event_id"] = f"{student.student_id}-{number:09d}"
        if large and rng.random() < large:
            # a full-page stroke capture: points the pipeline ignores
            size = rng.randint(64 * 1024, 200 * 1024) // 12
            message["points"] = [[rng.randint(0, 999), rng.randint(0, 999)] for _ in range(size)]
        raw = encoder.encode(message)
        recent.append(raw)
        if len(recent) > 1000:
            recent.pop(rng.randrange(len(recent)))
        yield raw


def write(messages: Iterator[bytes], out: str) -> int:
    """Write messages as JSON lines to `out` (`-` for stdout, `.gz` compressed)."""
    count = 0
    stream: IO[bytes] | gzip.GzipFile
    if out == "-":
        stream = sys.stdout.buffer
    elif out.endswith(".gz"):
        stream = gzip.open(out, "wb", compresslevel=6)  # noqa: SIM115 - closed below
    else:
        stream = open(out, "wb")  # noqa: SIM115 - closed below
    try:
        for message in messages:
            stream.write(message + b"\n")
            count += 1
    finally:
        if stream is not sys.stdout.buffer:
            stream.close()
    return count
