"""JSON-lines files (`.jsonl`, `.jsonl.gz`, or directories of them) as a Bytewax source.

Each file is one partition, so several files are read in parallel across
workers; a file named twice (a link, a relative and an absolute path, a
directory holding it) is one input. A partition yields `RawBatch`es of up
to `batch_size` lines (and at most `BATCH_BYTES` of them, one line at
least) and snapshots a `FilePosition`: how far it read, and the file's
`Fingerprint` taken when it first opened the file.

- A resume continues exactly after the last line whose batch was
  committed, but only in the same file: one whose size, modification time
  or first bytes changed since is refused (`InputChanged`), as its stored
  offset no longer points at the same lines.
- Every message carries the modification time recorded in the fingerprint
  as its `produced_at`, so that a re-read line is judged by the future-skew
  check exactly as it was the first time.
- A `.jsonl.gz` file is gzip, and so is a `.jsonl` file that starts as gzip
  does (compressed without being renamed); a file compressed otherwise
  (zstd, bzip2, xz, zip) is refused before anything is read.
- A damaged `.jsonl.gz` (truncated, corrupt, not gzip at all) is read up to
  the damage: every complete line before it is a message as usual; the rest
  becomes one `damaged_input` dead letter and the partition ends, while
  the other files go on.
- Blank lines are not messages, a line may end in CRLF, and a file may
  start with a UTF-8 byte order mark (as Windows editors save UTF-8): the
  mark is the file's, not part of its first line.
- A line longer than the message size limit is read past, not kept: its
  first `limit` bytes are what its `too_large` dead letter keeps, so a file
  that is one huge line (a JSON array, a wrong file) costs a chunk of
  memory, not its size twice over.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import resource
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from writech import counters
from writech.events import UTF8_BOM, RawBatch, dead_letter, is_text, too_large
from writech.schema import DeadLetterRow
from writech.settings import SettingsError

SUFFIXES = (".jsonl", ".jsonl.gz")
# Standard input, as an input's name: refused by a replay, read by `writech validate`.
STDIN: Final = "-"
GZIP_MAGIC: Final = b"\x1f\x8b"
# Bytes of a file hashed into its fingerprint; also the most of a damaged
# rest kept as its dead letter's raw bytes.
HEAD_BYTES: Final = 64 * 1024
# Decoded bytes read at a time.
CHUNK_BYTES: Final = 1 << 20
# The most bytes of lines in one batch (one line at least): a file of large
# messages makes smaller batches, not `batch_size` times the largest message
# in memory (librdkafka bounds a consumer's queue alike, 64 MiB by default).
BATCH_BYTES: Final = 64 << 20
# What reading a damaged gzip stream raises (BadGzipFile is an OSError; other
# OSErrors are failures of the disk, not of the data, and stop the run).
DAMAGE: Final = (EOFError, zlib.error, gzip.BadGzipFile)


# Descriptors a run holds besides its input files (the stores, Bytewax, the
# logs: about 80 in a replay), with room to spare.
OTHER_FILES: Final = 256


def make_room_to_open(files: int) -> None:
    """Let this process hold `files` input files open at once, or say why it cannot.

    Every file is a partition, and a worker reads all its partitions side by
    side, each holding its file open: a directory of 3,000 files failed
    under the usual `ulimit -n` of 1,024, with "Too many open files" from
    Bytewax in the middle of the run. The soft limit is raised as far as the
    hard one allows; beyond that the run is refused before it starts.
    """
    needed = files + OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise SettingsError(
            f"{files:,} input files, and this process may hold at most {hard:,} files open "
            f"(`ulimit -Hn`), {OTHER_FILES} of them for other things: raise that limit, or "
            "merge the files into fewer"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class InputChanged(SettingsError):
    """A resume would read input files other than those its recovery store holds positions in."""


class Fingerprint(msgspec.Struct, frozen=True):
    """What identifies a file's content, cheaply."""

    size: int
    mtime_ns: int
    head: bytes  # BLAKE2b digest of the first HEAD_BYTES bytes as stored

    @classmethod
    def of(cls, path: str) -> Fingerprint:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            head = hashlib.blake2b(file.read(HEAD_BYTES), digest_size=16).digest()
        return cls(stat.st_size, stat.st_mtime_ns, head)


class FilePosition(msgspec.Struct, frozen=True):
    """A file partition's state: how far it was read, and what it was read from."""

    offset: int  # bytes of the decoded stream consumed
    line: int  # lines consumed, blank ones included
    input: Fingerprint  # the file as first opened
    damaged: bool = False  # the rest was damaged and dead-lettered: nothing left to read

    @property
    def position(self) -> tuple[int, int]:
        return (self.offset, self.line)


def changes(recorded: Fingerprint, current: Fingerprint) -> list[str]:
    """How the file `current` describes differs from the `recorded` one, in words."""
    found = []
    if current.size != recorded.size:
        found.append(f"size {recorded.size:,} -> {current.size:,} bytes")
    if current.mtime_ns != recorded.mtime_ns:
        found.append(f"modified {_utc(recorded.mtime_ns)} -> {_utc(current.mtime_ns)}")
    if current.head != recorded.head:
        found.append(f"content of its first {HEAD_BYTES // 1024} KiB")
    return found


def refuse_if_changed(path: str, recorded: Fingerprint) -> None:
    """Raise `InputChanged` unless `path` is still the file `recorded` describes."""
    try:
        different = changes(recorded, Fingerprint.of(path))
    except FileNotFoundError:
        raise InputChanged(_missing_message([path])) from None
    if different:
        raise InputChanged(
            f"{path} changed since the recovery store began reading it "
            f"({'; '.join(different)}): its stored position no longer points at the same "
            "lines. Give the original file, or start a new recovery store to read the new one "
            "from its start."
        )


def _missing_message(paths: Sequence[str]) -> str:
    files = ", ".join(paths)
    return (
        f"the recovery store holds positions in {files}, which "
        f"{'is' if len(paths) == 1 else 'are'} not among the inputs now. A resume reads "
        "every file the store has read (new files may be added), each named as it was "
        "(the same relative or absolute path): give it again, or start a new recovery store."
    )


def _no_inputs_message(directory: str, others: Sequence[Path]) -> str:
    """Why a directory given as input is refused: it holds no JSON-lines file.

    Read as empty, such a directory ended a replay with nothing read and
    exit 0: a directory of `.ndjson` or `.json` files looked replayed.
    """
    message = f"{directory}: no {' or '.join(SUFFIXES)} file in this directory"
    if others:
        message += f" (it holds {len(others):,} other file(s), such as {min(others).name!r})"
    return message


def _not_a_file_message(given: str) -> str:
    """Why a pipe, socket or device (`/dev/stdin` under a shell pipe) is refused.

    A file is its own partition, read again from a byte offset after a
    resume, fingerprinted, and dated for `writech dead-letters --since`: a
    stream has none of these. It was said to be missing, though it exists.
    """
    return (
        f"{given}: not a regular file or directory (a pipe, socket or device); a replay "
        "reads files it can read again from a position: write the stream to a .jsonl "
        "(or .jsonl.gz) file and replay that"
    )


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")


def expand(paths: Iterable[str]) -> list[str]:
    """Every JSON-lines file named by `paths`, directories walked, in a stable order."""
    found: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = [child for child in path.rglob("*") if child.is_file()]
            inputs = sorted(str(child) for child in files if child.name.endswith(SUFFIXES))
            if not inputs:
                raise SettingsError(_no_inputs_message(given, files))
            found += inputs
        elif path.is_file():
            found.append(str(path))
        elif path.exists():
            raise SettingsError(_not_a_file_message(given))
        elif given == STDIN:  # a stream too
            raise SettingsError(_not_a_file_message(f"{STDIN} (standard input)"))
        else:
            raise FileNotFoundError(f"no such file or directory: {given}")
    distinct = _distinct_files(found)
    for name in distinct:
        _refuse_unless_text(name)
        _refuse_other_compression(name)
    return distinct


def _distinct_files(names: Iterable[str]) -> list[str]:
    """`names` without a second name of a file already named (the first name kept).

    A file named twice (`a.jsonl` and its absolute path, a symbolic link,
    a directory and a file in it reached through a link) was read twice, as
    two partitions: its events were counted once, as duplicates, but each
    of its dead letters was stored twice, under two origins.
    """
    seen: set[tuple[int, int]] = set()
    distinct: list[str] = []
    for name in names:
        status = os.stat(name)
        identity = (status.st_dev, status.st_ino)
        if identity not in seen:
            seen.add(identity)
            distinct.append(name)
    return distinct


# How files compressed otherwise than with gzip start (none of these starts JSON).
_OTHER_COMPRESSION: Final = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}


def _refuse_other_compression(path: str, name: str = "") -> None:
    """Refuse a file compressed with anything but gzip, before anything is read (the
    message names it `name`, if given, else `path`).

    Read as text, a `.jsonl.zst` (or a zip of JSON lines) became one bad_json
    letter per newline byte of its compressed data, and a run that counted
    nothing ended with exit 0.
    """
    try:
        with open(path, "rb") as file:
            start = file.read(6)
    except OSError:
        return  # said by the partition that reads it, as any unreadable file
    for magic, kind in _OTHER_COMPRESSION.items():
        if start.startswith(magic):
            raise SettingsError(
                f"{name or path}: compressed with {kind}; a replay reads JSON lines, plain or gzip: "
                "decompress it (or compress it with gzip) and run again"
            )


def _refuse_unless_text(path: str) -> None:
    """Refuse a path whose name is not UTF-8 (Python keeps such bytes as lone surrogates).

    A file's path names its partition in the recovery store and is every
    dead letter's origin, and both must be text: Bytewax failed on such a
    name in the middle of starting the flow, with a panic. Refused before
    anything is read, so nothing is lost.
    """
    if not is_text(path):
        raise SettingsError(
            f"{path!r}: the file's name is not UTF-8 text, which a partition name and a "
            "dead letter's origin must be; rename the file and run again"
        )


def total_bytes(paths: Sequence[str]) -> int:
    return sum(Path(path).stat().st_size for path in paths)


# What a resume may receive: a position, or (byte offset, line) as stored
# before positions held fingerprints (the file is then fingerprinted as found).
ResumeState = FilePosition | tuple[int, int] | None


class _FilePartition(StatefulSourcePartition[RawBatch, FilePosition]):
    def __init__(self, path: str, batch_size: int, limit: int, resume: ResumeState) -> None:
        if isinstance(resume, FilePosition):
            refuse_if_changed(path, resume.input)
            self._input, self._damaged = resume.input, resume.damaged
            self._offset, self._line = resume.offset, resume.line
        else:
            self._input, self._damaged = Fingerprint.of(path), False
            self._offset, self._line = resume or (0, 0)
        self._path = path
        self._batch_size = batch_size
        self._produced_at = self._input.mtime_ns / 1e9
        self._raw = open(path, "rb")  # noqa: SIM115 - closed in close()
        # gzip by name, or by its first bytes: a compressed file named `.jsonl`
        # was read as one bad_json letter per chunk of compressed bytes. (No JSON
        # text starts with them: 0x8B cannot start a UTF-8 character.)
        gzipped = path.endswith(".gz") or self._raw.peek(2)[:2] == GZIP_MAGIC
        self._stream: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if gzipped else self._raw
        )
        if self._offset and not self._damaged:
            self._stream.seek(self._offset)
        self._reported = self._raw.tell()
        self._lines: list[bytes] = []  # complete lines decoded, not yet emitted, without "\n"
        self._buffered = 0  # bytes of `_lines`, each with its "\n"
        self._tail = b""  # what follows the last "\n" decoded
        self._at_end = self._damaged  # nothing more to decode
        self._damage: str | None = None  # what went wrong, if the stream ended in damage
        # A line longer than `limit` (the message size limit) is not kept whole
        # (`_LongLine`). Kept whole, a file that is one long line (a JSON array
        # in one line, say) took memory and time growing with its square.
        self._limit = limit
        self._long: _LongLine | None = None  # such a line being read past (`_tail` is empty)
        # such lines decoded, not yet emitted, by line number: with 1 if "\n" ended them
        self._long_lines: dict[int, tuple[_LongLine, int]] = {}

    def next_batch(self) -> list[RawBatch]:
        if self._at_end and not self._lines and not self._tail and self._damage is None:
            raise StopIteration
        while (
            len(self._lines) < self._batch_size
            and self._buffered < BATCH_BYTES
            and not self._at_end
        ):
            self._decode_chunk()
        count = self._batch_size
        if self._buffered > BATCH_BYTES:
            count = _lines_within(self._lines, count, BATCH_BYTES)
        lines = self._lines[:count]
        del self._lines[:count]
        size = sum(map(len, lines)) + len(lines)  # each line ended by "\n"
        self._offset += size
        self._buffered -= size
        last = self._at_end and not self._lines
        if last and self._damage is None and self._tail:  # a last line without "\n"
            lines.append(self._tail)
            self._offset += len(self._tail)
        offsets: list[int] = []
        messages: list[bytes] = []
        number = self._line
        if number == 0 and lines and lines[0].startswith(UTF8_BOM):
            # the mark of a UTF-8 file saved by a Windows editor: not part of its first line
            lines[0] = lines[0][len(UTF8_BOM) :]
        for line in lines:
            number += 1
            message = line.rstrip(b"\r")
            if message.strip():  # blank lines are not messages (SPEC §1)
                offsets.append(number)
                messages.append(message)
        self._line = number
        rejected: list[DeadLetterRow] = []
        if self._long_lines:
            rejected += self._too_long(number, offsets, messages)
        if last and self._damage is not None:
            # the part of a line before the damage belongs to the damaged rest
            rejected.append(self._damage_letter(self._damage, number + 1))
            self._damaged = True
        if last:
            self._tail, self._damage = b"", None
        position = self._raw.tell()
        counters.BYTES_READ.inc(position - self._reported)
        self._reported = position
        counters.MESSAGES_READ.inc(len(messages) + len(rejected))
        if not messages and not rejected:
            return []
        produced_at = [self._produced_at] * len(messages)
        return [RawBatch(self._path, 0, offsets, messages, rejected, produced_at)]

    def snapshot(self) -> FilePosition:
        return FilePosition(self._offset, self._line, self._input, self._damaged)

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def _decode_chunk(self) -> None:
        try:
            chunk = self._stream.read1(CHUNK_BYTES)
        except DAMAGE as exc:
            self._at_end, self._damage = True, _what_is_wrong(exc)
            return
        if not chunk:
            if self._long is not None:
                self._end_long_line(newline=0)
            self._at_end = True
            return
        if self._long is not None:
            end = chunk.find(b"\n")
            self._long.add(chunk if end < 0 else chunk[:end])
            if end < 0:
                return
            self._end_long_line(newline=1)
            chunk = chunk[end + 1 :]
        decoded = len(self._tail) + len(chunk)
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        self._lines += lines
        self._buffered += decoded - len(self._tail)
        if len(self._tail) > self._limit:
            self._long, self._tail = _LongLine(self._tail, self._limit), b""

    def _end_long_line(self, newline: int) -> None:
        """The line read past ends here: its head joins the lines, marked by its number."""
        assert self._long is not None
        self._long_lines[self._line + len(self._lines) + 1] = (self._long, newline)
        self._lines.append(self._long.head)
        self._buffered += len(self._long.head) + 1
        self._long = None

    def _too_long(
        self, last: int, offsets: list[int], messages: list[bytes]
    ) -> list[DeadLetterRow]:
        """The lines read past up to line `last` as `too_large` dead letters, out of
        `offsets` and `messages`, which hold their heads unless blank; their whole size
        counted in the offset. A blank one is skipped, as any blank line."""
        letters: list[DeadLetterRow] = []
        for number in [number for number in self._long_lines if number <= last]:
            line, newline = self._long_lines.pop(number)
            self._offset += line.size + newline - (len(line.head) + 1)
            if line.message_size <= self._limit:
                continue  # only "\r"s went past the limit: its head is the whole message
            if number in offsets:
                index = offsets.index(number)
                del offsets[index], messages[index]
            if not line.blank:
                reason = too_large(line.message_size, self._limit)
                letters.append(
                    dead_letter(
                        self._path, 0, number, line.head, reason.reason, reason.message,
                        produced_at=self._produced_at,
                    )
                )  # fmt: skip
        return letters

    def _damage_letter(self, damage: str, line: int) -> DeadLetterRow:
        """The damaged rest of the file as one dead letter at `line`, the first line it lacks.

        Its raw bytes are how the rest begins: the part of a line decoded
        before the damage, or, for a file unreadable from its first byte,
        the file's first bytes as stored.
        """
        raw = (self._tail if self._long is None else self._long.head)[:HEAD_BYTES]
        if line == 1 and not raw:
            with open(self._path, "rb") as file:
                raw = file.read(HEAD_BYTES)
        decoded = self._offset + (len(self._tail) if self._long is None else self._long.size)
        message = f"{damage}: line {line} on could not be read ({decoded:,} bytes decoded before)"
        return dead_letter(
            self._path, 0, line, raw, "damaged_input", message, produced_at=self._produced_at
        )


class _LongLine:
    """A line longer than the message size limit, read past: only its `head` is kept,
    the first `limit` bytes, which is what its `too_large` dead letter keeps."""

    __slots__ = ("blank", "head", "returns", "size")

    def __init__(self, start: bytes, limit: int) -> None:
        self.head = start[:limit]
        self.size = 0  # its bytes so far, without "\n"
        self.blank = True  # all of them white space
        self.returns = 0  # how many "\r" end them
        self.add(start)

    def add(self, more: bytes) -> None:
        if not more:
            return
        self.size += len(more)
        self.blank = self.blank and more.isspace()
        kept = more.rstrip(b"\r")
        self.returns = len(more) - len(kept) + (self.returns if not kept else 0)

    @property
    def message_size(self) -> int:
        """Its size as a message: without the "\r"s that end it (as every line is read)."""
        return self.size - self.returns


def _lines_within(lines: list[bytes], most: int, budget: int) -> int:
    """How many of the first `most` lines fit in `budget` bytes with their "\n" (one at least)."""
    total = 0
    for count, line in enumerate(lines[:most], 1):
        total += len(line) + 1
        if total > budget:
            return max(count - 1, 1)
    return min(len(lines), most)


def _what_is_wrong(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return f"truncated gzip stream ({exc})"
    if isinstance(exc, gzip.BadGzipFile) and str(exc).startswith("Not a gzipped file"):
        return f"not gzip data ({exc})"
    return f"corrupt gzip data ({exc})"


def read_one_at_a_time(
    paths: Sequence[str], batch_size: int, max_message_bytes: int
) -> tuple[list[str], Iterator[RawBatch]]:
    """The inputs `paths` name, and their batches as a replay reads them, one file open
    at a time (`writech validate`): unlike a run, this needs no room for every file.

    `-` is standard input (after the files): a check needs no position to
    resume from, so a stream can be checked where it cannot be replayed.
    """
    inputs = expand([path for path in paths if path != STDIN])
    if STDIN in paths:
        inputs.append(STDIN)

    def batches() -> Iterator[RawBatch]:
        for path in inputs:
            if path == STDIN:
                yield from _standard_input_batches(batch_size, max_message_bytes)
            else:
                yield from _file_batches(path, batch_size, max_message_bytes)

    return inputs, batches()


def _file_batches(path: str, batch_size: int, max_message_bytes: int) -> Iterator[RawBatch]:
    partition = _FilePartition(path, batch_size, max_message_bytes, None)
    try:
        while True:
            yield from partition.next_batch()
    except StopIteration:
        pass
    finally:
        partition.close()


def _standard_input_batches(batch_size: int, max_message_bytes: int) -> Iterator[RawBatch]:
    """Standard input's batches, read as a file's are (gzip or not, a byte order mark,
    overlong lines read past) from a temporary copy of it, and named `-`."""
    with tempfile.TemporaryDirectory(prefix="writech-stdin-") as directory:
        copy = os.path.join(directory, "stdin")
        with open(copy, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        _refuse_other_compression(copy, STDIN)
        for batch in _file_batches(copy, batch_size, max_message_bytes):
            rejected = [(STDIN, *letter[1:]) for letter in batch.rejected]
            yield msgspec.structs.replace(batch, origin=STDIN, rejected=rejected)


class JsonLinesSource(FixedPartitionedSource[RawBatch, FilePosition]):
    """Reads every line of the given files once; ends when all are read."""

    def __init__(
        self, paths: Sequence[str], batch_size: int = 2000, max_message_bytes: int = 1 << 20
    ) -> None:
        self.paths = expand(paths)
        make_room_to_open(len(self.paths))
        self.batch_size = batch_size
        self.max_message_bytes = max_message_bytes

    def list_parts(self) -> list[str]:
        return self.paths

    def build_part(self, step_id: str, for_part: str, resume_state: ResumeState) -> _FilePartition:
        return _FilePartition(for_part, self.batch_size, self.max_message_bytes, resume_state)

    def check_resume(self, stored: Mapping[str, Any]) -> None:
        """Refuse to resume from `stored` (positions by file) unless every file it read is
        among the inputs, unchanged. New files are fine: they are read from their start."""
        missing = [path for path in stored if path not in self.paths]
        if missing:
            raise InputChanged(_missing_message(missing))
        for path, state in stored.items():
            if isinstance(state, FilePosition):
                refuse_if_changed(path, state.input)
