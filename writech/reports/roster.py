"""A school's roster: display names for student and class ids.

A CSV file with a header row naming some of the columns `student_id`,
`student_name`, `class_id`, `class_name` (others are ignored), one row per
student, as school information systems export them; a row may name only a
class. Reports show a name where the roster gives one, the id otherwise.

The file is UTF-8 (with or without Excel's byte order mark), or GB18030:
Excel on a Chinese Windows saves "CSV" in the system's code page, GBK
(which GB18030 contains), and a school's roster is often made just so.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path


class RosterError(ValueError):
    """The roster file cannot be read; the message says where."""


@dataclass(frozen=True)
class Roster:
    students: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)


def read_roster(path: str | Path) -> Roster:
    """The roster in the file at `path`; `RosterError` (or `OSError`) saying why not."""
    data = Path(path).read_bytes()
    for encoding in ("utf-8", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return parse_roster(text)
    raise RosterError(f"{path} is neither UTF-8 nor GBK/GB18030 text: save it as UTF-8 CSV")


def parse_roster(text: str) -> Roster:
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))  # Excel writes a BOM
    columns = set(reader.fieldnames or ())
    pairs = [
        (ids, names)
        for ids, names in (("student_id", "student_name"), ("class_id", "class_name"))
        if {ids, names} <= columns
    ]
    if not pairs:
        raise RosterError(
            "the roster's header must name student_id and student_name, "
            "or class_id and class_name (or all four)"
        )
    roster = Roster()
    found = {"student_id": roster.students, "class_id": roster.classes}
    for row in reader:
        for ids, names in pairs:
            key, name = (row.get(ids) or "").strip(), (row.get(names) or "").strip()
            if key and name and found[ids].setdefault(key, name) != name:
                raise RosterError(
                    f"line {reader.line_num}: {key} is named both {found[ids][key]!r} and {name!r}"
                )
    return roster
