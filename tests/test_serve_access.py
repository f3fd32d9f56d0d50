"""The web app's access file: scrypt password hashes, the TOML format, Basic credentials,
signing in, and re-reading the file when it changes."""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writech.serve import access
from writech.serve.access import (
    FIRST_WAIT,
    FREE_FAILURES,
    LONGEST_WAIT,
    AccessError,
    AccessFile,
    FailedSignIns,
    PasswordHash,
    Throttled,
    User,
    basic_credentials,
    hash_password,
    parse_access,
)

# A cheap cost keeps the tests fast; the default is checked once below.
CHEAP = {"cost": 16, "block_size": 1}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def access_text(users: dict[str, tuple[str, str]]) -> str:
    return "".join(
        f'[users."{name}"]\nschool = "{school}"\npassword = "{hash_password(password, **CHEAP)}"\n'
        for name, (school, password) in users.items()
    )


@settings(max_examples=30)
@given(st.text(min_size=1), st.text(min_size=1))
def test_a_hash_matches_its_password_only(password: str, other: str) -> None:
    stored = PasswordHash.parse(hash_password(password, **CHEAP))
    assert stored.matches(password)
    assert stored.matches(other) == (other == password)
    assert str(stored) == str(PasswordHash.parse(str(stored)))


def test_default_cost_hash() -> None:
    text = hash_password("correct horse")
    assert text.startswith("scrypt$16384$8$1$")
    assert PasswordHash.parse(text).matches("correct horse")
    assert hash_password("correct horse") != text  # a fresh salt each time


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain-password",
        "bcrypt$16384$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$16384$8$1$not base64$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$1000$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",  # not a power of two
        f"scrypt${1 << 24}$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",  # gigabytes per check
        "scrypt$16384$8$1$c2FsdA==$c2hvcnQ=",  # a key too short to mean anything
        f"scrypt${1 << 20}$32$16$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",  # 4 GiB per check
        f"scrypt${1 << 17}$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",  # 128 MiB per check
        # a key longer than scrypt's output here could never match
        f"scrypt$16384$8$1$c2FsdA==${base64.b64encode(bytes(33)).decode()}",
        "scrypt$16384$eight$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",
    ],
)
def test_malformed_hashes_are_refused(text: str) -> None:
    with pytest.raises(AccessError):
        PasswordHash.parse(text)


def test_the_costliest_hash_taken_asks_for_64_mib() -> None:
    key = base64.b64encode(bytes(32)).decode()
    costliest = PasswordHash.parse(f"scrypt${1 << 16}$8$16$c2FsdA==${key}")
    assert 128 * costliest.cost * costliest.block_size == 64 << 20


@given(st.text().filter(lambda name: ":" not in name), st.text())
def test_basic_credentials_round_trip(user: str, password: str) -> None:
    assert basic_credentials(basic(user, password)) == (user, password)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer abc", "Basic", "Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"nocolon").decode(),
     "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
     # bytes a header may carry that base64 does not (a server hands them over as Latin-1)
     "Basic \xff\xfe", "Basic éé=="],
)  # fmt: skip
def test_other_headers_are_no_credentials(header: str) -> None:
    assert basic_credentials(header) is None


def test_the_file_names_users_and_their_school() -> None:
    accounts = parse_access(access_text({"wang": ("school-000", "a"), "li": ("school-001", "b")}))
    assert {name: account.user for name, account in accounts.items()} == {
        "wang": User("wang", "school-000"),
        "li": User("li", "school-001"),
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("users = [", "not TOML"),
        ("", "nobody could sign in"),
        ('[users.wang]\nschool = "s"\n', "password"),
        ('[users.wang]\npassword = "x"\n', "school"),
        ('[users.wang]\nschool = ""\npassword = "x"\n', "school"),
        ('[users."a:b"]\nschool = "s"\npassword = "x"\n', "a:b"),
        ('[users.wang]\nschool = "s"\npassword = "x"\nrole = "admin"\n', "role"),
        ('[users.wang]\nschool = "s"\npassword = "plain"\n', "users.wang.password"),
        ('[tokens.wang]\nschool = "s"\n', "tokens"),
    ],
)
def test_a_wrong_file_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(AccessError, match=says.replace(".", r"\.")):
        parse_access(text)


def test_passwords_never_appear_in_errors() -> None:
    with pytest.raises(AccessError) as raised:
        parse_access('[users.wang]\nschool = "s"\npassword = "hunter2-plain"\n')
    assert "hunter2" not in str(raised.value)


def write(path: Path, text: str) -> None:
    """Replace the file as Kubernetes updates a Secret: a new file moved in place."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_sign_in(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "pass word:1")}))
    users = AccessFile(path)
    assert users.authenticate(basic("wang", "pass word:1")) == User("wang", "school-000")
    assert users.authenticate(basic("wang", "pass word:2")) is None
    assert users.authenticate(basic("nobody", "pass word:1")) is None
    assert users.authenticate("") is None


def test_a_successful_check_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "secret")}))
    users = AccessFile(path)
    calls = []
    scrypt = access._scrypt

    def counted(*args: Any) -> bytes:
        calls.append(args)
        return scrypt(*args)

    monkeypatch.setattr(access, "_scrypt", counted)
    for _ in range(3):
        assert users.authenticate(basic("wang", "secret")) is not None
    assert len(calls) == 1
    for _ in range(2):  # failures are never remembered: each costs a check
        assert users.authenticate(basic("wang", "wrong")) is None
    assert len(calls) == 3


def test_a_changed_file_is_read_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "old")}))
    users = AccessFile(path)
    assert users.authenticate(basic("wang", "old")) is not None

    write(path, access_text({"wang": ("school-001", "new"), "li": ("school-000", "li")}))
    assert users.authenticate(basic("wang", "old")) is None  # also forgotten when remembered
    assert users.authenticate(basic("wang", "new")) == User("wang", "school-001")
    assert users.authenticate(basic("li", "li")) == User("li", "school-000")

    # a broken file is refused, logged, and the previous one stays in force
    with caplog.at_level(logging.ERROR, logger="writech.serve.access"):
        write(path, "[users.wang\n")
        assert users.authenticate(basic("wang", "new")) == User("wang", "school-001")
    assert "the previous access file stays in force" in caplog.text


def test_an_unreadable_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(AccessError, match="cannot read"):
        AccessFile(tmp_path / "missing.toml")


# -- failed sign-ins -------------------------------------------------------------


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counted_checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    scrypt = access._scrypt

    def counted(*args: Any) -> bytes:
        calls.append(args)
        return scrypt(*args)

    monkeypatch.setattr(access, "_scrypt", counted)
    return calls


def test_failed_sign_ins_wait_twice_as_long_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "secret")}))
    clock = Clock()
    users = AccessFile(path, clock=clock)
    checks = counted_checks(monkeypatch)
    for name in ("wang", "nobody"):  # a name that does not exist waits alike
        for _ in range(FREE_FAILURES):
            assert users.authenticate(basic(name, "guess")) is None
        waits = []
        for _ in range(14):
            with caplog.at_level(logging.WARNING, logger="writech.serve.access"):
                assert users.authenticate(basic(name, "guess")) is None
            with pytest.raises(Throttled) as throttled:
                users.authenticate(basic(name, "secret"))  # the right one too, unchecked
            with pytest.raises(Throttled):
                users.authenticate(basic(name, "guess"))  # refused: the wait does not grow
            waits.append(throttled.value.retry_after)
            clock.now += throttled.value.retry_after
        assert waits == [FIRST_WAIT * 2**n for n in range(10)] + [LONGEST_WAIT] * 4
        assert len(checks) == FREE_FAILURES + 14  # no scrypt while waiting
        checks.clear()
    assert "sign-in as 'wang' failed 6 times in a row; its next check waits 1 s" in caplog.text
    assert "guess" not in caplog.text
    assert "secret" not in caplog.text
    # the right password once the wait is over: signed in, and the name starts over
    assert users.authenticate(basic("wang", "secret")) == User("wang", "school-000")
    for _ in range(FREE_FAILURES):
        assert users.authenticate(basic("wang", "guess")) is None
    assert users.authenticate(basic("wang", "secret")) == User("wang", "school-000")


def test_a_signed_in_browser_is_not_held_up_by_someone_elses_failures(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "secret"), "li": ("school-000", "li")}))
    clock = Clock()
    users = AccessFile(path, clock=clock)
    mark = users.session_mark("wang")
    assert mark
    assert mark != users.session_mark("li")
    assert users.session_mark("nobody") == ""
    assert users.authenticate(basic("wang", "secret")) is not None  # remembered now
    for _ in range(FREE_FAILURES + 1):
        users.authenticate(basic("wang", "guess"))
    assert users.authenticate(basic("wang", "secret"), mark) == User("wang", "school-000")
    for password, session in (("secret", ""), ("secret", "x" * 64), ("secret", "é")):
        with pytest.raises(Throttled):  # remembered, but without the mark: it answers no guess
            users.authenticate(basic("wang", password), session)
    with pytest.raises(Throttled):  # another user's mark does not open this name
        users.authenticate(basic("wang", "secret"), users.session_mark("li"))
    # with the mark the password is still checked, only not held up
    assert users.authenticate(basic("wang", "guess"), mark) is None
    # another replica, reading the same access file, knows the mark
    replica = AccessFile(path, clock=clock)
    assert replica.session_mark("wang") == mark
    for _ in range(FREE_FAILURES + 1):
        replica.authenticate(basic("wang", "guess"))
    assert replica.authenticate(basic("wang", "secret"), mark) == User("wang", "school-000")
    # a new password (a changed access file) voids the mark, and every name starts over
    write(path, access_text({"wang": ("school-000", "new")}))
    assert users.session_mark("wang") != mark
    assert users.authenticate(basic("wang", "new")) == User("wang", "school-000")


def held_checks(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[None]]:
    """Password checks held until the event is set; each notes itself in the list."""
    release = threading.Event()
    entered: list[None] = []
    scrypt = access._scrypt

    def held(*args: Any) -> bytes:
        entered.append(None)
        release.wait(30)
        return scrypt(*args)

    monkeypatch.setattr(access, "_scrypt", held)
    return release, entered


def test_guesses_sent_at_once_are_checked_no_more_than_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking the wait and noting the failure apart let nearly every guess of a burst
    through: each found no failure noted yet."""
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "secret")}))
    clock = Clock()
    monkeypatch.setattr(access, "_CHECKS_AT_ONCE", 64)
    users = AccessFile(path, clock=clock)
    release, entered = held_checks(monkeypatch)

    def burst(count: int) -> tuple[int, int]:
        """`count` wrong guesses at once, each check held until all have begun:
        (checked, refused)."""
        outcomes: list[str] = []

        def guess() -> None:
            try:
                users.authenticate(basic("wang", "guess"))
                outcomes.append("checked")
            except Throttled:
                outcomes.append("refused")

        entered.clear()
        threads = [threading.Thread(target=guess) for _ in range(count)]
        for thread in threads:
            thread.start()
        while len(outcomes) + len(entered) < count:  # each refused, or inside its check
            time.sleep(0.01)
        release.set()
        for thread in threads:
            thread.join(30)
        release.clear()
        return outcomes.count("checked"), outcomes.count("refused")

    # one after the other, FREE_FAILURES + 1 guesses are checked before the name waits
    assert burst(20) == (FREE_FAILURES + 1, 20 - FREE_FAILURES - 1)
    with pytest.raises(Throttled):  # the failures are noted: the name waits
        users.authenticate(basic("wang", "secret"))
    clock.now += FIRST_WAIT
    assert burst(20) == (1, 19)  # past its free failures, one check at a time
    clock.now += LONGEST_WAIT
    release.set()
    assert users.authenticate(basic("wang", "secret")) == User("wang", "school-000")


def test_beyond_the_checks_that_may_wait_a_sign_in_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each check waiting for scrypt holds a request thread of the server: a flood of
    wrong passwords under many names must not hold them all."""
    path = tmp_path / "access.toml"
    write(path, access_text({"wang": ("school-000", "secret")}))
    users = AccessFile(path, clock=Clock())
    release, entered = held_checks(monkeypatch)
    outcomes: list[str] = []

    def guess(name: str) -> None:
        try:
            users.authenticate(basic(name, "guess"))
            outcomes.append("checked")
        except Throttled as refused:
            outcomes.append(str(refused))

    admitted = access._CHECKS_AT_ONCE + access._CHECKS_WAITING
    threads = [threading.Thread(target=guess, args=(f"made-up-{n}",)) for n in range(40)]
    for thread in threads:
        thread.start()
    while len(outcomes) < 40 - admitted or len(entered) < access._CHECKS_AT_ONCE:
        time.sleep(0.01)
    assert outcomes == ["many sign-ins are being checked just now; try again in 1 s"] * (
        40 - admitted
    )
    release.set()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("checked") == admitted
    assert users.authenticate(basic("wang", "secret")) == User("wang", "school-000")


def test_a_flood_of_made_up_names_does_not_end_a_names_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(access, "_FOLLOWED_NAMES", 4)
    clock = Clock()
    failures = FailedSignIns(clock)
    for _ in range(FREE_FAILURES + 8):  # the name under attack: a long wait
        failures.failed("wang")
    for flood in range(100):  # made-up names, each failing until it waits
        for _ in range(FREE_FAILURES + 1):
            failures.failed(f"made-up-{flood}")
        assert len(failures._failures) <= 4
    with pytest.raises(Throttled) as throttled:
        failures.check("wang")
    assert throttled.value.retry_after == FIRST_WAIT * 2**7


def test_the_names_followed_stay_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "_FOLLOWED_NAMES", 3)
    clock = Clock()
    failures = FailedSignIns(clock)
    for _ in range(FREE_FAILURES + 1):
        failures.failed("waiting")
    for name in ("a", "b", "c", "d"):
        failures.failed(name)
    with pytest.raises(Throttled):  # names not waiting were forgotten first
        failures.check("waiting")
    assert len(failures._failures) <= 3
    for name in ("e", "f", "g", "h"):
        for _ in range(FREE_FAILURES + 1):
            failures.failed(name)
    assert len(failures._failures) <= 3
