"""Properties of the report rules, on generated inputs (hypothesis): what must hold
whatever the data, independently of the examples in test_reports_build.py."""

from __future__ import annotations

import math
import random
import re
import statistics
from datetime import UTC, date, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from writech.reports.characters import character_scores, to_practise
from writech.reports.cli import report_file_name
from writech.reports.homework import Homework, flags
from writech.reports.indicators import Totals, median_reading
from writech.reports.model import Period, Thresholds
from writech.reports.rows import CharacterDay, QuestionError
from writech.reports.service import default_period
from writech.schema import HomeworkResult

LIMITS = Thresholds()
DAY1 = date(2026, 3, 2)
PERIOD = Period(DAY1, DAY1 + timedelta(days=5))
EXAMPLES = settings(max_examples=300, deadline=None)


def submission(event_id: str, listed: int, questions: int, when: int = 0) -> HomeworkResult:
    day = DAY1 + timedelta(days=when)
    return HomeworkResult(
        event_id=event_id,
        student_id="a",
        class_id="c1",
        school_id="s1",
        homework_id=f"hw-{when}",
        subject="math",
        score_percent=50.0,
        listed_errors=listed,
        errors=listed,
        questions_with_errors=questions,
        date=day,
        created_at=datetime(day.year, day.month, day.day, tzinfo=UTC),
    )


@EXAMPLES
@given(listed=st.integers(0, 2000), questions=st.integers(0, 2000), more=st.integers(0, 500))
def test_a_longer_error_list_is_never_more_plausible(
    listed: int, questions: int, more: int
) -> None:
    questions = min(questions, listed)
    before = flags(submission("e", listed, questions), LIMITS)
    after = flags(submission("e", listed + more, questions), LIMITS)
    assert set(before) <= set(after)
    expected = listed > 50 or (questions > 0 and listed > 3 * questions)
    assert bool(before) == expected


errors_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # which submission
        st.sampled_from(["q1", "q2", "q3", ""]),
        st.sampled_from(["分数", "加减法"]),
        st.sampled_from(["concept", "careless"]),
        st.integers(0, 40),  # position in the submission's list
    ),
    max_size=30,
)


def question_errors(rows: list[tuple[int, str, str, str, int]]) -> list[QuestionError]:
    return [
        QuestionError(f"e{n}", "a", f"hw-{n}", "math", question, point, kind, position, 1)
        for n, question, point, kind, position in rows
    ]


@EXAMPLES
@given(rows=errors_strategy, repeats=st.lists(st.integers(0, 29), max_size=10), seed=st.integers())
def test_listing_an_error_again_or_in_another_order_changes_no_count(
    rows: list[tuple[int, str, str, str, int]], repeats: list[int], seed: int
) -> None:
    submissions = [submission(f"e{n}", 1, 1, when=n) for n in range(4)]
    errors = question_errors(rows)
    again = errors + [errors[i] for i in repeats if i < len(errors)]
    random.Random(seed).shuffle(again)

    def counts(listed: list[QuestionError]) -> list[tuple[object, ...]]:
        homework = Homework(submissions, listed, PERIOD, LIMITS)
        return [
            (p.knowledge_point, p.wrong_questions, p.homework_with_errors, p.error_types)
            for p in homework.student_points("a", {})
        ]

    assert counts(again) == counts(errors)
    # and the count is the number of distinct (submission, question, point)
    distinct = {(n, q or f"#{position}", point) for n, q, point, _, position in rows}
    assert sum(c[1] for c in counts(errors)) == len(distinct)  # type: ignore[misc]


@EXAMPLES
@given(values=st.lists(st.floats(0, 100), max_size=12), recorded=st.booleans())
def test_the_class_value_is_the_median_from_enough_students(
    values: list[float], recorded: bool
) -> None:
    reading = median_reading(values, recorded or bool(values), LIMITS)
    if len(values) >= LIMITS.min_students:
        assert reading.evidence == "enough"
        assert reading.value == round(statistics.median(values), 2)
    else:
        assert reading.value is None
        assert reading.evidence == ("too_little" if recorded or values else "none")
    assert reading.count == len(values)


@EXAMPLES
@given(days=st.lists(st.tuples(st.integers(1, 20), st.floats(0, 100)), min_size=1, max_size=8))
def test_an_average_over_days_is_weighted_by_its_counts(days: list[tuple[int, float]]) -> None:
    totals = Totals()
    for count, average in days:
        totals.add("writing_quality", average * count, count)
    events = sum(count for count, _ in days)
    expected = sum(average * count for count, average in days) / events
    assert math.isclose(totals.value("writing_quality") or 0.0, expected, abs_tol=1e-9)
    reading = totals.reading("writing_quality", LIMITS)
    assert (reading.value is None) == (events < LIMITS.min_events)


@EXAMPLES
@given(
    checks=st.lists(
        st.tuples(
            st.sampled_from("火必九"),
            st.integers(0, 5),
            st.lists(st.integers(0, 100), min_size=1, max_size=4),
        ),
        max_size=15,
    )
)
def test_a_character_mean_does_not_depend_on_how_days_split_it(
    checks: list[tuple[str, int, list[int]]],
) -> None:
    days = [
        CharacterDay(
            "a", character, DAY1 + timedelta(days=offset), len(scores), sum(scores) * 1_000_000
        )
        for character, offset, scores in checks
    ]
    scores = character_scores(days, PERIOD, LIMITS)
    for score in scores:
        all_scores = [s for c, _, ss in checks if c == score.character for s in ss]
        assert score.attempts == len(all_scores)
        if len(all_scores) >= LIMITS.min_attempts:
            assert score.mean == round(statistics.fmean(all_scores), 2)
        else:
            assert score.mean is None
    weak = to_practise(scores, LIMITS)
    assert all(s.mean is not None and s.mean < LIMITS.weak_character_score for s in weak)
    assert [s.mean for s in weak] == sorted(s.mean for s in weak if s.mean is not None)


@EXAMPLES
@given(stored=st.integers(1, 60), offset=st.integers(0, 400))
def test_the_default_period_leaves_a_previous_period_with_data(stored: int, offset: int) -> None:
    oldest = date(2026, 1, 1) + timedelta(days=offset)
    newest = oldest + timedelta(days=stored - 1)
    period = default_period(Period(oldest, newest), newest)
    assert period.end == newest
    assert period.days == min(7, math.ceil(stored / 2))
    if stored >= 2:
        assert period.previous().end >= oldest  # something to compare with


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
@example("7/1", "7_1")
@example("..", "_")
def test_every_scope_gets_a_file_of_its_own(one: str, other: str) -> None:
    """A batch of class reports writes one file per class, whatever the ids hold."""
    period = Period(date(2026, 9, 1), date(2026, 9, 7))
    names = {scope: report_file_name("class", scope, period, "html") for scope in (one, other)}
    assert (names[one] == names[other]) == (one == other)
    for name in names.values():
        assert re.fullmatch(r"class-[\w.-]+-2026-09-01_2026-09-07\.html", name), name
    assert report_file_name("class", "class-0001", period, "html") == (
        "class-class-0001-2026-09-01_2026-09-07.html"
    )  # a plain id is kept as it is
