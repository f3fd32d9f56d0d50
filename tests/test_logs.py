"""Logs, as `kubectl logs` and a terminal show them: JSON lines off a terminal, plain
lines on one, never a secret (`writech.redaction.redact`, whatever a URL's shape),
a failure's one-line advice before its traceback, an interruption as one warning."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import REPO
from writech.failures import Interrupted, advice, stop_message
from writech.logs import Repeats, configure_logging, log_setup_error
from writech.redaction import MASK, redact
from writech.settings import Settings, SettingsError
from writech.stores.base import StoreError


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def _secret_settings() -> Settings:
    return Settings.from_env(
        {
            "WRITECH_MYSQL_URL": "mysql://writech:hunter2@mysql:3306/writech",
            "WRITECH_KAFKA_OPTIONS": "sasl.username=w,sasl.password=s3cret-kafka",
        }
    )


def _entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_json_lines_off_a_terminal_with_secrets_masked() -> None:
    stream = io.StringIO()
    configure_logging(_secret_settings(), stream=stream)
    log = logging.getLogger("writech.test")
    log.info("connecting to %s", "mysql://writech:hunter2@mysql:3306/writech")
    log.warning("kafka said no", extra={"options": {"sasl.password": "s3cret-kafka"}, "n": 3})
    try:
        raise RuntimeError("auth failed for https://admin:other-pw@clickhouse:8443")
    except RuntimeError:
        log.exception("write failed")
    text = stream.getvalue()
    for secret in ("hunter2", "s3cret-kafka", "other-pw"):
        assert secret not in text
    first, second, third = (json.loads(line) for line in text.splitlines())
    assert first["level"] == "info"
    assert first["logger"] == "writech.test"
    assert first["message"] == "connecting to mysql://writech:***@mysql:3306/writech"
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert second["options"] == {"sasl.password": "***"}
    assert second["n"] == 3
    assert third["message"] == "write failed"
    assert "RuntimeError: auth failed for https://admin:***@clickhouse:8443" in third["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_plain_lines_on_a_terminal_with_secrets_masked() -> None:
    stream = _Terminal()
    configure_logging(_secret_settings(), stream=stream)
    logging.getLogger("writech.test").info("password is hunter2")
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    writech\.test: password is \*\*\*", line)


@pytest.mark.usefixtures("restore_logging")
def test_configuring_again_replaces_only_its_own_handler() -> None:
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    logging.getLogger("writech.test").warning("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"
    assert other in logging.getLogger().handlers


@pytest.mark.usefixtures("restore_logging")
def test_extra_values_of_any_type_are_logged_as_text() -> None:
    stream = io.StringIO()
    configure_logging(Settings(), stream=stream)
    path = Path("/data/writech.db")
    logging.getLogger("writech.test").info("opened", extra={"path": path, "rows": [1, "two"]})
    (entry,) = _entries(stream)
    assert (entry["path"], entry["rows"]) == (str(path), [1, "two"])


@pytest.mark.usefixtures("restore_logging")
def test_python_warnings_are_log_lines() -> None:
    stream = io.StringIO()
    configure_logging(Settings(), stream=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(
            "mysql://u:pw-in-a-warning@db/x is deprecated", DeprecationWarning, stacklevel=1
        )
    (entry,) = _entries(stream)
    assert entry["logger"] == "py.warnings"
    assert "pw-in-a-warning" not in entry["message"]
    assert "mysql://u:***@db/x is deprecated" in entry["message"]


@pytest.mark.usefixtures("restore_logging")
def test_without_settings_the_environments_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WRITECH_MYSQL_PASSWORD", "env-secret-pw")
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("writech.test").info("password env-secret-pw")
    assert _entries(stream)[0]["message"] == "password ***"


@pytest.mark.usefixtures("restore_logging")
def test_invalid_settings_still_mask_url_passwords_and_do_not_stop_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WRITECH_BATCH_SIZE", "0")
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("writech.test").error("cannot reach https://u:pw@ch:8443")
    assert _entries(stream)[0]["message"] == "cannot reach https://u:***@ch:8443"


# -- failures: advice first, interruptions as one warning ----------------------------


def _raised(error: BaseException) -> BaseException:
    """`error` with a traceback, as an uncaught exception has one."""
    try:
        raise error
    except BaseException as caught:
        return caught


@pytest.mark.usefixtures("restore_logging")
def test_an_uncaught_failure_is_logged_with_its_advice_first() -> None:
    stream = io.StringIO()
    configure_logging(_secret_settings(), stream=stream)
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as full:
        error = _raised(RuntimeError("insert into mysql://writech:hunter2@mysql:3306 failed"))
        error.__context__ = full
    sys.excepthook(type(error), error, error.__traceback__)
    first, second = _entries(stream)
    assert (first["level"], first["logger"]) == ("critical", "writech")
    assert first["message"] == advice(error)
    assert first["message"].startswith("a disk is full")
    assert (second["level"], second["message"]) == ("critical", "the run failed")
    assert "Traceback (most recent call last)" in second["exception"]
    assert "No space left on device" in second["exception"]
    assert "hunter2" not in stream.getvalue()
    assert "mysql://writech:***@mysql:3306" in second["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_an_uncaught_failure_without_advice_is_one_line_with_its_traceback() -> None:
    stream = io.StringIO()
    configure_logging(Settings(), stream=stream)
    error = _raised(ValueError("something unforeseen"))
    sys.excepthook(type(error), error, error.__traceback__)
    (entry,) = _entries(stream)
    assert (entry["level"], entry["message"]) == ("critical", "the run failed")
    assert "ValueError: something unforeseen" in entry["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_a_failure_wrapped_by_bytewax_says_this_package_s_message_before_the_traceback() -> None:
    stream = io.StringIO()
    configure_logging(_secret_settings(), stream=stream)
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as refused:
        try:
            raise StoreError(
                "MySQL at mysql://writech:hunter2@mysql:3306/writech: check character sets "
                "failed after 3 attempts"
            ) from refused
        except StoreError as store:
            error = _raised(RuntimeError("error building production dataflow"))
            error.__cause__ = store
    sys.excepthook(type(error), error, error.__traceback__)
    said, failed = _entries(stream)
    assert said["level"] == "critical"
    assert said["message"] == (
        "MySQL at mysql://writech:***@mysql:3306/writech: check character sets failed after 3 "
        "attempts"
    )
    assert (failed["level"], failed["message"]) == ("critical", "the run failed")
    assert "error building production dataflow" in failed["exception"]


@pytest.mark.parametrize(
    ("interruption", "signal_name"),
    [(KeyboardInterrupt(), "SIGINT"), (Interrupted("SIGTERM"), "SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["as is", "wrapped by bytewax"])
@pytest.mark.usefixtures("restore_logging")
def test_an_interruption_is_one_warning_line(
    interruption: BaseException, signal_name: str, wrapped: bool
) -> None:
    stream = io.StringIO()
    configure_logging(Settings(), stream=stream)
    error = _raised(interruption)
    if wrapped:  # Bytewax re-raises a step's exception as its own, caused by it
        outer = _raised(RuntimeError("error in step"))
        outer.__cause__ = error
        error = outer
    sys.excepthook(type(error), error, error.__traceback__)
    (entry,) = _entries(stream)
    assert (entry["level"], entry["message"]) == ("warning", stop_message(signal_name))
    assert "exception" not in entry


@pytest.mark.usefixtures("restore_logging")
def test_an_uncaught_failure_in_a_thread_is_logged_redacted() -> None:
    stream = io.StringIO()
    configure_logging(_secret_settings(), stream=stream)

    def fail() -> None:
        raise RuntimeError("password hunter2 refused")

    worker = threading.Thread(target=fail, name="worker-7")
    worker.start()
    worker.join()
    (entry,) = _entries(stream)
    assert (entry["level"], entry["message"]) == (
        "critical",
        "uncaught exception in thread worker-7",
    )
    assert "RuntimeError: password *** refused" in entry["exception"]


def _start_dataflow(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        cwd=REPO,
        env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dataflow_start_up_failure_is_one_json_line_without_the_secret(tmp_path: Path) -> None:
    result = _start_dataflow(
        {
            "WRITECH_MYSQL_URL": "mysql://writech:hunter2@mysql:3306/writech",
            "WRITECH_INPUT_PATHS": str(tmp_path / "missing-hunter2"),
            "WRITECH_DATA_DIR": str(tmp_path / "data"),
        }
    )
    assert result.returncode == 2
    assert "hunter2" not in result.stdout + result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (failure,) = [entry for entry in entries if entry["level"] == "critical"]
    assert failure["message"].startswith("cannot start: no such file or directory")
    assert "missing-***" in failure["message"]
    assert "exception" not in failure  # what to fix, not a backtrace
    assert "Traceback" not in result.stderr


def test_dataflow_with_a_wrong_setting_says_which_in_one_line_and_exits_2(tmp_path: Path) -> None:
    result = _start_dataflow(
        {"WRITECH_BATCH_SIZE": "ten thousand", "WRITECH_DATA_DIR": str(tmp_path / "data")}
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "critical"
    assert entry["message"] == "cannot start: WRITECH_BATCH_SIZE: Expected `int`, got `str`"
    assert not (tmp_path / "data").exists()  # nothing was opened


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ("no.such=1", 'No such configuration property: "no.such"'),
        ("security.protocol=SSL,ssl.ca.location=/nonexistent/ca.pem", "ssl.ca.location failed"),
        ("linger.ms=soon", "Invalid value for configuration property"),
    ],
)
def test_dataflow_with_kafka_options_librdkafka_refuses_says_so_in_one_line(
    tmp_path: Path, options: str, said: str
) -> None:
    """A typo in WRITECH_KAFKA_OPTIONS, or a TLS file it cannot read: a traceback
    from confluent-kafka's constructor, exit 1, as if it were a bug."""
    result = _start_dataflow(
        {
            "WRITECH_SOURCE": "kafka",
            "WRITECH_KAFKA_BROKERS": "127.0.0.1:1",
            "WRITECH_KAFKA_OPTIONS": options,
            "WRITECH_DATA_DIR": str(tmp_path / "data"),
        }
    )
    assert result.returncode == 2
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (entry,) = entries  # librdkafka's own lines about the TLS file are plain text
    assert entry["level"] == "critical"
    assert entry["message"].startswith(
        "cannot start: WRITECH_KAFKA_BROKERS and WRITECH_KAFKA_OPTIONS make no Kafka client: "
    )
    assert said in entry["message"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was opened


def test_a_setup_error_is_said_as_its_message_alone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="writech"):
        log_setup_error(SettingsError("WRITECH_SHARDS: Expected `int` >= 1"))
    (setup,) = caplog.records
    assert setup.getMessage() == "cannot start: WRITECH_SHARDS: Expected `int` >= 1"
    assert setup.exc_info is None


# -- redaction ------------------------------------------------------------------------

# Passwords of every shape a generator makes, unencoded: a URL parser would take
# the first `/`, `#`, `?` or `@` for the end of the host.
PASSWORDS = ["hunter2", "p@ss", "p/w#r?d@@", "a:b:c", "x://y@z", "%40encoded%2F", "汉字密码", "***"]


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    "shape",
    [
        "mysql://writech:{}@db:3306/writech",
        "https://admin:{}@[::1]:8443/?database=writech",
        "kafka+ssl://u:{}@broker",
        "https://:{}@ch.internal",
    ],
)
def test_redact_masks_a_url_password_whatever_its_characters(shape: str, password: str) -> None:
    url = shape.format(password)
    masked = shape.format(MASK)
    for text, expected in [
        (url, masked),
        (f"cannot connect to {url}: refused", f"cannot connect to {masked}: refused"),
        (f"url='{url}'", f"url='{masked}'"),
        (f'{{"url": "{url}"}}', f'{{"url": "{masked}"}}'),
        (f"{url}\n{url}", f"{masked}\n{masked}"),
    ]:
        assert redact(text) == expected


def test_redact_leaves_urls_without_a_password_alone() -> None:
    for text in ("mysql://writech@db:3306/writech", "https://ch:8443/?q=a", "user:pw@host"):
        assert redact(text) == text


_URL_PART = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)
_PASSWORD = st.text(
    st.characters(exclude_categories=["Z", "Cc", "Cs"], exclude_characters="'\"\u0085"),
    min_size=1,
    max_size=20,
)


@given(_URL_PART, _PASSWORD, _URL_PART, _URL_PART)
def test_redact_masks_any_password_but_no_other_part_of_a_url(
    user: str, password: str, host: str, path: str
) -> None:
    text = f"failed: mysql://{user}:{password}@{host}:3306/{path} (retrying)"
    assert redact(text) == f"failed: mysql://{user}:***@{host}:3306/{path} (retrying)"


_SECRET = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=3, max_size=12)


@given(st.lists(_SECRET, min_size=1, max_size=4), st.lists(_URL_PART, max_size=4))
def test_redact_masks_every_known_secret_wherever_it_appears(
    secrets: list[str], words: list[str]
) -> None:
    text = " ".join(words + [f"<{secret}>" for secret in secrets] + ["".join(secrets)])
    masked = redact(text, secrets)
    for secret in secrets:
        assert secret not in masked
    assert masked.count(MASK) >= len(secrets)


def _said(repeats: Repeats, message: str, *args: object) -> str | None:
    """What `repeats` lets through of one record, or None."""
    record = logging.makeLogRecord({"msg": message, "args": args, "levelno": logging.ERROR})
    return record.getMessage() if repeats.filter(record) else None


def test_a_line_said_again_and_again_is_said_once_per_period_with_the_count() -> None:
    """librdkafka logged 25 lines a second about a broker that was down."""
    now = [0.0]
    repeats = Repeats(30.0, clock=lambda: now[0])
    refused = "FAIL [rdkafka#producer-1]: Connect to %s failed: Connection refused (after %dms in state CONNECT)"
    assert _said(repeats, refused, "ipv4#127.0.0.1:1", 0) == (
        "FAIL [rdkafka#producer-1]: Connect to ipv4#127.0.0.1:1 failed: "
        "Connection refused (after 0ms in state CONNECT)"
    )
    for attempt in range(1, 200):
        now[0] = attempt * 0.1
        assert _said(repeats, refused, "ipv4#127.0.0.1:1", attempt % 3) is None
    # another broker's line is another line
    assert _said(repeats, refused, "ipv4#127.0.0.1:2", 0) is not None
    now[0] = 30.5
    again = _said(repeats, refused, "ipv4#127.0.0.1:1", 1)
    assert again is not None
    assert again.endswith("(after 1ms in state CONNECT) (and 199 times more in the 30 s before)")
    now[0] = 31.0
    assert _said(repeats, refused, "ipv4#127.0.0.1:1", 0) is None
