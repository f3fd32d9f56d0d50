"""The web app's access file: scrypt password hashes, the TOML format, Basic credentials,
signing in, and re-reading the file when it changes."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writech.serve import access
from writech.serve.access import (
    AccessError,
    AccessFile,
    PasswordHash,
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
        "scrypt$16384$eight$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5",
    ],
)
def test_malformed_hashes_are_refused(text: str) -> None:
    with pytest.raises(AccessError):
        PasswordHash.parse(text)


@given(st.text().filter(lambda name: ":" not in name), st.text())
def test_basic_credentials_round_trip(user: str, password: str) -> None:
    assert basic_credentials(basic(user, password)) == (user, password)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer abc", "Basic", "Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"nocolon").decode(),
     "Basic " + base64.b64encode(b"\xff\xfe:x").decode()],
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
