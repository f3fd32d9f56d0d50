"""Who may sign in to `writech serve`, and which school each one sees.

The access file is TOML, one table per user:

    [users.wang-laoshi]
    school = "school-000"
    password = "scrypt$16384$8$1$<salt>$<key>"   # from `writech serve --hash-password`

Browsers sign in with HTTP Basic authentication (over TLS, which the
Ingress or gateway in front of the app provides). Passwords are stored
only as scrypt keys (standard library, memory-hard); a successful check is
remembered under an HMAC of the credentials with a key that lives only in
this process, so the board's refresh every few seconds costs no scrypt.
The file is read again when it changes (a Kubernetes Secret updated in
place); a changed file that does not parse is refused with a logged error
and the previous one stays in force.

Failed sign-ins are throttled by user name (`FailedSignIns`): after a few
in a row, the name's checks wait, twice as long after each further
failure, so that guessing a password takes years, not minutes. Every
check of a waiting name is refused, remembered ones too: otherwise the
remembered checks, which cost nothing, would answer guesses at any rate.
A browser that signed in before is not held up, so that nobody can lock a
teacher out of the live board by failing as them: a successful sign-in
gives it a session mark (`session_mark`, a cookie), an HMAC of the user
name under the key stored for the user's password. Every replica reading
the same access file knows it, no one without the file can make it, a
new password voids it, and with it the password is still checked (only
not throttled).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import msgspec
from msgspec import Meta

SCHEME: Final = "scrypt"
# scrypt's cost: about 16 MiB and some 50 ms a check, per RFC 7914's advice
# for interactive logins.
COST: Final = 1 << 14
BLOCK_SIZE: Final = 8
PARALLELISM: Final = 1
_KEY_BYTES: Final = 32
_SALT_BYTES: Final = 16
# Stored parameters are bounded, so that a mistyped file cannot ask for
# gigabytes of memory per sign-in: scrypt takes 128 * N * r bytes, up to
# 64 MiB here (four times the default), for each of `_CHECKS_AT_ONCE`.
_MAX_MEMORY: Final = 64 << 20
_MAX_PARALLELISM: Final = 16
_REMEMBERED: Final = 1024  # successful checks kept; forgotten all at once when full
# scrypt checks at once: each takes 16 MiB, and a burst of wrong passwords
# must not take the memory of the whole process. Checks waiting for one are
# bounded too: each holds one of the server's request threads, and 150 wrong
# passwords at once held a signed-in teacher's board for 3.4 s.
_CHECKS_AT_ONCE: Final = 4
_CHECKS_WAITING: Final = 12
# Failed sign-ins by one user name before its checks wait; then the wait,
# doubling after each further failure up to its ceiling; and how many names
# are followed at once (a flood of made-up names cannot take the memory).
FREE_FAILURES: Final = 5
FIRST_WAIT: Final = 1.0
LONGEST_WAIT: Final = 900.0
_FOLLOWED_NAMES: Final = 10_000

log = logging.getLogger(__name__)


class AccessError(ValueError):
    """The access file cannot be used; the message says why, never a password."""


class Throttled(Exception):
    """Too many failed sign-ins by this user name: the next check waits `retry_after` seconds."""

    def __init__(self, retry_after: float, why: str = "too many failed sign-ins") -> None:
        super().__init__(f"{why}; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class User:
    """A signed-in user: their name in the access file and the one school they see."""

    name: str
    school: str


@dataclass(frozen=True)
class PasswordHash:
    cost: int
    block_size: int
    parallelism: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """`scrypt$N$r$p$salt$key` (salt and key in base64)."""
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise AccessError(f"not a {SCHEME}$N$r$p$salt$key password hash")
        try:
            cost, block_size, parallelism = (int(part) for part in parts[1:4])
            salt, key = (base64.b64decode(part, validate=True) for part in parts[4:])
        except (ValueError, binascii.Error):
            raise AccessError("a password hash has a malformed number or base64 part") from None
        if not (
            cost > 1
            and cost & (cost - 1) == 0
            and block_size >= 1
            and 128 * cost * block_size <= _MAX_MEMORY
            and 1 <= parallelism <= _MAX_PARALLELISM
            and salt
            and 16 <= len(key) <= _KEY_BYTES  # a longer key could never match
        ):
            raise AccessError("a password hash has parameters out of range")
        return cls(cost, block_size, parallelism, salt, key)

    def __str__(self) -> str:
        encoded = (base64.b64encode(part).decode() for part in (self.salt, self.key))
        return "$".join(
            (SCHEME, str(self.cost), str(self.block_size), str(self.parallelism), *encoded)
        )

    def matches(self, password: str) -> bool:
        derived = _scrypt(password, self.salt, self.cost, self.block_size, self.parallelism)
        return hmac.compare_digest(derived[: len(self.key)], self.key)


def _scrypt(password: str, salt: bytes, cost: int, block_size: int, parallelism: int) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost,
        r=block_size,
        p=parallelism,
        maxmem=2 * 128 * cost * block_size * parallelism + (1 << 20),
        dklen=_KEY_BYTES,
    )


def hash_password(
    password: str,
    *,
    cost: int = COST,
    block_size: int = BLOCK_SIZE,
    parallelism: int = PARALLELISM,
) -> str:
    """The access file's form of `password`, with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, cost, block_size, parallelism)
    return str(PasswordHash(cost, block_size, parallelism, salt, key))


# -- the file ----------------------------------------------------------------

SchoolId = Annotated[str, Meta(min_length=1)]


class _Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    school: SchoolId
    password: str


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    users: dict[str, _Entry] = {}


@dataclass(frozen=True)
class _Account:
    user: User
    password: PasswordHash


def parse_access(text: str) -> dict[str, _Account]:
    """The accounts an access file's text defines; `AccessError` if any part is wrong."""
    try:
        table = msgspec.convert(tomllib.loads(text), _File)
    except tomllib.TOMLDecodeError as exc:
        raise AccessError(f"not TOML: {exc}") from None
    except msgspec.ValidationError as exc:
        raise AccessError(str(exc)) from None
    if not table.users:
        raise AccessError("no [users.NAME] table: nobody could sign in")
    accounts = {}
    for name, entry in table.users.items():
        if not name or ":" in name or any(character.isspace() for character in name):
            # Basic authentication cannot carry a colon in a user name
            raise AccessError(f"users.{name!r}: a user name holds no colon or space")
        try:
            password = PasswordHash.parse(entry.password)
        except AccessError as exc:
            raise AccessError(f"users.{name}.password: {exc}") from None
        accounts[name] = _Account(User(name, entry.school), password)
    return accounts


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """The (user, password) of an `Authorization: Basic ...` header, None if it is not one."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:  # not base64 (a header may carry any byte), or not UTF-8
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class FailedSignIns:
    """Failed sign-ins in a row by user name, and until when each name's checks wait.

    Names that do not exist are followed like those that do, so that the
    throttle does not tell who exists. A check refused while a name waits
    is not a failure: it does not lengthen the wait.

    A check is reserved (`reserved`) while the password is checked: of a name's checks running at once, no more may fail than
    would have been checked one after the other before it waits (its free
    failures left, and the one that starts the wait); past those, one. Checking
    the wait and recording the failure apart let 45 of 60 guesses sent at
    once be checked.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # name -> (in a row, wait until)
        self._running: dict[str, int] = {}  # name -> checks reserved and not ended

    def check(self, name: str) -> None:
        """Raise `Throttled` while `name` waits."""
        wait = self._failures.get(name, (0, 0.0))[1] - self._clock()
        if wait > 0:
            raise Throttled(wait)

    @contextmanager
    def reserved(self, name: str) -> Iterator[None]:
        """A check of `name`'s password, reserved for the block; `Throttled` while the
        name waits, or while as many of its checks run as may fail before it would wait."""
        with self._lock:
            self.check(name)
            failures = self._failures.get(name, (0, 0.0))[0]
            running = self._running.get(name, 0)
            if running >= max(FREE_FAILURES + 1 - failures, 1):
                raise Throttled(FIRST_WAIT)
            self._running[name] = running + 1
        try:
            yield
        finally:
            with self._lock:
                running = self._running.pop(name) - 1
                if running:
                    self._running[name] = running

    def failed(self, name: str) -> None:
        """One more failure of `name`; past `FREE_FAILURES` in a row, its checks wait."""
        with self._lock:
            now = self._clock()
            if name not in self._failures and len(self._failures) >= _FOLLOWED_NAMES:
                self._make_room(now)
            failures = self._failures.get(name, (0, 0.0))[0] + 1
            beyond = failures - FREE_FAILURES
            wait = min(FIRST_WAIT * 2 ** (beyond - 1), LONGEST_WAIT) if beyond > 0 else 0.0
            self._failures[name] = (failures, now + wait)
        if wait:
            log.warning(
                "sign-in as %r failed %d times in a row; its next check waits %.0f s",
                name,
                failures,
                wait,
            )

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)

    def _make_room(self, now: float) -> None:
        """The table is full: forget the names not waiting now (each starts over), and if
        all of them wait, the half whose waits end first. Never all at once: a flood of
        made-up names would end the growing wait of the name it hides."""
        followed = {name: entry for name, entry in self._failures.items() if entry[1] > now}
        if len(followed) >= _FOLLOWED_NAMES:
            latest = sorted(followed.items(), key=lambda item: item[1][1])[len(followed) // 2 :]
            followed = dict(latest)
        self._failures = followed

    def clear(self) -> None:
        """Every name starts over (the access file changed: passwords may have been reset)."""
        with self._lock:
            self._failures = {}


class AccessFile:
    """The access file at `path`, read again whenever it changes."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.failures = FailedSignIns(clock)
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(_CHECKS_AT_ONCE)
        self._admitted = threading.BoundedSemaphore(_CHECKS_AT_ONCE + _CHECKS_WAITING)
        self._remember_key = secrets.token_bytes(32)
        self._remembered: dict[bytes, User] = {}
        # A hash to check unknown names against, so that they take as long
        # as known ones: the time of an answer does not tell who exists.
        self._decoy = PasswordHash.parse(hash_password(secrets.token_urlsafe()))
        self._stamp, self._accounts = self._read()

    def _read(self) -> tuple[tuple[int, int, int], dict[str, _Account]]:
        try:
            status = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AccessError(f"cannot read the access file {self.path}: {exc}") from None
        try:
            accounts = parse_access(text)
        except AccessError as exc:
            raise AccessError(f"the access file {self.path}: {exc}") from None
        return (status.st_mtime_ns, status.st_size, status.st_ino), accounts

    def _current(self) -> dict[str, _Account]:
        """The accounts, re-read first if the file changed since it was last read."""
        try:
            status = os.stat(self.path)
        except OSError:
            return self._accounts  # being replaced: the previous file stays in force
        if (status.st_mtime_ns, status.st_size, status.st_ino) == self._stamp:
            return self._accounts
        with self._lock:
            try:
                self._stamp, accounts = self._read()
            except AccessError as exc:
                log.error("%s; the previous access file stays in force", exc)
                return self._accounts
            self._accounts = accounts
            self._remembered = {}
            self.failures.clear()
        return accounts

    def authenticate(self, authorization: str, session: str = "") -> User | None:
        """The user an `Authorization` header signs in, None if it signs in nobody.

        Raises `Throttled` while the name waits after failed sign-ins, unless
        `session` is the name's session mark (`session_mark`).
        """
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        name, password = credentials
        accounts = self._current()
        account = accounts.get(name)
        signed_in = account is not None and hmac.compare_digest(
            session.encode(), _mark(account).encode()
        )
        if not signed_in:
            self.failures.check(name)
        remembered_as = hmac.digest(self._remember_key, f"{name}\0{password}".encode(), "sha256")
        user = self._remembered.get(remembered_as)
        if user is not None:
            return user
        with nullcontext() if signed_in else self.failures.reserved(name):
            return self._check(accounts, account, name, password, remembered_as)

    def _check(
        self,
        accounts: dict[str, _Account],
        account: _Account | None,
        name: str,
        password: str,
        remembered_as: bytes,
    ) -> User | None:
        """Check `password` against `account`'s hash (or the decoy), noting the outcome."""
        if not self._admitted.acquire(blocking=False):
            raise Throttled(FIRST_WAIT, "many sign-ins are being checked just now")
        try:
            with self._checks:
                matches = (account.password if account else self._decoy).matches(password)
        finally:
            self._admitted.release()
        if account is None or not matches:
            self.failures.failed(name)
            return None
        self.failures.succeeded(name)
        with self._lock:
            if accounts is self._accounts:  # not re-read meanwhile
                if len(self._remembered) >= _REMEMBERED:
                    self._remembered = {}
                self._remembered[remembered_as] = account.user
        return account.user

    def session_mark(self, name: str) -> str:
        """The session mark of user `name` ("" if there is no such user)."""
        account = self._current().get(name)
        return _mark(account) if account else ""


def _mark(account: _Account) -> str:
    return hmac.digest(
        account.password.key, b"writech session\0" + account.user.name.encode(), "sha256"
    ).hex()
