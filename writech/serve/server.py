"""The HTTP server under the app: uvicorn, logging as the rest of `writech` does."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


def run(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` until SIGTERM or Ctrl-C."""
    # log_config=None: the process's logging (JSON lines, secrets redacted) stays
    config = uvicorn.Config(app, host=host, port=port, log_config=None, server_header=False)
    logging.getLogger("uvicorn.error").addFilter(_plain_message)
    _Server(config).run()


def _plain_message(record: logging.LogRecord) -> bool:
    """Drop uvicorn's ANSI-coloured copy of a message: the logs keep the plain one."""
    record.__dict__.pop("color_message", None)
    return True


class _Server(uvicorn.Server):
    """uvicorn, stopping on SIGTERM or Ctrl-C and only that.

    uvicorn's own handling raises the signal again once it has stopped, for
    the handlers it replaced: those of the `writech` command, which end a
    dataflow's input and say how to resume it. A stopped server has nothing
    to resume, so the signal ends here.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {
            number: signal.signal(number, self.handle_exit)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
