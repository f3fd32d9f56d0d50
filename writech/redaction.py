"""One way to keep secrets out of every message: `redact`.

Settings (`Settings.redact`), logs (`writech.logs`) and the stores' errors
all pass text through it. It masks each known secret wherever it appears,
and the credentials of any URL in the text, whatever the URL's shape: a
password holding an unencoded `/`, `#`, `?` or `@` is masked whole, since
everything between `://` and the last `@` before the host is treated as
credentials.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Final

MASK: Final = "***"

# scheme://user:secret@host: `secret` may hold any character but whitespace
# and quotes, unencoded `@` included (the last `@` before a host ends it).
#
# This used to be one regex, re.sub'd with `\g<scheme>\g<user>:***@`:
#   (?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s'"]*):[^\s'"]*@
#   (?=[^@\s'"]*$|[^@\s'"]*[\s'"])
# It backtracks quadratically: every start position rescans the rest of a run
# of non-space characters, so `"a" * 200_000` took 40 s. `writech serve` logs
# each request's URL through `redact`, so one long URL blocked its event loop
# for every client. The scan below gives the same output for every text in
# linear time, with str.find/rfind and character-class searches that cannot
# backtrack. What the regex did, worked out:
# - a match lies within a "run": characters that are neither whitespace
#   (Unicode `\s`) nor quotes; it ends at the run's LAST `@` (nothing after
#   that `@` is another `@` before the run ends), so a run has at most one match;
# - it starts at the leftmost letter from which `[A-Za-z0-9+.-]*` reaches a
#   `://` (scheme characters cannot hold `:`, so each `://` has one candidate:
#   the first letter of the scheme characters just before it), and only if the
#   first `:`, `@` or `/` after that `://` is a `:` (the end of the user), before
#   that last `@`; otherwise the next `://` of the run is tried;
# - `scheme://user:` is kept, everything from there to the last `@` is masked.
_SCHEME_CHARACTERS: Final = string.ascii_letters + string.digits + "+.-"
_NOT_A_SCHEME_START: Final = string.digits + "+.-"
_RUN_END: Final = re.compile(r"[\s'\"]")
_USER_END: Final = re.compile(r"[:@/]")


def url_password(url: str) -> str:
    """The password of `scheme://user:password@host...` as written (encoded or not), else ""."""
    _, separator, rest = url.partition("://")
    credentials, at, _ = rest.rpartition("@")
    return credentials.partition(":")[2] if separator and at else ""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret in `secrets` and every URL password replaced by `***`."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _mask_url_credentials(text)


def _mask_url_credentials(text: str) -> str:
    """`text` with `scheme://user:credentials@` masked as `scheme://user:***@` (see above).

    Linear: each character is scanned a bounded number of times, since the scans
    between `://`s, between runs and up to a user's end never overlap.
    """
    separator = text.find("://")
    if separator < 0:
        return text
    pieces: list[str] = []
    kept = 0  # text[:kept] is in `pieces`
    scanned = 0  # where the scheme before the next `://` may start, at the earliest
    while separator >= 0:
        run_end_match = _RUN_END.search(text, separator)
        run_end = run_end_match.start() if run_end_match else len(text)
        last_at = text.rfind("@", separator + 3, run_end)
        while separator >= 0 and last_at >= 0:
            before = text[scanned:separator]
            scheme = before[len(before.rstrip(_SCHEME_CHARACTERS)) :].lstrip(_NOT_A_SCHEME_START)
            user_end = _USER_END.search(text, separator + 3, last_at + 1) if scheme else None
            if user_end and user_end.group() == ":":
                pieces += (text[kept : user_end.end()], MASK)
                kept = last_at
                break
            scanned = separator + 3
            separator = text.find("://", scanned, last_at)
        scanned = run_end
        separator = text.find("://", run_end)
    pieces.append(text[kept:])
    return "".join(pieces)
