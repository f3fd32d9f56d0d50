"""The retry policy every server store shares (`writech.stores.retry.Retrying`), with
fake requests on a fake clock: what is retried, how long, what is said, what is counted."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from writech import counters
from writech.settings import Settings
from writech.stores import retry
from writech.stores.base import StoreError
from writech.stores.retry import MAX_BACKOFF, Retrying
from writech.stores.urls import parse_server_url

SECRET = "pa55-Wörd/#?@"
URL = f"mysql://writech:{quote(SECRET, safe='')}@db.internal:3306/writech"


class FakeStoreError(StoreError):
    pass


class Flaky(Exception):
    """What a fake request raises; `transient` says whether a new try may succeed."""

    def __init__(self, text: str, *, transient: bool = True) -> None:
        super().__init__(text)
        self.transient = transient


@dataclass
class Clock:
    """Stands in for the `time` module the policy reads: sleeping only moves the clock."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Jitter:
    """Stands in for the `random` module: seeded draws, each one recorded."""

    draws: list[tuple[float, float, float]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def uniform(self, low: float, high: float) -> float:
        value = self.rng.uniform(low, high)
        self.draws.append((low, high, value))
        return value


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(retry, "time", fake)
    return fake


@pytest.fixture
def jitter(monkeypatch: pytest.MonkeyPatch) -> Jitter:
    fake = Jitter()
    monkeypatch.setattr(retry, "random", fake)
    return fake


def policy(store: str = "Fake", deadline: float = 60.0, first_backoff: float = 0.5) -> Retrying:
    return Retrying(
        store=store,
        target=f"{store} at fake://db",
        secrets=(SECRET,),
        error=FakeStoreError,
        failures=Flaky,
        is_transient=lambda failure: isinstance(failure, Flaky) and failure.transient,
        timeout=20.0,
        deadline=deadline,
        first_backoff=first_backoff,
    )


def failing(
    clock: Clock, failures: list[Flaky], takes: float = 0.0, result: str = "done"
) -> tuple[Callable[[], str], list[float]]:
    """A request that raises `failures` one per call, then returns `result`; each call
    takes `takes` seconds of the clock. Also the times the calls started."""
    started: list[float] = []

    def request() -> str:
        started.append(clock.now)
        clock.now += takes
        if failures:
            raise failures.pop(0)
        return result

    return request, started


def retries_counted(store: str) -> float:
    return counters.value("writech_store_retries_total", store=store)


@pytest.mark.usefixtures("jitter")
def test_a_request_that_succeeds_is_tried_once(clock: Clock) -> None:
    request, started = failing(clock, [])
    assert policy().run("read", request) == "done"
    assert len(started) == 1
    assert clock.slept == []


def test_transient_failures_are_retried_after_jittered_doubling_delays_each_logged(
    clock: Clock, jitter: Jitter, caplog: pytest.LogCaptureFixture
) -> None:
    before = retries_counted("retried")
    failures = [Flaky(f"connection reset {n}") for n in range(8)]
    request, started = failing(clock, failures, takes=0.1)
    cleanups: list[float] = []
    with caplog.at_level(logging.WARNING, logger=retry.__name__):
        result = policy("Retried", deadline=1000).run(
            "insert of 3 rows", request, lambda: cleanups.append(clock.now)
        )
    assert result == "done"
    assert len(started) == 9
    assert len(cleanups) == 8, "after each failure, before the next try"
    backoffs = [min(0.5 * 2**n, MAX_BACKOFF) for n in range(8)]
    assert [(low, high) for low, high, _ in jitter.draws] == [(b / 2, b) for b in backoffs]
    assert clock.slept == [value for _, _, value in jitter.draws]
    assert len(set(clock.slept)) == len(clock.slept), "drawn, not fixed"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 8
    for attempt, (line, delay) in enumerate(zip(lines, clock.slept, strict=True), start=1):
        assert line == (
            f"Retried at fake://db: insert of 3 rows failed (attempt {attempt}), "
            f"retrying in {delay:.1f} s: connection reset {attempt - 1}"
        )
    assert retries_counted("retried") - before == 8


@pytest.mark.usefixtures("jitter")
def test_the_backoff_stops_doubling_at_its_maximum(clock: Clock, jitter: Jitter) -> None:
    request, _ = failing(clock, [Flaky("busy") for _ in range(12)])
    policy(deadline=10_000).run("read", request)
    assert max(high for _, high, _ in jitter.draws) == MAX_BACKOFF
    assert [high for _, high, _ in jitter.draws][-3:] == [MAX_BACKOFF] * 3


@pytest.mark.usefixtures("jitter")
def test_a_permanent_failure_is_raised_at_once_naming_the_store(clock: Clock) -> None:
    before = retries_counted("permanent")
    request, started = failing(clock, [Flaky("access denied for writech", transient=False)])
    cleanups: list[None] = []
    with pytest.raises(FakeStoreError) as raised:
        policy("Permanent").run("connect", request, lambda: cleanups.append(None))
    assert str(raised.value) == "Permanent at fake://db: connect failed: access denied for writech"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert (len(started), len(cleanups), clock.slept) == (1, 1, [])
    assert retries_counted("permanent") == before


@pytest.mark.usefixtures("jitter")
def test_what_the_store_does_not_raise_is_no_failure_of_it(clock: Clock) -> None:
    def broken() -> str:
        raise KeyError("a bug, not a store failure")

    with pytest.raises(KeyError):
        policy().run("read", broken)
    assert clock.slept == []


@pytest.mark.parametrize(("deadline", "takes"), [(60.0, 0.0), (60.0, 20.0), (5.0, 3.0)])
def test_the_deadline_bounds_the_attempts(
    clock: Clock, jitter: Jitter, deadline: float, takes: float
) -> None:
    """No attempt starts more than `deadline` after the first failing one; the last
    failure ends within the deadline plus one attempt's time."""
    request, started = failing(clock, [Flaky("timed out") for _ in range(1000)], takes=takes)
    with pytest.raises(FakeStoreError) as raised:
        policy(deadline=deadline).run("insert", request)
    first = started[0]
    assert len(started) > 1
    assert all(moment - first <= deadline for moment in started)
    assert clock.now - first <= deadline + takes
    # the attempt after the last one would have started past the deadline
    assert clock.now + jitter.draws[-1][2] - first > deadline
    assert re.fullmatch(
        rf"Fake at fake://db: insert failed {len(started)} time\(s\) over \d+ s "
        rf"\(the deadline is {deadline:.0f} s, WRITECH_STORE_DEADLINE\), last with: timed out",
        str(raised.value),
    )


def test_secrets_never_reach_the_raised_message_or_the_log(
    clock: Clock, jitter: Jitter, caplog: pytest.LogCaptureFixture
) -> None:
    said = f"cannot reach https://admin:{SECRET}@db.internal:8443 (password {SECRET!s})"
    request, _ = failing(clock, [Flaky(said) for _ in range(1000)], takes=1.0)
    with (
        caplog.at_level(logging.WARNING, logger=retry.__name__),
        pytest.raises(FakeStoreError) as raised,
    ):
        policy(deadline=10).run("read", request)
    for text in [str(raised.value), *(record.getMessage() for record in caplog.records)]:
        assert SECRET not in text
        assert "https://admin:***@db.internal:8443 (password ***)" in text
    assert caplog.records, "the retries were logged"


def test_a_store_url_gives_its_target_its_secrets_and_the_configured_bounds() -> None:
    settings = Settings(
        mysql_url=URL,
        store_timeout=7.0,
        store_deadline=42.0,
        kafka_options={"sasl.password": "kafka-secret"},
    )
    url = parse_server_url(settings.mysql_url, "WRITECH_MYSQL_URL", "mysql://...", {"mysql": 3306})
    made = Retrying.for_url("MySQL", url, settings, FakeStoreError, Flaky, lambda _: True)
    assert made.target == "MySQL at mysql://writech:***@db.internal:3306/writech"
    assert {SECRET, quote(SECRET, safe=""), "kafka-secret"} <= set(made.secrets)
    assert (made.timeout, made.deadline) == (7.0, 42.0)
