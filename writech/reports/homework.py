"""Graded homework: implausible submissions, knowledge points, common wrong questions,
the per-homework view and the wrong-answer book (错题本).

A wrong question is a distinct (submission, question) pair: an error listed
twice for one question in one submission counts once. A submission is not
believed when its error list is implausible (`flags`): it is shown, marked,
and kept out of every score, ranking and reason; the stored rows stay as
they are.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from writech.reports.indicators import percent, rounded
from writech.reports.model import (
    CommonQuestion,
    FlaggedSubmission,
    FlagReason,
    GroupKnowledgePoint,
    HomeworkEntry,
    HomeworkSummary,
    KnowledgePoint,
    Period,
    PointMastered,
    PointQuestions,
    QuestionRef,
    StudentKnowledgePoint,
    Thresholds,
    UnassignedErrors,
)
from writech.reports.rows import QuestionError
from writech.schema import HomeworkResult

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)  # for errors of a submission not stored


def flags(row: HomeworkResult, limits: Thresholds) -> list[FlagReason]:
    """Why a submission is implausible; empty when it is believed."""
    reasons: list[FlagReason] = []
    if row.listed_errors > limits.max_listed_errors:
        reasons.append("too_many_errors")
    if (
        row.questions_with_errors
        and row.listed_errors > limits.max_listings_per_question * row.questions_with_errors
    ):
        reasons.append("repeated_errors")
    return reasons


def question_order(question_id: str) -> tuple[str, int, str]:
    """q2 before q10: the text before a trailing number, then the number."""
    match = re.fullmatch(r"(.*?)(\d+)", question_id)
    if match:
        return match.group(1), int(match.group(2)), question_id
    return question_id, -1, question_id


def _error_types(types: Counter[str]) -> dict[str, int]:
    # most frequent first, ties by name: the first is the main error type
    return dict(sorted(types.items(), key=lambda item: (-item[1], item[0])))


@dataclass
class _Point:
    """What is known of one knowledge point over some wrong questions."""

    # (event_id, question) -> homework_id
    questions: dict[tuple[str, str], str] = field(default_factory=dict)
    types: set[tuple[str, str, str]] = field(default_factory=set)  # (event_id, question, type)
    # the submissions with wrong questions on it, per student
    students: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, error: QuestionError) -> None:
        key = (error.event_id, error.question)
        self.questions[key] = error.homework_id
        self.students[error.student_id].add(error.event_id)
        self.types.add((*key, error.error_type))

    @property
    def homework(self) -> int:
        return len({event_id for event_id, _ in self.questions})

    def error_types(self) -> dict[str, int]:
        return _error_types(Counter(error_type for _, _, error_type in self.types))


class Homework:
    """The graded homework of some students over a period, and their wrong questions."""

    def __init__(
        self,
        rows: Iterable[HomeworkResult],
        errors: Iterable[QuestionError],
        period: Period,
        limits: Thresholds,
    ) -> None:
        self.limits = limits
        self.period = period
        in_period = [row for row in rows if row.date in period]
        self.flags = {row.event_id: reasons for row in in_period if (reasons := flags(row, limits))}
        self.submissions = in_period
        self.believed = [row for row in in_period if row.event_id not in self.flags]
        self._by_event = {row.event_id: row for row in in_period}
        # errors of unknown submissions are kept: only a flag excludes them
        self.errors = [e for e in errors if e.event_id not in self.flags and e.knowledge_point]

    def graded(self) -> Counter[tuple[str, str]]:
        """Believed graded homework per (student, subject)."""
        return Counter((row.student_id, row.subject) for row in self.believed)

    def _points(self, student_id: str | None = None) -> dict[tuple[str, str], _Point]:
        points: dict[tuple[str, str], _Point] = defaultdict(_Point)
        for error in self.errors:
            if student_id is None or error.student_id == student_id:
                points[error.subject, error.knowledge_point].add(error)
        return points

    def _rate(self, with_errors: int, graded: int) -> float | None:
        return percent(with_errors, graded) if graded >= self.limits.min_homework else None

    def group_points(self) -> list[GroupKnowledgePoint]:
        """Every knowledge point with wrong questions: most students erring on it repeatedly first."""
        graded = self.graded()
        homework_in: Counter[str] = Counter()
        students_in: Counter[str] = Counter()
        for (_, subject), count in graded.items():
            homework_in[subject] += count
            students_in[subject] += 1
        points = []
        for (subject, name), point in self._points().items():
            students = students_in[subject]
            points.append(
                GroupKnowledgePoint(
                    subject=subject,
                    knowledge_point=name,
                    wrong_questions=len(point.questions),
                    homework_with_errors=point.homework,
                    graded_homework=homework_in[subject],
                    error_rate=self._rate(point.homework, homework_in[subject]),
                    error_types=point.error_types(),
                    students_affected=len(point.students),
                    students_repeated=sum(
                        len(events) >= self.limits.min_homework_with_errors
                        for events in point.students.values()
                    ),
                    students_graded=students,
                    student_share=percent(len(point.students), students)
                    if students >= self.limits.min_students
                    else None,
                    students=sorted(point.students, key=lambda s: (-len(point.students[s]), s)),
                )
            )
        return sorted(points, key=_by_students)

    def student_points(
        self, student_id: str, class_rates: dict[tuple[str, str], float | None]
    ) -> list[StudentKnowledgePoint]:
        """The student's knowledge points, most wrong questions first, beside the class's rate."""
        graded = self.graded()
        points = []
        for (subject, name), point in self._points(student_id).items():
            homework = graded[student_id, subject]
            points.append(
                StudentKnowledgePoint(
                    subject=subject,
                    knowledge_point=name,
                    wrong_questions=len(point.questions),
                    homework_with_errors=point.homework,
                    graded_homework=homework,
                    error_rate=self._rate(point.homework, homework),
                    error_types=point.error_types(),
                    class_error_rate=class_rates.get((subject, name)),
                    questions=self._references(point),
                )
            )
        return sorted(points, key=_by_wrong_questions)

    def _references(self, point: _Point) -> list[QuestionRef]:
        """The wrong questions, newest homework first, each once (a resubmission too)."""
        handed_in: dict[tuple[str, str], tuple[datetime, date]] = {}
        for (event_id, question), homework_id in point.questions.items():
            row = self._by_event.get(event_id)
            when = (row.created_at, row.date) if row else (_EPOCH, _EPOCH.date())
            key = homework_id, question
            handed_in[key] = max(handed_in.get(key, when), when)
        newest: dict[str, datetime] = {}
        for (homework_id, _), (moment, _) in handed_in.items():
            newest[homework_id] = max(newest.get(homework_id, moment), moment)
        in_order = sorted(handed_in, key=lambda key: (key[0], question_order(key[1])))
        return [
            QuestionRef(homework_id=homework_id, date=handed_in[homework_id, q][1], question_id=q)
            for homework_id, q in sorted(in_order, key=lambda key: newest[key[0]], reverse=True)
        ]

    def mastered(self, student_id: str, class_homework: Homework) -> list[PointMastered]:
        """Points the student got right wherever classmates got them wrong: the hardest first.

        A point was in a homework when a classmate erred on it there; the student
        mastered it when they handed in `min_homework_with_errors` such homework
        and erred on it in none.
        """
        points = class_homework.group_points()
        asked: dict[tuple[str, str], set[str]] = defaultdict(set)
        for error in class_homework.errors:
            asked[error.subject, error.knowledge_point].add(error.homework_id)
        handed_in = {row.homework_id for row in self.believed if row.student_id == student_id}
        erred = {(e.subject, e.knowledge_point) for e in self.errors if e.student_id == student_id}
        found = [
            PointMastered(
                subject=p.subject,
                knowledge_point=p.knowledge_point,
                homework=len(homework),
                class_error_rate=p.error_rate,
            )
            for p in points
            if (key := (p.subject, p.knowledge_point)) not in erred
            and len(homework := asked[key] & handed_in) >= self.limits.min_homework_with_errors
        ]
        return sorted(
            found,
            key=lambda p: (-(p.class_error_rate or 0.0), -p.homework, p.subject, p.knowledge_point),
        )

    def unassigned(self, student_id: str | None = None) -> UnassignedErrors:
        rows = [r for r in self.believed if student_id is None or r.student_id == student_id]
        return UnassignedErrors(
            listed_errors=sum(r.listed_errors - r.errors for r in rows),
            homework=sum(r.listed_errors > r.errors for r in rows),
        )

    def common_questions(self) -> list[CommonQuestion]:
        """Questions by the share of the students who handed the homework in and got them wrong."""
        submitted: dict[str, set[str]] = defaultdict(set)
        for row in self.believed:
            submitted[row.homework_id].add(row.student_id)
        wrong: dict[tuple[str, str], set[str]] = defaultdict(set)
        points: dict[tuple[str, str], set[str]] = defaultdict(set)
        subjects: dict[str, str] = {}
        for error in self.errors:
            if error.question_id:
                key = error.homework_id, error.question_id
                wrong[key].add(error.student_id)
                points[key].add(error.knowledge_point)
                subjects[error.homework_id] = error.subject
        questions = []
        for (homework_id, question_id), students in wrong.items():
            submitters = len(submitted[homework_id])
            questions.append(
                CommonQuestion(
                    homework_id=homework_id,
                    subject=subjects[homework_id],
                    question_id=question_id,
                    knowledge_points=sorted(points[homework_id, question_id]),
                    students_wrong=len(students),
                    students_submitted=submitters,
                    share=percent(len(students), submitters)
                    if submitters >= self.limits.min_submitters
                    else None,
                    students=sorted(students),
                )
            )
        return sorted(questions, key=_by_share)

    def summaries(self) -> list[HomeworkSummary]:
        """Each homework of the period: who handed it in, their median score, flags."""
        rows: dict[str, list[HomeworkResult]] = defaultdict(list)
        for row in self.submissions:
            rows[row.homework_id].append(row)
        summaries = []
        for homework_id, submissions in rows.items():
            scores: dict[str, list[float]] = defaultdict(list)
            for row in submissions:
                if row.event_id not in self.flags:
                    scores[row.student_id].append(row.score_percent)
            students = [statistics.fmean(s) for s in scores.values()]
            summaries.append(
                HomeworkSummary(
                    homework_id=homework_id,
                    subject=submissions[0].subject,
                    first_date=min(row.date for row in submissions),
                    students=len(students),
                    median_score=rounded(statistics.median(students))
                    if len(students) >= self.limits.min_students
                    else None,
                    flagged=sum(row.event_id in self.flags for row in submissions),
                )
            )
        return sorted(summaries, key=lambda s: (s.first_date, s.homework_id))

    def flagged(self, timezone: ZoneInfo) -> list[FlaggedSubmission]:
        return [
            FlaggedSubmission(
                event_id=row.event_id,
                student_id=row.student_id,
                homework_id=row.homework_id,
                subject=row.subject,
                date=row.date,
                submitted_at=row.created_at.astimezone(timezone),
                score=round(row.score_percent, 2),
                listed_errors=row.listed_errors,
                questions_with_errors=row.questions_with_errors,
                reasons=self.flags[row.event_id],
            )
            for row in sorted(self.submissions, key=lambda r: (r.created_at, r.event_id))
            if row.event_id in self.flags
        ]

    def book(self, student_id: str, timezone: ZoneInfo) -> list[HomeworkEntry]:
        """The student's wrong-answer book: every graded homework, oldest first."""
        by_event: dict[str, dict[str, _Point]] = defaultdict(lambda: defaultdict(_Point))
        for error in self.errors:
            if error.student_id == student_id:
                by_event[error.event_id][error.knowledge_point].add(error)
        entries = []
        for row in sorted(self.submissions, key=lambda r: (r.created_at, r.event_id)):
            if row.student_id != student_id:
                continue
            points = by_event.get(row.event_id, {})
            entries.append(
                HomeworkEntry(
                    event_id=row.event_id,
                    homework_id=row.homework_id,
                    subject=row.subject,
                    date=row.date,
                    submitted_at=row.created_at.astimezone(timezone),
                    score=round(row.score_percent, 2),
                    listed_errors=row.listed_errors,
                    wrong_questions=len({q for p in points.values() for q in p.questions}),
                    unassigned_errors=row.listed_errors - row.errors,
                    points=[
                        PointQuestions(
                            knowledge_point=name,
                            question_ids=sorted(
                                {question for _, question in point.questions}, key=question_order
                            ),
                            error_types=point.error_types(),
                        )
                        for name, point in sorted(
                            points.items(), key=lambda item: (-len(item[1].questions), item[0])
                        )
                    ],
                    flags=self.flags.get(row.event_id, []),
                )
            )
        return entries


def _by_students(point: GroupKnowledgePoint) -> tuple[int, int, float, int, str, str]:
    rate = -1.0 if point.error_rate is None else point.error_rate
    return (
        -point.students_repeated,
        -point.students_affected,
        -rate,
        -point.wrong_questions,
        point.subject,
        point.knowledge_point,
    )


def _by_wrong_questions(point: KnowledgePoint) -> tuple[int, float, str, str]:
    rate = -1.0 if point.error_rate is None else point.error_rate
    return (-point.wrong_questions, -rate, point.subject, point.knowledge_point)


def _by_share(question: CommonQuestion) -> tuple[float, int, str, tuple[str, int, str]]:
    share = -1.0 if question.share is None else question.share
    return (
        -share,
        -question.students_wrong,
        question.homework_id,
        question_order(question.question_id),
    )


def main_error_type(point: KnowledgePoint) -> str:
    return next(iter(point.error_types), "")


def class_rates(points: Sequence[GroupKnowledgePoint]) -> dict[tuple[str, str], float | None]:
    return {(p.subject, p.knowledge_point): p.error_rate for p in points}
