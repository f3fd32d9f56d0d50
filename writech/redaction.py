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
from collections.abc import Iterable
from typing import Final

MASK: Final = "***"

# scheme://user:secret@host: `secret` may hold any character but whitespace
# and quotes, unencoded `@` included (the last `@` before a host ends it).
_URL_CREDENTIALS: Final = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s'\"]*):[^\s'\"]*@(?=[^@\s'\"]*$|[^@\s'\"]*[\s'\"])"
)


def url_password(url: str) -> str:
    """The password of `scheme://user:password@host...` as written (encoded or not), else ""."""
    _, separator, rest = url.partition("://")
    credentials, at, _ = rest.rpartition("@")
    return credentials.partition(":")[2] if separator and at else ""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret in `secrets` and every URL password replaced by `***`."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{MASK}@", text)
