"""Bounded retries with exponential backoff, shared by the server stores."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrying:
    """How a store retries: `attempts` tries, waiting `first_backoff` seconds
    after the first failure and twice as long after each next one (at most 30 s).

    `target` names the server in messages (never with its password);
    `redact` masks secrets in the errors' texts; `error` is the exception
    type raised when a request fails for good.
    """

    target: str
    error: type[Exception]
    redact: Callable[[str], str]
    attempts: int = 6
    first_backoff: float = 0.5

    def run(
        self,
        what: str,
        request: Callable[[], T],
        failures: type[Exception] | tuple[type[Exception], ...],
        is_transient: Callable[[Exception], bool],
        after_failure: Callable[[], None] = lambda: None,
    ) -> T:
        """`request()`, tried again after a transient failure; `after_failure` runs after each."""
        attempt, delay = 1, self.first_backoff
        while True:
            try:
                return request()
            except failures as failure:
                reason = self.redact(str(failure))
                after_failure()
                if not is_transient(failure):
                    raise self.error(f"{self.target}: {what} failed: {reason}") from None
                if attempt == self.attempts:
                    raise self.error(
                        f"{self.target}: {what} failed {attempt} times, last with: {reason}"
                    ) from None
                log.warning(
                    "%s: %s failed (attempt %d of %d), retrying in %.1f s: %s",
                    self.target, what, attempt, self.attempts, delay, reason,
                )  # fmt: skip
                time.sleep(delay)
                attempt, delay = attempt + 1, min(delay * 2, 30.0)
