"""One retry policy for every server store: bounded in time, jittered, logged, never showing a secret.

A request that fails transiently (connection refused or reset, a timeout,
a server error that may pass) is tried again after a backoff that doubles
from `first_backoff` up to 30 s, each wait drawn between half and all of
it, so that the workers of a cluster do not retry in lockstep. Retries stop
once the next attempt would start more than `deadline` seconds after the
first failure; every network call is itself bounded by the store's timeout,
so a store that stays down or hangs stops the run within the deadline plus
one timeout (60 + 20 s by default), with an error naming the server and
the last failure. A permanent failure (bad
credentials, an unknown table, a malformed statement) stops it at once.
Each retry is logged and counted (`writech_store_retries_total`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from writech import counters
from writech.redaction import redact
from writech.settings import Settings
from writech.stores.base import StoreError
from writech.stores.urls import ServerUrl

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_BACKOFF: Final = 30.0


@dataclass(frozen=True)
class Retrying:
    """How one store retries its requests (see the module's docstring)."""

    store: str  # the store's name: "ClickHouse", "MySQL" (lower case in metric labels)
    target: str  # the server as messages name it, credentials masked
    secrets: tuple[str, ...]
    error: type[StoreError]
    failures: type[Exception] | tuple[type[Exception], ...]  # what a request may raise
    is_transient: Callable[[Exception], bool]
    timeout: float  # seconds one network call may take
    deadline: float = 60.0
    first_backoff: float = 0.5

    @classmethod
    def for_url(
        cls,
        store: str,
        url: ServerUrl,
        settings: Settings,
        error: type[StoreError],
        failures: type[Exception] | tuple[type[Exception], ...],
        is_transient: Callable[[Exception], bool],
    ) -> Retrying:
        """The policy of the store at `url`, with the configured timeout and deadline."""
        return cls(
            store=store,
            target=f"{store} at {url.shown}",
            secrets=(url.password, *settings.secrets()),
            error=error,
            failures=failures,
            is_transient=is_transient,
            timeout=settings.store_timeout,
            deadline=settings.store_deadline,
        )

    def run(
        self, what: str, request: Callable[[], T], after_failure: Callable[[], None] = lambda: None
    ) -> T:
        """`request()`, tried again after a transient failure; `after_failure` runs after each."""
        attempt, backoff, failing_since = 1, self.first_backoff, None
        while True:
            started = time.monotonic()
            try:
                return request()
            except self.failures as failure:
                reason = redact(str(failure), self.secrets)
                after_failure()
                if not self.is_transient(failure):
                    raise self.error(f"{self.target}: {what} failed: {reason}") from None
                failing_since = failing_since or started
                now = time.monotonic()
                delay = random.uniform(backoff / 2, backoff)
                if now + delay - failing_since > self.deadline:
                    raise self.error(
                        f"{self.target}: {what} failed {attempt} time(s) over "
                        f"{now - failing_since:.0f} s (the deadline is {self.deadline:.0f} s, "
                        f"WRITECH_STORE_DEADLINE), last with: {reason}"
                    ) from None
                counters.STORE_RETRIES.labels(self.store.lower()).inc()
                log.warning(
                    "%s: %s failed (attempt %d), retrying in %.1f s: %s",
                    self.target, what, attempt, delay, reason,
                )  # fmt: skip
                time.sleep(delay)
                attempt, backoff = attempt + 1, min(backoff * 2, MAX_BACKOFF)
