"""Stopping, and what an operator does about a failure: one line, said before any backtrace.

SIGTERM and Ctrl-C are normal stops (`install_signal_handlers`): the first
one ends the input (`stop_requested`, checked by every source partition
before each batch), so the dataflow finishes what it read, writes it, and
exits as at the end of its input, with one line saying what stopped it
and what a resume does. A second signal interrupts at once (`Interrupted`).

`advice(error)` recognises the failures with a known remedy anywhere in an
exception's chain (Bytewax wraps a step's exception in its own): a full
disk, a damaged store, an interrupted run.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Final

RESUME: Final = (
    "run the same command again to resume: with a recovery store it continues from the last "
    "snapshot, and every write may be repeated safely, so nothing is lost or counted twice"
)
_DISK_FULL: Final = (
    "No space left on device",
    "NOT_ENOUGH_SPACE",
    "database or disk is full",
    "Cannot reserve",
)
_DAMAGED: Final = (
    "database disk image is malformed",
    "file is not a database",
    "CORRUPTED_DATA",
    "CHECKSUM_DOESNT_MATCH",
    "CANNOT_READ_ALL_DATA",
)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal (SIGTERM); a normal stop, like Ctrl-C."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


_stop = threading.Event()
_stopped_by: list[str] = []


def stop_requested() -> bool:
    """Whether a signal asked the run to stop: sources then end their input."""
    return _stop.is_set()


def wait_for_stop(seconds: float) -> bool:
    """Wait `seconds`, or less if a signal asks the run to stop; whether one did."""
    return _stop.wait(seconds)


def stopped_by() -> str | None:
    """The signal that stopped the run ("SIGTERM", "SIGINT"), if one did."""
    return _stopped_by[0] if _stopped_by else None


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT: the first ends the input, a second interrupts at once."""

    def stop(number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if _stop.is_set():
            raise Interrupted(name)
        _stopped_by.append(name)
        _stop.set()
        logging.getLogger("writech").warning(
            "%s: finishing the batches already read, then stopping (again to stop at once)", name
        )

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    atexit.register(_say_why_stopped)


def _say_why_stopped() -> None:
    name = stopped_by()
    if name:
        logging.getLogger("writech").warning("%s", stop_message(name))


def output_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (`writech ... | head`).

    Python ignores SIGPIPE, so writing there raises `BrokenPipeError`; the
    pipe's end then polls as an error. A broken connection to a store raises
    the same exception, which this tells apart.
    """
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no standard output at all
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def close_output() -> int:
    """Stop writing to a closed standard output; the status of a process SIGPIPE ended.

    Standard output goes to /dev/null, so that the interpreter's flush at
    exit does not fail once more; a program killed by SIGPIPE says nothing,
    and neither does this.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def exit_status(signal_name: str) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + (15 if signal_name == "SIGTERM" else 2)


def stop_message(signal_name: str) -> str:
    return f"stopped by {signal_name}; {RESUME}"


def chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every exception that caused it or was being handled when it was raised."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def interruption(error: BaseException) -> str | None:
    """The name of what interrupted the run ("SIGTERM", "Ctrl-C"), if it was interrupted."""
    for cause in chain(error):
        if isinstance(cause, Interrupted):
            return cause.signal_name
        if isinstance(cause, KeyboardInterrupt):
            return "SIGINT"
    return None


def own_cause(error: BaseException) -> BaseException | None:
    """The outermost exception of `error`'s chain that this package raised, if any.

    Its message is written for an operator: it names the store, topic or
    file and what failed, where the framework's wrapper around it says only
    which step failed (`error building production dataflow`).
    """
    for cause in chain(error):
        if type(cause).__module__.startswith("writech."):
            return cause
    return None


def advice(error: BaseException) -> str | None:
    """One line saying what happened and what to do, for failures with a known remedy."""
    signal_name = interruption(error)
    if signal_name:
        return stop_message(signal_name)
    for cause in chain(error):
        text = str(cause)
        if (isinstance(cause, OSError) and cause.errno == errno.ENOSPC) or any(
            marker in text for marker in _DISK_FULL
        ):
            return (
                "a disk is full (the stores' data dir or the recovery store): nothing of the "
                f"failed epoch was committed; free space or enlarge the volume, then {RESUME}"
            )
        if any(marker in text for marker in _DAMAGED):
            return (
                "a store's files are damaged (see the error below for which): restore it from a "
                "backup, or move it aside and rebuild it by replaying the input with a new "
                "recovery store; the other stores are untouched"
            )
    return None
