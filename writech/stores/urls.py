"""Server URLs (`WRITECH_CLICKHOUSE_URL`, `WRITECH_MYSQL_URL`), read without ever echoing a password.

`scheme://user:password@host:port/path?name=value`. The standard parser
takes an unencoded `/`, `#` or `?` in a password for the end of the host
(and then the password for a port, quoted in its error): generated
passwords hold such characters. Here the credentials are everything
between `://` and the last `@`; a password holding a character that must
be percent-encoded is refused with a message that says so and never shows
it. A password may also come from its own setting (`WRITECH_*_PASSWORD`,
or `_FILE`), where it needs no encoding.

The port and the files a URL names (TLS certificates and keys) are
checked here too: a port out of range or a certificate that cannot be
read is a setting to fix, said in one line at start, not a connection
error retried until the deadline.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote

from writech.redaction import MASK
from writech.settings import SettingsError

# What must be percent-encoded in a URL's credentials (RFC 3986 userinfo).
_RESERVED: Final = re.compile(r"[/?#@\[\]\s]")
_PORT: Final = re.compile(r"[0-9]{1,5}")  # ASCII digits: str.isdigit() takes "²" too
_HOST_PORT: Final = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[^/?#]*))?"
)


@dataclass(frozen=True)
class ServerUrl:
    """A parsed server URL; `password` is decoded, and never part of `shown`."""

    setting: str  # the variable it came from, for messages
    scheme: str
    username: str
    password: str = field(repr=False)
    host: str
    port: int
    path: str  # without the leading "/", decoded
    parameters: dict[str, str]

    @property
    def shown(self) -> str:
        """The URL for messages: credentials masked, no parameters."""
        user = (
            f"{self.username}:{MASK}@"
            if self.password
            else (f"{self.username}@" if self.username else "")
        )
        path = f"/{self.path}" if self.path else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}{path}"


def parse_server_url(
    url: str,
    setting: str,
    shape: str,
    default_ports: dict[str, int],
    password: str = "",
    allowed_parameters: frozenset[str] = frozenset(),
    file_parameters: frozenset[str] = frozenset(),
    named_files: frozenset[str] = frozenset(),
) -> ServerUrl:
    """`url` as a `ServerUrl`; `password` (from its own setting) when the URL carries none.

    `shape` shows the expected form in messages; the parameters in
    `file_parameters` must name readable files, or one of `named_files`
    (values the client resolves itself, such as clickhouse-connect's
    "certifi"). Raises `SettingsError`
    naming `setting`, with the URL's credentials masked.
    """
    scheme, separator, rest = url.partition("://")
    example = shape
    if not separator or scheme not in default_ports:
        raise SettingsError(f"{setting}: expected {example}, got {_masked(url)!r}")
    credentials, at, location = rest.rpartition("@")
    username, _, secret = credentials.partition(":")
    if at and (_RESERVED.search(username) or _RESERVED.search(secret)):
        raise SettingsError(
            f"{setting}: the user or password holds a character that must be percent-encoded "
            "in a URL (one of / ? # @ [ ] or a space): encode it (/ as %2F, ? as %3F, # as %23, "
            f"@ as %40), or leave the password out of the URL and set {_password_setting(setting)} "
            f"(or {_password_setting(setting)}_FILE) instead; got {_masked(url)!r}"
        )
    host_end = min(
        (i for i in (location.find("/"), location.find("?")) if i >= 0), default=len(location)
    )
    address, remainder = location[:host_end], location[host_end:]
    match = _HOST_PORT.fullmatch(address)
    if match is None:
        raise SettingsError(f"{setting}: expected {example}, got {_masked(url)!r}")
    port_text = match["port"]
    if port_text is not None and not (_PORT.fullmatch(port_text) and 0 < int(port_text) < 65536):
        raise SettingsError(
            f"{setting}: the port must be a number from 1 to 65535, got {_masked(url)!r}"
        )
    path, _, query = remainder.partition("?")
    parameters = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(parameters) - allowed_parameters)
    if unknown:
        raise SettingsError(f"{setting}: unknown parameter(s) {', '.join(unknown)}")
    for name in sorted(file_parameters.intersection(parameters)):
        if parameters[name] not in named_files:
            _check_readable(setting, name, parameters[name])
    return ServerUrl(
        setting=setting,
        scheme=scheme,
        username=unquote(username),
        password=unquote(secret) if secret else password,
        host=match["host"].strip("[]"),
        port=int(port_text) if port_text else default_ports[scheme],
        path=unquote(path.strip("/")),
        parameters=parameters,
    )


def _check_readable(setting: str, parameter: str, path: str) -> None:
    """`SettingsError` unless `path` (the value of `parameter`) is a file this process can read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # stat first: opening a FIFO would block
            raise SettingsError(f"{setting}: {parameter} names {path!r}, which is not a file")
        with open(path, "rb"):
            pass
    except OSError as error:
        raise SettingsError(
            f"{setting}: {parameter} names {path!r}, which cannot be read ({error.strerror})"
        ) from None


def _masked(url: str) -> str:
    """`url` with everything between `://` and the last `@` masked but the user name.

    A URL whose `://` is mistyped (`http//u:pw@host`, `mysql:/u:pw@host`,
    `u:pw@host`) has its credentials masked from its first `:` on: whatever
    comes before it is a scheme or a user, never the password, and is shown,
    since it is what is wrong.
    """
    scheme, separator, rest = url.partition("://")
    credentials, at, location = (rest if separator else url).rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    if not separator:
        return f"{user}:{MASK}@{location}"
    return f"{scheme}://{user if not _RESERVED.search(user) else MASK}:{MASK}@{location}"


def _password_setting(setting: str) -> str:
    return setting.removesuffix("_URL") + "_PASSWORD"
