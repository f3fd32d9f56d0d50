"""The files the commands write (reports, dead-letter exports, generated data): whole or not at all.

Each is written beside its final name under a temporary one, then renamed
over it once complete. A full disk (or a stop) midway used to leave a
truncated report where a teacher expected a whole one, with nothing in the
file to say so; now the previous file, if any, stays as it was, and the
failure is one line (`OutputError`) instead of a traceback whose advice
spoke of the stores' epochs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class OutputError(Exception):
    """An output file could not be written; nothing was put in its place."""


@contextlib.contextmanager
def written(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary stream whose bytes become the file at `path` when the block ends without an
    error ("-": standard output, as it is).

    The block should only write to the stream: any `OSError` in it is taken
    for a failed write (`OutputError`, naming `path`).
    """
    if str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        # mode 0o666 less the umask, as open() would make the file itself
        stream = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # whole on disk before it takes the name
        os.replace(partial, target)
    except OSError as exc:
        _remove(partial)
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}; nothing was put in its place"
        ) from None
    except BaseException:
        _remove(partial)
        raise


def _remove(partial: Path) -> None:
    with contextlib.suppress(OSError):
        partial.unlink()
