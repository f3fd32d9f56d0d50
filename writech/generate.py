"""Synthetic event streams that look like a school's (for samples, tests and benchmarks).

Students sit in classes of schools. Each has a steady ability that drives
every score, and tendencies a diagnosis should find: a few characters they
write in the wrong stroke order (some of them getting better with practice),
one or two knowledge points they err on, a tidiness that drives legibility
and writing quality, and for some a decline or a rise over the days.

Events follow a school day's rhythm in the school time zone, mixed in the
proportions a pen-and-pad deployment produces: mostly raw strokes and
scoring of written characters, some homework, a few exams and logins.
Stroke-order events write the characters of the current lesson (a real
first-grade character list), sometimes a review of earlier ones. Graded
homework is the class's homework of the day in its subject: a fixed set of
questions, each on one knowledge point, some harder than others, so the
same questions go wrong across a class.

What real producers also send, on purpose: now and then an error listed
twice for the same question, an error without a knowledge point, and every
`BROKEN_SUBMISSION_EVERY` graded homework a broken submission (score 0, about
a thousand listed errors on 25 questions). A chosen fraction of messages is
malformed (one of every kind a producer gets wrong) or an exact re-send of
an earlier one. Everything is a function of `seed`: the same arguments give
the same bytes.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import IO, Any, Final

import msgspec

from writech.outputs import written

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
ERROR_TYPES: Final = ("concept", "careless", "stroke", "spelling")
# A first-grade character list in lessons of eight, one lesson per school week.
LESSONS: Final = (
    "天地人你我他火山",
    "水木日月九万方书",
    "田禾马鸟必母里成",
    "上下左右出长车女",
    "大小多少东西南北",
    "口耳目手足心飞鸡",
)
CHARACTERS: Final = "".join(LESSONS)
# Characters children often write in the wrong stroke order (火: the two
# dots first; 必: the heart's hook before the slash; 九: the slash first ...).
TRICKY_CHARACTERS: Final = "火九万方书马鸟必母成出长车女北飞"
TRICKY_PENALTY: Final = 18.0  # points off every student's stroke-order score
WEAK_CHARACTER_PENALTY: Final = 28.0  # more off on a student's own weak characters
LESSON_DAYS: Final = 5
REVIEW_SHARE: Final = 0.25  # stroke-order events on earlier lessons' characters
# A broken submission (score 0, ~1000 errors listed on 25 questions): the
# first graded homework two thirds into the days, so that every stream has
# one where a report of its last days sees it, then one every this many.
BROKEN_SUBMISSION_EVERY: Final = 4000
# A practice session writes one character several times: the chance that a
# student's next stroke-order event is the character they wrote last.
SAME_CHARACTER: Final = 0.6
REPEATED_ERROR_SHARE: Final = 0.04  # errors listed twice for the same question
NO_KNOWLEDGE_POINT_SHARE: Final = 0.05
DEVICES: Final = ("pad", "pad", "pad", "mobile", "pc", "board")
SCHOOL_TZ: Final = timezone(timedelta(hours=8))
# The school days whose events (08:00 to 17:00 at +08:00) the stores can hold:
# 1970-01-01T08:00+08:00 is the epoch, and 2106-02-07T06:28:15Z the last instant
# (`writech.timestamps`); a day outside made only bad_timestamp letters, or
# ended the generator in an OverflowError past 9999.
FIRST_DAY: Final = date(1970, 1, 1)
LAST_DAY: Final = date(2106, 2, 6)
SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN_NAMES: Final = (
    "子涵", "浩然", "欣怡", "梓轩", "一诺", "宇轩", "雨桐", "思远", "嘉怡", "俊杰",
    "诗琪", "明轩", "佳怡", "晨曦", "语嫣", "天佑", "若汐", "博文", "梦琪", "皓轩",
    "可馨", "子墨", "沐阳", "安琪", "睿泽", "欣然", "铭宇", "紫萱", "家豪", "静怡",
)  # fmt: skip
GRADE_NAMES: Final = "一二三四五六"
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
    tidiness: float  # 0..1, drives legibility (OCR confidence) and writing quality
    trend: float  # change of ability per school day: most 0, some decline, a few rise
    weak_characters: frozenset[str]  # written in the wrong order more often
    improving: bool  # the weak characters get better over the days (practice works)
    weak_points: frozenset[str]  # knowledge points the student errs on more often


def make_students(count: int, class_size: int, rng: random.Random) -> list[Student]:
    students = []
    all_points = [point for points in KNOWLEDGE_POINTS.values() for point in points]
    for number in range(count):
        class_number = number // class_size
        ability = min(0.98, max(0.15, rng.betavariate(5, 2)))
        roll = rng.random()
        trend = -rng.uniform(0.015, 0.03) if roll < 0.1 else (0.01 if roll > 0.95 else 0.0)
        students.append(
            Student(
                student_id=f"stu-{number:06d}",
                class_id=f"class-{class_number:04d}",
                school_id=f"school-{class_number // 12:03d}",
                ability=ability,
                activity=rng.lognormvariate(0, 0.5),
                tidiness=_clamp(rng.gauss(ability, 0.12), 0.05, 1.0),
                trend=trend,
                weak_characters=frozenset(rng.sample(TRICKY_CHARACTERS, rng.randint(1, 3))),
                improving=rng.random() < 0.35,
                weak_points=frozenset(rng.sample(all_points, rng.randint(1, 2))),
            )
        )
    return students


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


@dataclass(frozen=True)
class Question:
    question_id: str
    knowledge_point: str
    difficulty: float  # added to the chance of getting it wrong


@functools.cache
def homework_questions(homework_id: str, subject: str, seed: int) -> tuple[Question, ...]:
    """The questions of one homework: the same for every student who gets it."""
    rng = random.Random(f"{seed}/{homework_id}")
    points = KNOWLEDGE_POINTS[subject]
    return tuple(
        Question(
            question_id=f"q{number}",
            knowledge_point=rng.choice(points),
            # one question in ten is hard: the class's common wrong answers
            difficulty=rng.uniform(-0.04, 0.04) + (0.3 if rng.random() < 0.1 else 0.0),
        )
        for number in range(1, rng.randint(8, 12) + 1)
    )


class _Stream:
    """The state a stream's payloads depend on: its seed, days and graded homework so far."""

    def __init__(self, seed: int, days: int) -> None:
        self.seed = seed
        self.days = days
        self.graded = 0
        self.next_broken = 0  # graded homework before the next broken submission
        self.last_character: dict[str, str] = {}

    def payload(
        self, event_type: str, student: Student, day: int, moment: datetime, rng: random.Random
    ) -> dict[str, Any]:
        ability = _clamp(student.ability + student.trend * day, 0.05, 0.99)
        tidiness = _clamp(student.tidiness + student.trend * day, 0.05, 1.0)
        subject = rng.choices(SUBJECTS, SUBJECT_WEIGHTS)[0]
        if event_type == "stroke_raw":
            return {
                "stroke_count": rng.randint(5, 400),
                "page_id": f"page-{rng.randint(1, 500):04d}",
                "subject": subject,
            }
        if event_type == "stroke_order":
            last = self.last_character.get(student.student_id)
            character = last if last and rng.random() < SAME_CHARACTER else _character(day, rng)
            self.last_character[student.student_id] = character
            mean = self._stroke_order(student, ability, character, day)
            return {
                "score": round(_clamp(rng.gauss(mean, 12), 0, 100), 1),
                "character": character,
            }
        if event_type == "writing_quality":
            return {
                "quality_score": round(_clamp(rng.gauss(tidiness * 95, 10), 0, 100), 1),
                "speed": round(_clamp(rng.gauss(12 + ability * 10, 4), 0.5, 60), 2),
            }
        if event_type == "ocr_result":
            confidence = rng.gauss(0.55 + tidiness * 0.4, 0.08)
            return {
                "confidence": round(_clamp(confidence, 0, 1), 3),
                "char_count": rng.randint(1, 300),
            }
        if event_type == "homework_submit":
            return {"subject": subject, "time_cost_minutes": rng.randint(5, 90)}
        if event_type == "grade_result":
            return self._graded(student, ability, subject, day, moment, rng)
        if event_type == "exam_score":
            total = rng.choice((100, 120, 150))
            return {
                "subject": subject,
                "score": round(_clamp(rng.gauss(ability, 0.1), 0, 1) * total, 1),
                "total_score": total,
                # one exam per subject and school week: the class sits it together
                "exam_id": f"exam-{day // LESSON_DAYS + 1:02d}-{subject}",
            }
        return {}

    def _stroke_order(self, student: Student, ability: float, character: str, day: int) -> float:
        mean = ability * 100
        if character in TRICKY_CHARACTERS:
            mean -= TRICKY_PENALTY
        if character in student.weak_characters:
            # practice closes most of the gap by the last day
            progress = day / max(1, self.days - 1) if student.improving else 0.0
            mean -= WEAK_CHARACTER_PENALTY * (1 - 0.8 * progress)
        return mean

    def _graded(
        self,
        student: Student,
        ability: float,
        subject: str,
        day: int,
        moment: datetime,
        rng: random.Random,
    ) -> dict[str, Any]:
        self.graded += 1
        homework_id = f"hw-{moment:%m%d}-{subject}"
        total = rng.choice((10, 20, 50, 100, 100, 100, 120))
        if day >= self.days * 2 // 3 and self.graded >= self.next_broken:
            self.next_broken = self.graded + BROKEN_SUBMISSION_EVERY
            return _broken_submission(homework_id, subject, rng)
        questions = homework_questions(homework_id, subject, self.seed)
        errors = []
        for question in questions:
            weak = 0.25 if question.knowledge_point in student.weak_points else 0.0
            chance = max(0.0, 0.85 - ability) * 0.6 + question.difficulty + weak
            if rng.random() < _clamp(chance, 0.01, 0.95):
                error = {
                    "question_id": question.question_id,
                    "knowledge_point": question.knowledge_point
                    if rng.random() >= NO_KNOWLEDGE_POINT_SHARE
                    else "",
                    "error_type": rng.choice(ERROR_TYPES),
                }
                errors.append(error)
                if rng.random() < REPEATED_ERROR_SHARE:
                    errors.append(dict(error))  # the grader listed it twice
        right = len(questions) - len({e["question_id"] for e in errors})
        return {
            "score": round(total * right / len(questions), 1),
            "total_score": total,
            "subject": subject,
            "homework_id": homework_id,
            "errors": errors,
        }


def _character(day: int, rng: random.Random) -> str:
    """A character of this week's lesson, or now and then one of an earlier lesson."""
    lesson = min(day // LESSON_DAYS, len(LESSONS) - 1)
    if lesson and rng.random() < REVIEW_SHARE:
        return rng.choice("".join(LESSONS[:lesson]))
    return rng.choice(LESSONS[lesson])


def _broken_submission(homework_id: str, subject: str, rng: random.Random) -> dict[str, Any]:
    """A grader's malfunction: score 0 and about a thousand errors listed on 25 questions."""
    points = KNOWLEDGE_POINTS[subject]
    return {
        "score": 0,
        "total_score": 100,
        "subject": subject,
        "homework_id": homework_id,
        "errors": [
            {
                "question_id": f"q{number % 25 + 1}",
                "knowledge_point": points[number % 25 % len(points)],
                "error_type": "concept",
            }
            for number in range(rng.randint(950, 1050))
        ],
    }


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
    stream = _Stream(seed, days)
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
        # within the school hours of the days asked for, the first and the last too
        day_index, in_day = divmod(min(max(0.0, elapsed), days * 9 * 3600 - 1), 9 * 3600)
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
            "payload": stream.payload(event_type, student, int(day_index), moment, rng),
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


def roster(students: int = 500, class_size: int = 40, seed: int = 7) -> list[dict[str, str]]:
    """Names for the students and classes `generate` makes with the same arguments.

    Rows of a roster CSV (student_id, student_name, class_id, class_name), as a
    school's information system would export them.
    """
    rows = []
    for student in make_students(students, class_size, random.Random(seed)):
        number = int(student.student_id.removeprefix("stu-"))
        names = random.Random(f"{seed}/name/{number}")
        class_number = number // class_size
        rows.append(
            {
                "student_id": student.student_id,
                "student_name": names.choice(SURNAMES) + names.choice(GIVEN_NAMES),
                "class_id": student.class_id,
                "class_name": f"{GRADE_NAMES[class_number // 4 % 6]}年级（{class_number % 4 + 1}）班",
            }
        )
    return rows


def write_roster(rows: Sequence[dict[str, str]], out: str) -> None:
    with written(out) as raw:
        stream = io.TextIOWrapper(raw, "utf-8", newline="")
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else ["student_id"])
        writer.writeheader()
        writer.writerows(rows)
        stream.detach()  # flushed; `written` closes the file


def write(messages: Iterator[bytes], out: str) -> int:
    """Write messages as JSON lines to `out` (`-` for stdout, `.gz` compressed)."""
    count = 0
    with written(out) as raw:
        stream: IO[bytes] | gzip.GzipFile = raw
        if out.endswith(".gz"):
            stream = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)
        for message in messages:
            stream.write(message + b"\n")
            count += 1
        if stream is not raw:
            stream.close()  # gzip's trailer; `written` closes the file
    return count
