"""Characters: which ones a student writes in the wrong stroke order, and a class's.

From one `analytics_metrics` row per stroke-order check (the character is
its dimension). A mean needs `min_attempts` attempts; a character "needs
practice" under `weak_character_score`, is "mastered" from
`mastered_character_score`, and is "improving" when the last half of the
period beats the first by `improving_points` (each half on at least
`min_attempts_per_half` attempts).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from writech.reports.indicators import difference, halves, percent, rounded
from writech.reports.model import CharacterScore, ClassCharacter, Period, Thresholds
from writech.reports.rows import CharacterDay


def _mean(days: Iterable[CharacterDay], floor: int) -> float | None:
    attempts = total = 0
    for day in days:
        attempts += day.attempts
        total += day.score_micro
    return total / attempts / 1_000_000 if attempts and attempts >= floor else None


def character_scores(
    days: Iterable[CharacterDay], period: Period, limits: Thresholds
) -> list[CharacterScore]:
    """One student's characters in the period: lowest mean first (too few attempts last)."""
    by_character: dict[str, list[CharacterDay]] = defaultdict(list)
    for day in days:
        if day.date in period:
            by_character[day.character].append(day)
    split = halves(period)
    scores = []
    for character, checks in by_character.items():
        first = second = None
        if split:
            first, second = (
                _mean((d for d in checks if d.date in half), limits.min_attempts_per_half)
                for half in split
            )
        scores.append(
            CharacterScore(
                character=character,
                attempts=sum(d.attempts for d in checks),
                mean=rounded(_mean(checks, limits.min_attempts)),
                first_half=rounded(first),
                second_half=rounded(second),
                change=difference(second, first),
            )
        )
    return sorted(scores, key=_lowest_first)


def _lowest_first(score: CharacterScore) -> tuple[bool, float, int, str]:
    return (score.mean is None, score.mean or 0.0, -score.attempts, score.character)


def to_practise(scores: Sequence[CharacterScore], limits: Thresholds) -> list[CharacterScore]:
    """Characters under the weak score, on enough attempts: lowest first."""
    return [s for s in scores if s.mean is not None and s.mean < limits.weak_character_score]


def improving(scores: Sequence[CharacterScore], limits: Thresholds) -> list[CharacterScore]:
    """Characters whose second half beats the first by enough: the biggest gain first."""
    found = [s for s in scores if s.change is not None and s.change >= limits.improving_points]
    return sorted(found, key=lambda s: (-(s.change or 0.0), s.character))


def mastered(scores: Sequence[CharacterScore], limits: Thresholds) -> list[CharacterScore]:
    found = [s for s in scores if s.mean is not None and s.mean >= limits.mastered_character_score]
    return sorted(found, key=lambda s: (-(s.mean or 0.0), -s.attempts, s.character))


def class_characters(
    days: Iterable[CharacterDay], period: Period, limits: Thresholds
) -> list[ClassCharacter]:
    """Every character across the students: the most students weak on it first."""
    checks: dict[str, dict[str, list[CharacterDay]]] = defaultdict(lambda: defaultdict(list))
    for day in days:
        if day.date in period:
            checks[day.character][day.student_id].append(day)
    characters = []
    for character, students in checks.items():
        means = {
            student: mean
            for student, student_days in students.items()
            if (mean := _mean(student_days, limits.min_attempts)) is not None
        }
        weak = sorted(
            (s for s, mean in means.items() if round(mean, 2) < limits.weak_character_score),
            key=lambda s: (means[s], s),
        )
        enough = len(means) >= limits.min_students
        characters.append(
            ClassCharacter(
                character=character,
                attempts=sum(d.attempts for days_ in students.values() for d in days_),
                students_attempted=len(means),
                students_weak=len(weak),
                student_share=percent(len(weak), len(means)) if enough else None,
                median=rounded(statistics.median(means.values())) if enough else None,
                students=weak,
            )
        )
    return sorted(characters, key=_most_weak_first)


def _most_weak_first(character: ClassCharacter) -> tuple[int, float, float, str]:
    share = -1.0 if character.student_share is None else character.student_share
    median = 101.0 if character.median is None else character.median
    return (-character.students_weak, -share, median, character.character)
