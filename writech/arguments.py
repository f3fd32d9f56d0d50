"""Argument types the commands share: ids given on a command line, refused with a reason.

Linux hands a program its arguments as bytes; Python keeps the bytes that
are not UTF-8 as lone surrogates, which no message can carry (the decoder
refuses them as `bad_json`) and no store accepts. Without a check the first
query failed deep in the engine, as a traceback that named no argument.
"""

from __future__ import annotations

import argparse

from writech.events import MAX_STUDENT_ID_CHARS, is_text


def id_argument(value: str) -> str:
    """A CLASS_ID or SCHOOL_ID: non-empty text a message can carry."""
    if not value:
        raise argparse.ArgumentTypeError("an id cannot be empty")
    if not is_text(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not UTF-8 text, so no event can carry it")
    return value


def student_id_argument(value: str) -> str:
    """A STUDENT_ID: an id of at most `MAX_STUDENT_ID_CHARS` characters, as events carry."""
    if not 0 < len(value) <= MAX_STUDENT_ID_CHARS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a student id (1 to {MAX_STUDENT_ID_CHARS} characters)"
        )
    return id_argument(value)
