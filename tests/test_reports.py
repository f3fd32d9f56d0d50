"""Reports end to end: events replayed into the embedded stores, reports made by
`writech report`, and every number checked against a computation from the raw
events in plain Python (json, statistics; nothing from writech.reports).

The data: a generated school of two classes over 12 days, plus crafted events
for the edge cases: a student with stroke-order data only, a student and a
class seen only before the report period, a knowledge point named like markup.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from writech.generate import generate
from writech.reports.model import Report, SchoolReport

TZ = ZoneInfo("Asia/Shanghai")
# In the past wherever the tests run (events more than a day ahead of the
# clock are rejected), and fixed relative to today.
START = date.today() - timedelta(days=40)
DAYS = 12
FROM = START + timedelta(days=6)
TO = START + timedelta(days=11)
PERIOD = [FROM + timedelta(days=n) for n in range((TO - FROM).days + 1)]
PREVIOUS = [FROM - timedelta(days=n) for n in range(len(PERIOD), 0, -1)]
SCORES = ("homework_score", "exam_score", "stroke_order_accuracy", "writing_quality")
MARKUP_POINT = "<b>分数&</b>"
APPROX = 0.006  # the report rounds to 2 decimals


def percent(payload: dict[str, Any]) -> float:
    return float(payload.get("score", 0)) / float(payload.get("total_score", 100)) * 100


# indicator -> (event type, the number each event contributes)
MEANS: dict[str, tuple[str, Callable[[dict[str, Any]], float]]] = {
    "homework_score": ("grade_result", percent),
    "exam_score": ("exam_score", percent),
    "stroke_order_accuracy": ("stroke_order", lambda p: float(p.get("score", 0))),
    "writing_quality": ("writing_quality", lambda p: float(p.get("quality_score", 0))),
    "writing_speed": ("writing_quality", lambda p: float(p.get("speed", 0))),
}
TOTALS = {
    "study_minutes": ("homework_submit", "time_cost_minutes"),
    "strokes": ("stroke_raw", "stroke_count"),
    "characters": ("ocr_result", "char_count"),
}


@dataclass(frozen=True)
class Event:
    kind: str
    student: str
    class_id: str
    school_id: str
    day: date
    payload: dict[str, Any]
    event_id: str


@dataclass(frozen=True)
class Dataset:
    data_dir: Path
    events: list[Event]  # distinct, valid

    def of(self, days: Iterable[date], **where: str) -> list[Event]:
        wanted = set(days)
        return [
            e
            for e in self.events
            if e.day in wanted and all(getattr(e, k) == v for k, v in where.items())
        ]


def crafted_events() -> list[dict[str, Any]]:
    numbers = itertools.count(1)

    def event(
        kind: str, student: str, class_id: str, day: date, payload: dict[str, Any]
    ) -> dict[str, Any]:
        number = next(numbers)
        return {
            "event_type": kind,
            "student_id": student,
            "class_id": class_id,
            "school_id": "school-edge",
            "timestamp": f"{day.isoformat()}T10:{number:02d}:00+08:00",
            "event_id": f"crafted-{number}",
            "payload": payload,
        }

    before = PREVIOUS[1]
    return [
        *(
            event(
                "stroke_order",
                "edge-partial",
                "class-edge",
                FROM + timedelta(days=n // 2),
                {"score": score},
            )
            for n, score in enumerate((60, 70, 80, 90))
        ),
        event(
            "stroke_raw",
            "edge-partial",
            "class-edge",
            FROM,
            {"stroke_count": 50, "subject": "chinese"},
        ),
        event("stroke_order", "edge-silent", "class-edge", before, {"score": 75}),
        event(
            "stroke_order", "edge-silent", "class-edge", before + timedelta(days=1), {"score": 85}
        ),
        event(
            "grade_result",
            "edge-graded",
            "class-edge",
            FROM,
            {
                "score": 40,
                "total_score": 50,
                "subject": "math",
                "errors": [
                    {"question_id": "q1", "knowledge_point": MARKUP_POINT, "error_type": "concept"}
                ],
            },
        ),
        event("login_event", "quiet-1", "class-quiet", before, {}),
        event("stroke_raw", "quiet-1", "class-quiet", before, {"stroke_count": 10}),
    ]


def _parse(raw: bytes) -> tuple[str, Event]:
    message = json.loads(raw)
    moment = datetime.fromisoformat(message["timestamp"])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=TZ)
    event = Event(
        kind=message["event_type"],
        student=message["student_id"],
        class_id=message.get("class_id", ""),
        school_id=message.get("school_id", ""),
        day=moment.astimezone(TZ).date(),
        payload=message.get("payload", {}),
        event_id=message.get("event_id", ""),
    )
    # an event without id is identified by its bytes: exact re-sends collapse
    return message.get("event_id") or raw.decode(), event


def clean_environment() -> dict[str, str]:
    """This environment without WRITECH_* settings: the tests configure what they use."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WRITECH_")}


def build_dataset(root: Path) -> Dataset:
    """Generate, replay and parse the events once per test session (reused by other modules)."""
    events_file = root / "events.jsonl"
    data_dir = root / "data"
    if not (root / "replayed").exists():
        root.mkdir(parents=True, exist_ok=True)
        messages = list(
            generate(
                events=16_000,
                students=80,
                days=DAYS,
                start=START,
                class_size=40,
                malformed=0.0,
                duplicates=0.01,
                seed=11,
            )
        )
        messages += [json.dumps(e, ensure_ascii=False).encode() for e in crafted_events()]
        events_file.write_bytes(b"\n".join(messages) + b"\n")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "writech",
                "replay",
                str(events_file),
                "--data-dir",
                str(data_dir),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            # crafted events for early dates come last: keep every date in state
            env=clean_environment() | {"WRITECH_RETENTION_DAYS": "60"},
        )
        assert result.returncode == 0, result.stderr
        (root / "replayed").touch()
    distinct = dict(_parse(raw) for raw in events_file.read_bytes().splitlines() if raw)
    return Dataset(data_dir=data_dir, events=list(distinct.values()))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.getbasetemp() / "reports-dataset")


def writech(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writech", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=clean_environment(),
    )


def report(dataset: Dataset, kind: str, scope_id: str, *extra: str) -> dict[str, Any]:
    """The JSON report for the test period."""
    result = writech(
        "report", kind, scope_id, "--format", "json", "--data-dir", str(dataset.data_dir),
        "--from", FROM.isoformat(), "--to", TO.isoformat(), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    decoded: dict[str, Any] = json.loads(result.stdout)
    return decoded


# -- the expected numbers, from raw events --------------------------------------


def student_values(events: list[Event]) -> dict[str, float | None]:
    """One student's indicators over some events: means of events, sums of totals."""
    values: dict[str, float | None] = {}
    for key, (kind, number) in MEANS.items():
        numbers = [number(e.payload) for e in events if e.kind == kind]
        values[key] = statistics.fmean(numbers) if numbers else None
    for key, (kind, field) in TOTALS.items():
        of_kind = [e for e in events if e.kind == kind]
        has_data = bool(of_kind) if key == "study_minutes" else bool(events)
        values[key] = sum(e.payload.get(field, 0) for e in of_kind) if has_data else None
    return values


def group_values(events: list[Event]) -> dict[str, float | None]:
    """A group's indicators: every event pooled for means, per-student mean of totals."""
    values: dict[str, float | None] = {}
    for key, (kind, number) in MEANS.items():
        numbers = [number(e.payload) for e in events if e.kind == kind]
        values[key] = statistics.fmean(numbers) if numbers else None
    by_student = by(events, lambda e: e.student)
    for key in TOTALS:
        totals = [v for es in by_student.values() if (v := student_values(es)[key]) is not None]
        values[key] = statistics.fmean(totals) if totals else None
    return values


def by(events: Iterable[Event], key: Callable[[Event], Any]) -> dict[Any, list[Event]]:
    groups: dict[Any, list[Event]] = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return groups


def knowledge_points(events: list[Event]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (subject, point): wrong answers, graded homework with one, rate, students."""
    graded = Counter(
        e.payload.get("subject", "unknown") for e in events if e.kind == "grade_result"
    )
    graders = by(
        (e for e in events if e.kind == "grade_result"),
        lambda e: e.payload.get("subject", "unknown"),
    )
    points: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        if e.kind != "grade_result":
            continue
        subject = e.payload.get("subject", "unknown")
        names = [err.get("knowledge_point", "") for err in e.payload.get("errors", [])]
        for name in set(filter(None, names)):
            point = points.setdefault(
                (subject, name), {"errors": 0, "homework": 0, "students": set()}
            )
            point["errors"] += names.count(name)
            point["homework"] += 1
            point["students"].add(e.student)
    for (subject, _), point in points.items():
        point["rate"] = 100 * point["homework"] / graded[subject]
        point["students_graded"] = len({e.student for e in graders[subject]})
    return points


def expected_attention(dataset: Dataset, class_id: str) -> dict[str, set[tuple[str, str | None]]]:
    """The documented rules, from the raw events of one class."""
    now = by(dataset.of(PERIOD, class_id=class_id), lambda e: e.student)
    before = by(dataset.of(PREVIOUS, class_id=class_id), lambda e: e.student)
    half = len(PERIOD) // 2
    first, second = PERIOD[:half], PERIOD[-half:]
    flagged: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for key in SCORES:
        kind, number = MEANS[key]
        scores = {s: [number(e.payload) for e in es if e.kind == kind] for s, es in now.items()}
        means = {s: statistics.fmean(v) for s, v in scores.items() if v}
        fence = None
        if len(means) >= 5:
            q1, _, q3 = statistics.quantiles(means.values(), n=4, method="inclusive")
            fence = q1 - 1.5 * (q3 - q1)
        for student, events in now.items():
            halves = [
                [number(e.payload) for e in events if e.kind == kind and e.day in h]
                for h in (first, second)
            ]
            if (
                min(map(len, halves)) >= 2
                and statistics.fmean(halves[0]) - statistics.fmean(halves[1]) >= 10
            ):
                flagged[student].add(("declining", key))
            if fence is not None and len(scores[student]) >= 3 and means[student] < fence:
                flagged[student].add(("far_below_class", key))
    for student in set(before) - set(now):
        flagged[student].add(("no_activity", None))
    return dict(flagged)


def indicators(report_json: dict[str, Any], field: str = "value") -> dict[str, Any]:
    return {i["key"]: i[field] for i in report_json["indicators"]}


def assert_values(actual: dict[str, Any], expected: dict[str, float | None]) -> None:
    for key, value in expected.items():
        if value is None:
            assert actual[key] is None, key
        else:
            assert actual[key] == pytest.approx(value, abs=APPROX), key


def change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


# -- tests ------------------------------------------------------------------------


def test_student_report_numbers(dataset: Dataset) -> None:
    errors = Counter(
        e.student
        for e in dataset.of(PERIOD, class_id="class-0000")
        if e.kind == "grade_result" and e.payload["errors"]
    )
    student = errors.most_common(1)[0][0]
    data = report(dataset, "student", student)
    assert (data["kind"], data["schema_version"], data["class_id"]) == ("student", 1, "class-0000")

    now = student_values(dataset.of(PERIOD, student=student))
    before = student_values(dataset.of(PREVIOUS, student=student))
    classmates = group_values(dataset.of(PERIOD, class_id="class-0000"))
    assert_values(indicators(data), now)
    assert_values(indicators(data, "previous"), before)
    assert_values(indicators(data, "change"), {k: change(now[k], before[k]) for k in now})
    assert_values(indicators(data, "class_average"), classmates)
    assert_values(indicators(data, "vs_class"), {k: change(now[k], classmates[k]) for k in now})
    assert data["active_days"] == len({e.day for e in dataset.of(PERIOD, student=student)})

    own = knowledge_points(dataset.of(PERIOD, student=student))
    of_class = knowledge_points(dataset.of(PERIOD, class_id="class-0000"))
    top = sorted(own.items(), key=lambda kv: (-kv[1]["errors"], -kv[1]["rate"], *kv[0]))[:8]
    assert [(p["subject"], p["knowledge_point"]) for p in data["knowledge_points"]] == [
        k for k, _ in top
    ]
    for shown, (key, expected) in zip(data["knowledge_points"], top, strict=True):
        assert (shown["errors"], shown["homework_with_errors"]) == (
            expected["errors"],
            expected["homework"],
        )
        assert shown["error_rate"] == pytest.approx(expected["rate"], abs=APPROX)
        assert shown["class_error_rate"] == pytest.approx(of_class[key]["rate"], abs=APPROX)
    # each knowledge-point suggestion rests on a point shown, above the class rate
    for suggestion in data["suggestions"]:
        if suggestion["kind"] == "practise_knowledge_point":
            shown = next(
                p
                for p in data["knowledge_points"]
                if p["knowledge_point"] == suggestion["knowledge_point"]
            )
            assert (
                suggestion["error_rate"] == shown["error_rate"] > (shown["class_error_rate"] or 0)
            )

    exams = by(
        (e for e in dataset.of(PERIOD, class_id="class-0000") if e.kind == "exam_score"),
        lambda e: (e.payload["exam_id"], e.payload["subject"]),
    )
    for exam in data["exams"]:
        records = exams[exam["exam_id"], exam["subject"]]
        assert exam["score"] == pytest.approx(
            statistics.fmean(percent(e.payload) for e in records if e.student == student),
            abs=APPROX,
        )
        assert exam["class_average"] == pytest.approx(
            statistics.fmean(percent(e.payload) for e in records), abs=APPROX
        )
    assert len(data["exams"]) == len(
        {k for k, es in exams.items() if any(e.student == student for e in es)}
    )


def test_class_report_numbers(dataset: Dataset) -> None:
    data = report(dataset, "class", "class-0001")
    summary = data["summary"]
    now_events = dataset.of(PERIOD, class_id="class-0001")
    now = group_values(now_events)
    before = group_values(dataset.of(PREVIOUS, class_id="class-0001"))
    assert_values(indicators(summary), now)
    assert_values(indicators(summary, "previous"), before)
    assert_values(indicators(summary, "change"), {k: change(now[k], before[k]) for k in now})

    students = by(now_events, lambda e: e.student)
    assert summary["students_with_data"] == len(students)
    assert [s["student_id"] for s in data["students"]] == sorted(students)
    for shown in data["students"]:
        assert_values(shown["values"], student_values(students[shown["student_id"]]))

    # a day of the trend, and the students active each day
    day = PERIOD[2]
    assert_values(
        {k: v[2] for k, v in summary["trend"]["values"].items()},
        group_values(dataset.of([day], class_id="class-0001")),
    )
    assert summary["active_students"] == [
        len({e.student for e in dataset.of([d], class_id="class-0001")}) for d in PERIOD
    ]

    # the distribution of homework scores across students
    spread = next(d for d in summary["distributions"] if d["indicator"] == "homework_score")
    scores = [
        v for es in students.values() if (v := student_values(es)["homework_score"]) is not None
    ]
    q1, median, q3 = statistics.quantiles(scores, n=4, method="inclusive")
    assert (spread["students"], spread["median"]) == (
        len(scores),
        pytest.approx(median, abs=APPROX),
    )
    assert (spread["q1"], spread["q3"]) == (
        pytest.approx(q1, abs=APPROX),
        pytest.approx(q3, abs=APPROX),
    )
    assert sum(b["students"] for b in spread["histogram"]) == len(scores)

    # knowledge points: every one, ranked by error rate, with the students affected
    expected = knowledge_points(now_events)
    ranked = sorted(
        expected.items(),
        key=lambda kv: (-kv[1]["rate"], -len(kv[1]["students"]), -kv[1]["errors"], *kv[0]),
    )
    assert [(p["subject"], p["knowledge_point"]) for p in summary["knowledge_points"]] == [
        k for k, _ in ranked
    ]
    for shown, (_, point) in zip(summary["knowledge_points"], ranked, strict=True):
        assert shown["error_rate"] == pytest.approx(point["rate"], abs=APPROX)
        assert shown["students_affected"] == len(point["students"])
        assert shown["students_graded"] == point["students_graded"]
        assert shown["errors"] == point["errors"]

    # students needing attention: who, why, and the most urgent first
    flagged = {
        s["student_id"]: {(r["kind"], r.get("indicator")) for r in s["reasons"]}
        for s in summary["attention"]
    }
    assert flagged == expected_attention(dataset, "class-0001")
    assert flagged, "the generated class should have someone to flag"
    urgency = [
        (
            r["kind"] != "no_activity",
            -len(s["reasons"]),
            -max((r.get("drop") or r.get("gap") or 0.0) for r in s["reasons"]),
        )
        for s in summary["attention"]
        for r in s["reasons"][:1]
    ]
    assert urgency == sorted(urgency)


def test_school_report_numbers(dataset: Dataset) -> None:
    data = report(dataset, "school", "school-000")
    school_events = dataset.of(PERIOD, school_id="school-000")
    assert_values(indicators(data["summary"]), group_values(school_events))
    assert [c["class_id"] for c in data["classes"]] == ["class-0000", "class-0001"]
    for shown in data["classes"]:
        assert_values(shown["values"], group_values(dataset.of(PERIOD, class_id=shown["class_id"])))
        assert shown["students_needing_attention"] == len(
            expected_attention(dataset, shown["class_id"])
        )
    assert len(data["summary"]["attention"]) == sum(
        c["students_needing_attention"] for c in data["classes"]
    )
    assert isinstance(msgspec.convert(data, Report), SchoolReport)  # the JSON follows the schema


def test_partial_data_is_shown_as_no_data_not_zero(dataset: Dataset) -> None:
    data = report(dataset, "student", "edge-partial")
    values = indicators(data)
    assert values["stroke_order_accuracy"] == 75.0
    assert values["strokes"] == 50
    for key in (
        "homework_score",
        "exam_score",
        "writing_quality",
        "writing_speed",
        "study_minutes",
    ):
        assert values[key] is None, key
    assert data["trend"]["values"]["stroke_order_accuracy"][:2] == [65.0, 85.0]
    assert data["knowledge_points"] == []
    assert data["unavailable"] == ["character_detail"]
    markdown = writech(
        "report", "student", "edge-partial", "--format", "markdown", "--data-dir", str(dataset.data_dir),
        "--from", FROM.isoformat(), "--to", TO.isoformat(),
    ).stdout  # fmt: skip
    homework = next(line for line in markdown.splitlines() if line.startswith("| 作业得分率"))
    this_period, previous = homework.split("|")[2:4]
    assert (this_period.strip(), previous.strip()) == ("**无数据**", "无数据")


def test_empty_period_gets_an_explicit_no_data_report(dataset: Dataset, tmp_path: Path) -> None:
    silent = report(dataset, "student", "edge-silent")
    assert silent["active_days"] == 0
    assert all(i["value"] is None for i in silent["indicators"])
    assert indicators(silent, "previous")["stroke_order_accuracy"] == 80.0
    assert silent["suggestions"] == []

    quiet = report(dataset, "class", "class-quiet")["summary"]
    assert quiet["students_with_data"] == 0
    assert all(i["value"] is None for i in quiet["indicators"])
    assert quiet["attention"] == [
        {
            "student_id": "quiet-1",
            "class_id": "class-quiet",
            "reasons": [{"kind": "no_activity", "previous_active_days": 1}],
        }
    ]

    edge = report(dataset, "class", "class-edge")["summary"]
    assert [s["student_id"] for s in edge["attention"]] == ["edge-silent"]

    html = tmp_path / "quiet.html"
    result = writech(
        "report", "class", "class-quiet", "--data-dir", str(dataset.data_dir),
        "--from", FROM.isoformat(), "--to", TO.isoformat(), "--out", str(html),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 'id="no-data"' in html.read_text()


@pytest.mark.parametrize(
    ("kind", "scope_id"),
    [("student", "nobody"), ("class", "class-none"), ("school", "school-none")],
)
def test_unknown_ids_exit_1_with_a_message(dataset: Dataset, kind: str, scope_id: str) -> None:
    result = writech(
        "report", kind, scope_id, "--format", "json", "--data-dir", str(dataset.data_dir)
    )
    assert result.returncode == 1
    assert f"unknown {kind} '{scope_id}'" in result.stderr
    assert result.stdout == ""


def test_bad_arguments_exit_2(dataset: Dataset) -> None:
    data_dir = ("--data-dir", str(dataset.data_dir))
    assert writech("report", "class", "--from", "yesterday", "x", *data_dir).returncode == 2
    backwards = writech(
        "report",
        "class",
        "class-0000",
        "--from",
        TO.isoformat(),
        "--to",
        FROM.isoformat(),
        *data_dir,
    )
    assert backwards.returncode == 2
    assert "after" in backwards.stderr
    assert writech("report", "class", *data_dir).returncode == 2  # neither an id nor --all-classes


def test_period_defaults_to_the_week_ending_on_the_newest_date(dataset: Dataset) -> None:
    result = writech(
        "report", "class", "class-0000", "--format", "json", "--data-dir", str(dataset.data_dir)
    )
    assert result.returncode == 0, result.stderr
    period = json.loads(result.stdout)["period"]
    newest = max(e.day for e in dataset.events)
    assert period == {"start": (newest - timedelta(days=6)).isoformat(), "end": newest.isoformat()}


def test_all_classes_writes_one_report_per_class_with_data(
    dataset: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    result = writech(
        "report", "class", "--all-classes", "--out-dir", str(out), "--data-dir", str(dataset.data_dir),
        "--from", FROM.isoformat(), "--to", TO.isoformat(), "--format", "json", "--lang", "en",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    classes = sorted({e.class_id for e in dataset.of(PERIOD)})
    assert classes == ["class-0000", "class-0001", "class-edge"]  # not class-quiet
    assert sorted(p.name for p in out.iterdir()) == [f"class-{c}-{FROM}_{TO}.json" for c in classes]
    assert (
        json.loads((out / f"class-class-0000-{FROM}_{TO}.json").read_text())["class_id"]
        == "class-0000"
    )
    # stderr is not a terminal here: no progress bar, just the summary
    assert result.stderr.strip() == f"wrote 3 class reports to {out}"


def test_html_by_default_into_a_named_file(dataset: Dataset, tmp_path: Path) -> None:
    result = writech(
        "report", "student", "edge-graded", "--data-dir", str(dataset.data_dir),
        "--from", FROM.isoformat(), "--to", TO.isoformat(), "--lang", "en", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = (tmp_path / f"student-edge-graded-{FROM}_{TO}.html").read_text()
    assert "Knowledge points with the most errors" in html
    assert "&lt;b&gt;分数&amp;&lt;/b&gt;" in html
    assert MARKUP_POINT not in html


def test_json_schema_is_published(dataset: Dataset) -> None:
    result = writech("report", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"StudentReport", "ClassReport", "SchoolReport"} <= set(schema["$defs"])
    assert "schema_version" in schema["$defs"]["StudentReport"]["properties"]
