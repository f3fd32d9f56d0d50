"""`writech serve` over HTTP, on the bundled sample replayed into embedded stores, plus rows
of a second school (one of whose class ids the first school uses too): sign-in on every
page, no data of another school reachable, the board's numbers against the tables, the
reports made on request, the security headers, and nothing written to any store."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import pymysql
import pytest
import uvicorn

from tests.helpers import REPO
from tests.services.ports import free_port, wait_until
from tests.test_reports import clean_environment
from tests.test_sqlite import dated, record
from writech.reports.roster import parse_roster
from writech.reports.service import make_report
from writech.rows import TableRows
from writech.schema import (
    CLASS_MINUTE_STATS,
    ERROR_RECORD,
    STUDENT_DAILY_STATS,
    STUDENT_MINUTE_STATS,
)
from writech.serve import app
from writech.serve.access import FREE_FAILURES, AccessFile, hash_password
from writech.serve.app import (
    SESSION_COOKIE,
    Context,
    ReportSlots,
    create_app,
    path_id,
    read_only_connection,
    report_policy,
)
from writech.settings import Settings
from writech.stores.base import open_error_store
from writech.stores.chdb import open_store

SAMPLE = REPO / "writech" / "sample"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The board's clock: the sample's last school day, half a minute before its last window ends.
NOW = int(datetime(2026, 9, 10, 16, 59, 30, tzinfo=SHANGHAI).timestamp())
DAY = date(2026, 9, 10)
PASSWORD = "a long passphrase"
USERS = {"wang": "school-000", "bai": "school-b", "chen": "school-c"}
# Rows of a second school: its own class, and a class id the sample's school uses too.
SHARED = "class-shared"
# A class of a third school whose id holds what a URL path cannot carry as it is.
SLASHED = "3/2 %2F班"
WINDOW = NOW - NOW % 60 - 60


def days(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def daily_row(student: str, class_id: str, school: str) -> tuple[Any, ...]:
    return (
        student, days(DAY), "chinese", class_id, school, 1, 1, 80.0, 10, 100, 0, 0, 0.0,
        0, 0.0, 0.0, 0, [], 0, 0.0, 1, 1,
    )  # fmt: skip


def minute_measures(score: float, character: str) -> tuple[Any, ...]:
    # events, strokes, stroke-order count and mean, writing quality, homework, characters
    return (2, 30, 1, score, 0, 0.0, 0, [character], [1], [score], 2)


EXTRA_ROWS = [
    TableRows.from_rows(
        STUDENT_DAILY_STATS,
        [
            daily_row("stu-b-01", "class-b", "school-b"),
            daily_row("stu-b-02", SHARED, "school-b"),
            daily_row("stu-s-01", SHARED, "school-000"),
            daily_row("stu-c-01", SLASHED, "school-c"),
        ],
    ),
    TableRows.from_rows(
        STUDENT_MINUTE_STATS,
        [
            ("stu-b-02", SHARED, "school-b", WINDOW, 60, *minute_measures(40.0, "水")),
            ("stu-s-01", SHARED, "school-000", WINDOW, 60, *minute_measures(90.0, "火")),
            ("stu-c-01", SLASHED, "school-c", WINDOW, 60, *minute_measures(70.0, "木")),
        ],
    ),
    # class_minute_stats is keyed by (class_id, window_start): of two schools' rows
    # for one class id and minute, one would replace the other; the first school's stays
    TableRows.from_rows(
        CLASS_MINUTE_STATS,
        [
            (SHARED, "school-000", WINDOW, 60, 1, *minute_measures(90.0, "火")),
            (SLASHED, "school-c", WINDOW, 60, 1, *minute_measures(70.0, "木")),
        ],
    ),
]


# A wrong answer of the second school filed under a class id of the first, on a day
# before the sample's (error records have no TTL, and ids get used again).
OTHER_SCHOOLS_ERROR = dated(
    record("e-b-1", 0, student_id="stu-b-09", class_id="class-0000", school_id="school-b"),
    date(2026, 8, 3),
)


def write_access_file(path: Path, users: dict[str, str], password: str = PASSWORD) -> Path:
    path.write_text(
        "".join(
            f'[users.{name}]\nschool = "{school}"\npassword = "{hash_password(password)}"\n'
            for name, school in users.items()
        )
    )
    return path


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def get(url: str, user: str | None = None, password: str = PASSWORD, **headers: str) -> Reply:
    """GET `url`, signed in as `user` (Basic authentication); redirects are not followed."""
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=60) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


class ThreadedServer:
    """The app under uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 60, "the web app")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@dataclass
class Served:
    url: str
    data_dir: Path
    settings: Settings
    access: AccessFile
    context: Context


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    data_dir = root / "data"
    replay = subprocess.run(
        [sys.executable, "-m", "writech", "replay", str(SAMPLE / "events.jsonl.gz"),
         "--data-dir", str(data_dir), "-q"],
        capture_output=True, text=True, timeout=600, env=clean_environment(),
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    store = open_store(data_dir / "clickhouse")
    try:
        for rows in EXTRA_ROWS:
            store.insert(rows)
    finally:
        store.close()
    settings = Settings.from_env(
        {},
        data_dir=str(data_dir),
        serve_access_file=str(write_access_file(root / "access.toml", USERS)),
    )
    errors = open_error_store(settings)
    try:
        errors.insert(TableRows.from_rows(ERROR_RECORD, [OTHER_SCHOOLS_ERROR]))
    finally:
        errors.close()
    roster = parse_roster((SAMPLE / "roster.csv").read_text(encoding="utf-8"))
    # the sign-in throttle's clock stands still: a wait ends only when a test clears it
    access = AccessFile(settings.serve_access_file, clock=lambda: 0.0)
    context = Context(settings, access, roster, lambda: NOW)
    with ThreadedServer(create_app(context)) as server:
        yield Served(server.url, data_dir, settings, access, context)


def query(served: Served, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Read the tables directly (this process's chDB session, which the app shares)."""
    store = open_store(served.data_dir / "clickhouse")
    try:
        return store.query(sql, params)
    finally:
        store.close()


def test_the_app_serves_the_store_it_is_given_and_leaves_it_open(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `writech serve` opens the store before the server starts (to refuse a wrong one
    # in one line) and hands it over: a ClickHouse server then gets one client
    def second_store(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the app opened a store of its own")

    monkeypatch.setattr(app, "open_clickhouse", second_store)
    store = open_store(served.data_dir / "clickhouse")
    try:
        context = Context(served.settings, served.access, now=lambda: NOW, store=store)
        with ThreadedServer(create_app(context)) as server:
            reply = get(server.url + "/schools/school-000", user="wang")
            assert reply.status == 200
            assert "class-0000" in reply.body.decode()
        assert context.store is store  # the caller's to close, after the server
        assert store.query("SELECT count() AS n FROM writech.student_daily_stats", {})[0]["n"] > 0
    finally:
        store.close()


# -- signing in ----------------------------------------------------------------

PAGES = [
    "/",
    "/schools/school-000",
    "/classes/class-0000",
    "/classes/class-0000/board",
    "/classes/class-0000/board.json",
    "/reports/class/class-0000",
    "/reports/student/stu-000001?format=json",
]


def test_health_needs_no_sign_in(served: Served) -> None:
    reply = get(served.url + "/healthz")
    assert (reply.status, reply.text) == (200, "ok\n")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_asks_for_a_sign_in(served: Served, path: str) -> None:
    served.access.failures.clear()  # each page's wrong passwords count from none
    for reply in (
        get(served.url + path),
        get(served.url + path, user="wang", password="wrong"),
        get(served.url + path, user="nobody"),
        get(served.url + path, Authorization="Bearer " + PASSWORD),
    ):
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"].startswith('Basic realm="writech"')
        assert b"<table" not in reply.body
        assert "一年级".encode() not in reply.body  # no class name: no data


def test_failed_sign_ins_make_the_next_check_wait(served: Served) -> None:
    """Guessing passwords: after a few failures in a row every check of that name waits (429),
    the right password too; a browser signed in before keeps its session and is not held up."""
    served.access.failures.clear()
    signed_in = get(served.url + "/schools/school-000", user="wang")
    assert signed_in.status == 200
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert {"HttpOnly", "Secure", "SameSite=Strict"} <= {part.strip() for part in cookie.split(";")}
    session = cookie.partition(";")[0]
    again = get(served.url + "/schools/school-000", user="wang", Cookie=session)
    assert again.status == 200
    assert "Set-Cookie" not in again.headers  # it holds the mark already
    for name in ("wang", "nobody-at-all"):  # made-up names alike: the wait tells no one exists
        for _ in range(FREE_FAILURES + 1):
            assert get(served.url + "/", user=name, password="guess").status == 401
        for path, password in (
            ("/", PASSWORD),  # the right password without the session: refused unchecked
            ("/classes/class-0000/board.json", "guess"),
        ):
            reply = get(served.url + path, user=name, password=password)
            assert reply.status == 429
            assert reply.headers["Retry-After"] == "1"
            assert "Content-Security-Policy" in reply.headers
        assert reply.json() == {"error": "too many failed sign-ins; try again in 1 s"}
    assert get(served.url + "/schools/school-000", user="wang", Cookie=session).status == 200
    # with the session, a wrong password is still checked (401), only not held up
    assert get(served.url + "/", user="wang", password="guess", Cookie=session).status == 401
    served.access.failures.clear()
    assert get(served.url + "/", user="wang").status == 303


def test_home_is_the_users_school(served: Served) -> None:
    reply = get(served.url + "/?lang=en", user="bai")
    assert reply.status == 303
    assert reply.headers["Location"] == "/schools/school-b?lang=en"


# -- one school's data, never another's ----------------------------------------

OTHER_SCHOOLS_PAGES = [
    "/schools/school-000",
    "/classes/class-0000",
    "/classes/class-0000/board",
    "/classes/class-0000/board.json",
    "/classes/class-0000/board.json?day=2026-09-09",
    "/reports/school/school-000",
    "/reports/class/class-0000",
    "/reports/class/class-0000?format=json&from=2026-09-01&to=2026-09-10",
    "/reports/student/stu-000001",
    "/reports/parent/stu-000001?format=json",
    # a class id both schools use: its report would mix them
    f"/reports/class/{SHARED}",
]


@pytest.mark.parametrize("path", OTHER_SCHOOLS_PAGES)
def test_another_schools_data_is_refused(served: Served, path: str) -> None:
    reply = get(served.url + path, user="bai")
    assert reply.status == 403, reply.text
    # nothing of the sample's school in the answer: no list, no class name, no report
    assert b"<table" not in reply.body
    assert "一年级".encode() not in reply.body
    assert b'"kind"' not in reply.body


def test_a_report_naming_another_schools_error_records_is_refused(served: Served) -> None:
    """The class's statistics are all the first school's; its error records in August
    are the second school's alone (a class id used again): the report would show them."""
    august = "/reports/class/class-0000?from=2026-08-01&to=2026-08-07&format=json"
    for user in ("wang", "bai"):
        reply = get(served.url + august, user=user)
        assert reply.status == 403, reply.text
        assert b"stu-b-09" not in reply.body
    # the first school's own report of the class, in September, is still made
    assert get(served.url + "/reports/class/class-0000?format=json", user="wang").status == 200


def test_a_shared_class_id_mixes_no_schools(served: Served) -> None:
    assert get(served.url + f"/reports/class/{SHARED}", user="wang").status == 403
    for user, student, character, strokes in (
        ("wang", "stu-s-01", "火", [30]),
        ("bai", "stu-b-02", "水", []),
    ):
        board = get(served.url + f"/classes/{SHARED}/board.json", user=user).json()
        assert [s["student_id"] for s in board["students"]] == [student]
        assert [c["character"] for c in board["characters"]] == [character]
        assert [m["strokes"] for m in board["chart"]["minutes"]] == strokes
        page = get(served.url + f"/classes/{SHARED}", user=user).text
        assert student in page
        assert ({"stu-s-01", "stu-b-02"} - {student}).pop() not in page


def test_a_school_page_lists_its_own_classes(served: Served) -> None:
    page = get(served.url + "/schools/school-000", user="wang").text
    for class_id in ("class-0000", "class-0001", SHARED):
        assert f'href="/classes/{class_id}"' in page
    assert "class-b" not in page
    assert "一年级（1）班" in page  # the roster's names
    page = get(served.url + "/schools/school-b", user="bai").text
    assert 'href="/classes/class-b"' in page
    assert "class-0000" not in page


@pytest.mark.parametrize(
    "path",
    ["/classes/no-such-class", "/classes/no-such-class/board.json", "/reports/student/nobody"],
)
def test_unknown_ids_are_not_found(served: Served, path: str) -> None:
    assert get(served.url + path, user="wang").status == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/schools/school-000?from=2026-13-01", 400),
        ("/schools/school-000?from=2026-09-05&to=2026-09-01", 400),
        # dates no store holds, which failed in date arithmetic (500), and a century
        ("/schools/school-000?from=0001-01-01&to=0001-01-02", 400),
        ("/classes/class-0000?from=9999-12-30", 400),
        ("/classes/class-0000/board.json?day=0001-01-01", 400),
        # its local day (Asia/Shanghai) begins before the epoch; the last one ends
        # beyond the stores' 32-bit seconds
        ("/classes/class-0000/board.json?day=1970-01-01", 400),
        ("/classes/class-0000/board.json?day=2106-02-07", 400),
        ("/classes/class-0000/board?day=9999-12-31", 400),
        ("/reports/class/class-0000?from=1980-01-01&to=2100-12-31", 400),
        ("/schools/school-000?lang=fr", 400),
        ("/classes/class-0000/board.json?day=yesterday", 400),
        ("/reports/class/class-0000?format=xml", 400),
        ("/reports/teacher/class-0000", 404),
    ],
)
def test_bad_picks_are_refused(served: Served, path: str, status: int) -> None:
    reply = get(served.url + path, user="wang")
    assert reply.status == status
    if path.split("?")[0].endswith(".json"):
        assert "error" in reply.json()


def test_a_class_whose_id_holds_a_slash_has_its_pages(served: Served) -> None:
    """ASGI servers decode the path, so "/classes/3%2F2" arrived as "/classes/3/2" and
    matched no route: a class named the usual way for grade 3, class 2 had no page."""
    school = get(served.url + "/schools/school-c", user="chen")
    assert school.status == 200
    links = re.findall(r'href="(/classes/[^"?]+)', school.body.decode())
    assert links == [f"/classes/{path_id(SLASHED)}", f"/classes/{path_id(SLASHED)}/board"]
    for link in links:
        reply = get(served.url + link, user="chen")
        assert reply.status == 200, link
        assert html.escape(SLASHED) in reply.body.decode()
        # the language links lead to the same page (resolved as a browser does)
        (other,) = re.findall(r'href="([^"]*)" hreflang="en"', reply.body.decode())
        assert other.startswith("?")
        in_english = get(urljoin(served.url + link, html.unescape(other)), user="chen")
        assert in_english.status == 200, other
        assert html.escape(SLASHED) in in_english.body.decode()
    board = get(served.url + links[1] + ".json", user="chen")
    assert board.status == 200
    assert board.json()["class_id"] == SLASHED
    report = get(served.url + f"/reports/class/{path_id(SLASHED)}?format=json", user="chen")
    assert report.status == 200
    assert report.json()["class_id"] == SLASHED
    # an id is one segment: another school's class is not reached by its first part
    assert get(served.url + "/classes/3", user="chen").status == 404


# -- the board ------------------------------------------------------------------


def test_the_live_board_against_the_tables(served: Served) -> None:
    board = get(served.url + "/classes/class-0000/board.json", user="wang").json()
    assert (board["day"], board["live"], board["as_of"]) == (DAY.isoformat(), True, NOW)
    assert board["as_of_label"] == "16:59:30"
    start = int(datetime(2026, 9, 10, tzinfo=SHANGHAI).timestamp())
    bounds = {"class": "class-0000", "start": start, "end": start + 86400}
    windows = query(
        served,
        "SELECT toUnixTimestamp(window_start) AS start, strokes FROM writech.class_minute_stats "
        "FINAL WHERE class_id = {class:String} AND window_start >= toDateTime({start:UInt32}) "
        "AND window_start < toDateTime({end:UInt32}) ORDER BY start",
        **bounds,
    )
    assert [(m["start"], m["strokes"]) for m in board["chart"]["minutes"]] == [
        (w["start"], w["strokes"]) for w in windows
    ]
    # writing: an event in a window ending within the last five minutes
    writing = query(
        served,
        "SELECT DISTINCT student_id FROM writech.student_minute_stats FINAL "
        "WHERE class_id = {class:String} AND window_start >= toDateTime({start:UInt32}) "
        "AND window_start < toDateTime({end:UInt32}) "
        "AND toUnixTimestamp(window_start) + 60 > {edge:UInt32} ORDER BY student_id",
        edge=NOW - 5 * 60,
        **bounds,
    )
    states = {s["student_id"]: s["state"] for s in board["students"]}
    assert sorted(s for s, state in states.items() if state == "writing") == [
        row["student_id"] for row in writing
    ]
    assert 0 < board["counts"]["writing"] < len(states)
    assert sum(board["counts"].values()) == len(states) == 30
    assert board["characters"], "the sample practises characters in its last minutes"
    for character in board["characters"]:
        for writer in character["writers"]:
            assert states[writer["student_id"]] == "writing"
    assert board["students"][0]["name"]  # the roster names students


def test_a_past_day_stands_at_its_last_minute(served: Served) -> None:
    board = get(served.url + "/classes/class-0001/board.json?day=2026-09-09", user="wang").json()
    assert not board["live"]
    assert board["as_of_label"] == "17:00:00"
    assert board["chart"]["minutes"]


def test_the_board_page_carries_its_data_and_labels(served: Served) -> None:
    reply = get(served.url + "/classes/class-0000/board?lang=en", user="wang")
    assert reply.status == 200
    assert '<script src="/static/board.js" defer></script>' in reply.text
    assert 'id="board-data"' in reply.text
    assert "Lowest-scoring characters right now (last 5 min)" in reply.text


# -- reports --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scope_id"),
    [
        ("school", "school-000"),
        ("class", "class-0000"),
        ("student", "stu-000012"),
        ("parent", "stu-000012"),
    ],
)
def test_reports_are_made_on_request(served: Served, kind: str, scope_id: str) -> None:
    picks = "from=2026-09-04&to=2026-09-10&subject=chinese"
    data = get(served.url + f"/reports/{kind}/{scope_id}?{picks}&format=json", user="wang")
    assert data.status == 200
    assert data.headers["Content-Type"] == "application/json"
    report = data.json()
    assert report["kind"] == kind
    assert (report["period"], report["subject"]) == (
        {"start": "2026-09-04", "end": "2026-09-10"},
        "chinese",
    )
    page = get(served.url + f"/reports/{kind}/{scope_id}?{picks}&lang=en", user="wang")
    assert page.status == 200
    assert page.text.startswith("<!DOCTYPE html>")
    assert page.headers["Content-Security-Policy"] == report_policy(page.text)


def test_reports_take_turns_and_beyond_those_waiting_are_refused_at_once(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports are CPU-bound under one GIL: a burst of them must not take every thread the
    live board is served by. One made at a time here, one more may wait."""
    monkeypatch.setattr(served.context, "reports", ReportSlots(at_once=1, waiting=1))
    release, started = threading.Event(), threading.Event()
    made = make_report

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(60)
        return made(*args, **kwargs)

    monkeypatch.setattr(app, "make_report", slow)
    path = served.url + "/reports/class/class-0000?format=json"
    replies: list[Reply] = []

    def ask() -> threading.Thread:
        thread = threading.Thread(target=lambda: replies.append(get(path, user="wang")))
        thread.start()
        return thread

    asking = [ask()]
    try:
        assert started.wait(60)  # the first is being made
        asking += [ask(), ask()]  # one of these waits for its turn, the other has no place
        wait_until(lambda: len(replies) == 1, 60, "the report refused at once")
        [busy] = replies
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "10"
        assert busy.json() == {
            "error": "many reports are being made just now; try again in a few seconds"
        }
        board = get(served.url + "/classes/class-0000/board.json", user="wang")
        assert board.status == 200  # the board is served meanwhile
    finally:
        release.set()
        for thread in asking:
            thread.join(60)
    assert sorted(reply.status for reply in replies) == [200, 200, 503]


def test_a_report_without_dates_covers_the_schools_default_period(served: Served) -> None:
    report = get(served.url + "/reports/class/class-0000?format=json", user="wang").json()
    # the reports' default: the week ending on the school's newest date, or the later half
    assert report["period"] == {"start": "2026-09-06", "end": "2026-09-10"}


# -- headers, policy, read-only ---------------------------------------------------


def test_pages_carry_a_strict_policy(served: Served) -> None:
    for path in ("/schools/school-000", "/classes/class-0000/board", "/classes/no-such-class"):
        reply = get(served.url + path, user="wang")
        policy = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy
        assert "unsafe" not in policy
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.headers["X-Frame-Options"] == "DENY"
    script = get(served.url + "/static/board.js")
    assert script.status == 200
    assert script.headers["Content-Type"].startswith("text/javascript")


def test_a_report_policy_allows_its_own_scripts_only() -> None:
    page = "<html><svg><script>a = 1;</script></svg><script src='x.js'></script></html>"
    policy = report_policy(page)
    digest = base64.b64encode(hashlib.sha256(b"a = 1;").digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy  # the inline one; never x.js
    assert "'unsafe-inline'" not in policy.split("style-src")[0]
    assert "script-src 'none';" in report_policy("<p>no script</p>")


def test_a_charts_script_is_allowed_as_the_browser_decodes_it() -> None:
    """pygal escapes a label in its <svg>'s script; the browser hashes it decoded."""
    policy = report_policy("<svg><script>label = 'A &amp; B &lt;1&gt;';</script></svg>")
    digest = base64.b64encode(hashlib.sha256(b"label = 'A & B <1>';").digest()).decode()
    assert f"'sha256-{digest}'" in policy


def test_a_path_written_back_on_a_page_leads_nowhere_else(served: Served) -> None:
    """The language links of a 404 page named the path asked for: "//evil.example/login"
    became a link to another site."""
    reply = get(served.url + "//evil.example/login")
    assert reply.status == 404
    links = re.findall(r'href="([^"]*)"', reply.text)
    assert links
    assert not [link for link in links if link.startswith("//") or "evil" in link]
    assert "?lang=en" in links


def store_state(served: Served) -> tuple[list[tuple[str, int]], bytes]:
    """Rows per table as a reader sees them, and the SQLite store's bytes."""
    tables = (
        "student_daily_stats",
        "analytics_metrics",
        "homework_result",
        "student_minute_stats",
        "class_minute_stats",
    )
    counts = query(
        served,
        " UNION ALL ".join(
            f"SELECT '{table}' AS t, count() AS n FROM writech.{table} FINAL" for table in tables
        ),
    )
    return sorted((row["t"], row["n"]) for row in counts), (
        served.data_dir / "writech.db"
    ).read_bytes()


def test_the_app_writes_nothing(served: Served) -> None:
    before = store_state(served)
    for path in [p.split("?")[0] for p in PAGES[1:]] + ["/reports/parent/stu-000003"]:
        assert get(served.url + path, user="wang").status == 200, path
    assert store_state(served) == before


def test_error_records_are_read_through_a_connection_that_cannot_write(served: Served) -> None:
    connection, placeholder = read_only_connection(served.settings)
    try:
        assert placeholder == "?"
        assert connection.execute("SELECT count(*) FROM error_record").fetchone()[0] > 0
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("DELETE FROM error_record")
    finally:
        connection.close()


@pytest.mark.services
def test_a_mysql_session_cannot_write(mysql_database: str) -> None:
    settings = Settings.from_env({}, mysql_url=mysql_database)
    open_error_store(settings).close()  # the table, as the dataflow creates it
    connection, placeholder = read_only_connection(settings)
    try:
        assert placeholder == "%s"
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM error_record")
            with pytest.raises(pymysql.MySQLError, match="READ ONLY"):
                cursor.execute("DELETE FROM error_record")
    finally:
        connection.close()


# -- the command ----------------------------------------------------------------


def writech(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writech", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment() | env,
    )


def test_serve_needs_an_access_file(tmp_path: Path) -> None:
    result = writech("serve", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "WRITECH_SERVE_ACCESS_FILE" in result.stderr
    (tmp_path / "access.toml").write_text("[users.wang]\nschool = 's'\npassword = 'plain'\n")
    result = writech("serve", "--access-file", str(tmp_path / "access.toml"))
    assert result.returncode == 2
    assert "users.wang.password" in result.stderr
    assert "plain" not in result.stderr


def test_serve_refuses_a_data_dir_without_a_store(tmp_path: Path) -> None:
    """A mistyped --data-dir: said in one line, not served as a new, empty store."""
    hashed = writech("serve", "--hash-password", stdin="pass phrase 1\n").stdout.strip()
    access = tmp_path / "access.toml"
    access.write_text(f'[users.wang]\nschool = "s"\npassword = "{hashed}"\n')
    missing = tmp_path / "dat"
    result = writech("serve", "--access-file", str(access), "--data-dir", str(missing))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"writech: no store in {missing}: nothing was replayed there (check --data-dir)\n"
    )
    assert not missing.exists()


def test_hash_password_prints_what_the_access_file_takes(tmp_path: Path) -> None:
    result = writech("serve", "--hash-password", stdin="pass phrase 1\n")
    assert result.returncode == 0, result.stderr
    (tmp_path / "access.toml").write_text(
        f'[users.wang]\nschool = "s"\npassword = "{result.stdout.strip()}"\n'
    )
    users = AccessFile(tmp_path / "access.toml")
    assert users.authenticate("Basic " + base64.b64encode(b"wang:pass phrase 1").decode())
    assert writech("serve", "--hash-password", stdin="\n").returncode == 2


def test_the_settings_name_the_access_file_as_the_cluster_does() -> None:
    environ = {"WRITECH_SERVE_ACCESS_FILE": "/var/run/secrets/writech-serve/access.toml"}
    assert Settings.from_env(environ).serve_access_file == environ["WRITECH_SERVE_ACCESS_FILE"]


def test_the_wheel_ships_the_pages(tmp_path: Path) -> None:
    """The image installs the wheel: templates and static files must be in it."""
    source = tmp_path / "source"
    shutil.copytree(
        REPO / "writech", source / "writech", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("writech-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("writech/serve/")}
    package = REPO / "writech" / "serve"
    expected = {
        f"writech/serve/{path.relative_to(package)}"
        for pattern in ("templates/*.j2", "static/*")
        for path in package.glob(pattern)
    }
    assert len(expected) >= 8
    assert expected <= shipped
