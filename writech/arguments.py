"""Argument types the commands share: ids, numbers and output paths given on a command
line, refused with a reason before a command does any work.

Linux hands a program its arguments as bytes; Python keeps the bytes that
are not UTF-8 as lone surrogates, which no message can carry (the decoder
refuses them as `bad_json`) and no store accepts. Without a check the first
query failed deep in the engine, as a traceback that named no argument.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from writech.events import MAX_STUDENT_ID_CHARS, is_text

N = TypeVar("N", int, float)


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


# Numbers: argparse's `int` and `float` take any value, and a count of 0 or
# below ran a replay with no worker (nothing read, exit 0), made a recovery
# store of no partition, or ended in a traceback deep in the generator.


def _number(kind: Callable[[str], N], low: float, high: float, what: str) -> Callable[[str], N]:
    """An argument type: `kind` of `text`, from `low` to `high`, else refused as not `what`."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:  # NaN is never in range
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


positive_int = _number(int, 1, math.inf, "a whole number of at least 1")
non_negative_int = _number(int, 0, math.inf, "a whole number of at least 0")
seconds = _number(float, 0, math.inf, "a number of seconds of at least 0")
fraction = _number(float, 0, 1, "a fraction from 0 to 1")
port = _number(int, 0, 65_535, "a port number from 0 to 65535")


def iso_date(text: str) -> date:
    """A calendar date as YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


# Output paths: checked before the work that fills them, so that a typo costs
# one line, not a report or an export made and then lost in a traceback
# (IsADirectoryError, NotADirectoryError).


def output_file(text: str) -> str:
    """A file to write (`-`: stdout): not a directory, in a directory that exists."""
    if text == "-":
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; name a file in it")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: there is no directory {path.parent}")
    return text


def input_file(text: str) -> str:
    """A file to read (`-`: stdin) that is there and is not a directory."""
    if text != "-" and not Path(text).is_file():
        why = "is a directory" if Path(text).is_dir() else "is not a file"
        raise argparse.ArgumentTypeError(f"{text} {why}")
    return text


def output_directory(text: str) -> Path:
    """A directory to write into, made if missing: not a file, nor under one."""
    path = Path(text)
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {existing} is a file, not a directory")
    return path
