"""JSON-lines files (`.jsonl`, `.jsonl.gz`, or directories of them) as a Bytewax source.

Each file is one partition, so several files are read in parallel across
workers. A partition yields `RawBatch`es of up to `batch_size` lines and
snapshots its byte offset and line number, so a resume continues exactly
after the last line whose batch was committed.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from writech import counters
from writech.events import RawBatch

SUFFIXES = (".jsonl", ".jsonl.gz")

# (byte offset in the uncompressed stream, number of lines consumed)
FilePosition = tuple[int, int]


def expand(paths: Iterable[str]) -> list[str]:
    """Every JSON-lines file named by `paths`, directories walked, in a stable order."""
    found: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(
                str(child)
                for child in path.rglob("*")
                if child.name.endswith(SUFFIXES) and child.is_file()
            )
        elif path.is_file():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"no such file or directory: {given}")
    return list(dict.fromkeys(found))


def total_bytes(paths: Sequence[str]) -> int:
    return sum(Path(path).stat().st_size for path in paths)


class _FilePartition(StatefulSourcePartition[RawBatch, FilePosition]):
    def __init__(self, path: str, batch_size: int, resume: FilePosition | None) -> None:
        self._path = path
        self._batch_size = batch_size
        self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._lines: IO[bytes] | gzip.GzipFile = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if path.endswith(".gz") else self._raw
        )
        self._offset, self._line = resume or (0, 0)
        if self._offset:
            self._lines.seek(self._offset)
        self._reported = self._raw.tell()

    def next_batch(self) -> list[RawBatch]:
        lines = list(itertools.islice(self._lines, self._batch_size))
        if not lines:
            raise StopIteration
        offsets: list[int] = []
        messages: list[bytes] = []
        number = self._line
        for line in lines:
            number += 1
            self._offset += len(line)
            message = line.rstrip(b"\r\n")
            if message.strip():  # blank lines are not messages (SPEC §1)
                offsets.append(number)
                messages.append(message)
        self._line = number
        consumed = self._raw.tell()
        counters.BYTES_READ.inc(consumed - self._reported)
        self._reported = consumed
        counters.MESSAGES_READ.inc(len(messages))
        if not messages:
            return []
        return [RawBatch(self._path, 0, offsets, messages)]

    def snapshot(self) -> FilePosition:
        return (self._offset, self._line)

    def close(self) -> None:
        if self._lines is not self._raw:
            self._lines.close()
        self._raw.close()


class JsonLinesSource(FixedPartitionedSource[RawBatch, FilePosition]):
    """Reads every line of the given files once; ends when all are read."""

    def __init__(self, paths: Sequence[str], batch_size: int = 2000) -> None:
        self.paths = expand(paths)
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return self.paths

    def build_part(
        self, step_id: str, for_part: str, resume_state: FilePosition | None
    ) -> _FilePartition:
        return _FilePartition(for_part, self.batch_size, resume_state)
