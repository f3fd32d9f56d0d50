"""The id arguments of the commands (`writech.arguments`): what no event can carry is refused."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writech.arguments import id_argument, student_id_argument
from writech.events import MAX_STUDENT_ID_CHARS


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_STUDENT_ID_CHARS))
def test_text_a_message_can_carry_is_taken_as_it_is(value: str) -> None:
    assert id_argument(value) == value
    assert student_id_argument(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("stu-\udcff", "is not UTF-8 text"),  # the byte 0xff, as Python keeps it from argv
        ("\ud800", "is not UTF-8 text"),
        ("", "cannot be empty"),
    ],
)
def test_an_id_no_event_can_carry_is_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        id_argument(value)


@pytest.mark.parametrize("value", ["", "x" * (MAX_STUDENT_ID_CHARS + 1), "stu-\udcff"])
def test_a_student_id_is_one_to_the_longest_an_event_may_carry(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        student_id_argument(value)
