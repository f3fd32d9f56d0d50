"""Logging: JSON lines for machines, plain lines for people, never a secret.

`configure_logging()` sends the root logger to stderr: one JSON object per
line when stderr is not a terminal (containers, CI, log shippers), a short
human-readable line when it is. Every message, argument, exception and
extra field passes through a redaction first: the secrets the settings hold
(`Settings.redact`) and the password of any URL are replaced by `***`.
Uncaught exceptions, in the main thread or any other, are logged the same
way instead of Python's plain traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, TextIO

from writech.failures import advice, interruption, own_cause
from writech.redaction import redact
from writech.settings import Settings, SettingsError
from writech.stores.migrations import SchemaError

Redact = Callable[[str], str]

# What stops a command, or the flow, before it starts, when a setting, an input
# or a store's schema is wrong: the message says what to fix, and a backtrace
# would only suggest a bug. Said in one line, and the exit status is 2.
SETUP_ERRORS: Final = (SettingsError, SchemaError, FileNotFoundError)

# librdkafka's own lines (a broker unreachable, a connection lost), which it prints
# to stderr as plain text unless a client has a logger: every Kafka client of
# ours has this one, so that they are JSON lines, redacted, like all others. A
# client hands them over in its poll calls (consume, flush, poll).
LIBRDKAFKA: Final = logging.getLogger("writech.librdkafka")
# librdkafka says the same line at every attempt to reach a broker that is down,
# some 25 a second at first: each is said once per this many seconds, with how
# many times it was left out since.
LIBRDKAFKA_REPEAT_SECONDS: Final = 30.0
# What tells one attempt from the next in a line: "(after 0ms in state CONNECT)".
_ATTEMPT: Final = re.compile(r" \(after \d+ms in state [^)]*\)")
_REMEMBERED_LINES: Final = 1000

# LogRecord's own attributes; anything else on a record came from `extra=`.
_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def configure_logging(
    settings: Settings | None = None,
    *,
    stream: TextIO | None = None,
    level: int = logging.INFO,
) -> None:
    """Log to `stream` (stderr), as JSON unless it is a terminal, redacting secrets.

    `settings` names the secrets to mask; by default they are read from the
    environment like everywhere else (invalid settings mask nothing more than
    URL passwords here: the code that reads them reports the error).
    """
    stream = sys.stderr if stream is None else stream
    redact = _redactor(settings)
    handler = _Handler(stream)
    handler.addFilter(RedactingFilter(redact))
    if stream.isatty():
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old, _Handler):  # configured before: replaced, others kept
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


class Repeats(logging.Filter):
    """Lets a line through once per `seconds`; the next one it lets through says how
    many times it was left out in between. Lines are the same if they differ only in
    `_ATTEMPT`."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._said: dict[str, tuple[float, int]] = {}  # line -> (when said, left out since)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        line = _ATTEMPT.sub("", text)
        now = self._clock()
        with self._lock:
            said = self._said.get(line)
            if said is not None and now - said[0] < self._seconds:
                self._said[line] = (said[0], said[1] + 1)
                return False
            if len(self._said) >= _REMEMBERED_LINES:  # many different lines: start over
                self._said.clear()
            self._said[line] = (now, 0)
        if said is not None and said[1]:
            record.msg = f"{text} (and {said[1]} times more in the {now - said[0]:.0f} s before)"
            record.args = None
        return True


LIBRDKAFKA.addFilter(Repeats(LIBRDKAFKA_REPEAT_SECONDS))


class RedactingFilter(logging.Filter):
    """Renders each record's message and exception through `redact`, in place."""

    def __init__(self, redact: Redact) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self._redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                setattr(record, key, _redact_value(self._redact, value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_FIELDS
        )
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs, told apart from anyone else's."""


def _redactor(settings: Settings | None) -> Redact:
    if settings is None:
        try:
            settings = Settings.from_env()
        except SettingsError:
            return redact  # URL passwords only: the code reading the settings reports the error
    return settings.redact


def _redact_value(redact: Redact, value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(redact, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(redact, item) for item in value]
    return value


def log_failure(error: BaseException) -> None:
    """A run's end by `error`: what to do in one line first, then the details.

    The details: the message of the error this package raised (`own_cause`),
    then the whole traceback. An interruption (Ctrl-C, SIGTERM) is a normal
    stop: that one line only.
    """
    log = logging.getLogger("writech")
    line = advice(error)
    if interruption(error):
        log.warning("%s", line)
        return
    if line:
        log.critical("%s", line)
    cause = own_cause(error)
    if cause is not None:
        log.critical("%s", cause)
    log.critical("the run failed", exc_info=(type(error), error, error.__traceback__))


def log_setup_error(error: BaseException) -> None:
    """A run that cannot start as configured (`SETUP_ERRORS`): what to fix, in one line."""
    logging.getLogger("writech").critical("cannot start: %s", error)


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    log_failure(error.with_traceback(traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("writech").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
