"""The teachers' web app: the live class board and the reports, browsable (Starlette).

Routes, all GET. Every one but `/healthz`, `/favicon.ico` and `/static/`
needs a signed-in user (`writech.serve.access`), and shows only the data
of the user's school:

    /                                 the user's school
    /schools/{school_id}              its classes, its report; period and subject pickers
    /classes/{class_id}               its students, its report, its board
    /classes/{class_id}/board         the live board (?day=YYYY-MM-DD for a past day)
    /classes/{class_id}/board.json    the board's data, which the page fetches every few seconds
    /reports/{kind}/{scope_id}        a report made on request: kind student, class, school
                                      or parent; ?from, to, subject, lang, format=html|json

Access: a class is shown if it has rows in the user's school, and every
read for it is filtered by that school too; a report is made only if every
row it reads names the user's school (a report mixing schools is refused).
Read-only: requests run SELECTs only; `error_record` is opened read-only
(SQLite `mode=ro`, a MySQL session in READ ONLY mode). Every page carries
a Content-Security-Policy: the app's own pages load scripts and styles from
the app only; a report page may use its inline styles and SVG and runs no
script at all.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final, get_args
from urllib.parse import quote, unquote, urlencode
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from writech.reports.build import THRESHOLDS, Options
from writech.reports.formats import Format
from writech.reports.labels import LANGS, SUBJECTS, Lang
from writech.reports.model import Period
from writech.reports.queries import membership
from writech.reports.render import render
from writech.reports.roster import Roster
from writech.reports.service import (
    FIRST_DATE,
    LAST_DATE,
    MAX_PERIOD_DAYS,
    SCOPES,
    Kind,
    PeriodError,
    ReportError,
    Stores,
    checked_period,
    default_period,
    make_report,
)
from writech.serve import board, queries
from writech.serve.access import AccessFile, Throttled, User
from writech.serve.labels import TEXT
from writech.settings import Settings
from writech.stores.base import (
    ClickHouse,
    ErrorStore,
    StoreError,
    open_clickhouse,
    open_error_store,
)

log = logging.getLogger(__name__)

# The class's list on the board: students with daily statistics in the
# class over this many days up to the board's day.
CLASS_LIST_DAYS: Final = 14
# Reports made at once, and how many more requests may wait for a turn
# (`ReportSlots`); beyond these, 503 with Retry-After.
REPORTS_AT_ONCE: Final = 2
REPORTS_WAITING: Final = 8
BUSY_RETRY_SECONDS: Final = 10
REALM: Final = 'Basic realm="writech", charset="UTF-8"'
# The cookie holding a signed-in browser's session mark (see `SecurityHeaders`).
SESSION_COOKIE: Final = "writech_session"
APP_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The reports are self-contained files with inline CSS and SVG; the only
# scripts they hold are pygal's inline chart settings, allowed by their
# hashes (`report_policy`), so no other script can run on a report page.
REPORT_POLICY: Final = (
    "default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    ("content-security-policy", APP_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    # pages name students: no shared cache may keep them
    ("cache-control", "no-store"),
)
# What the board's script writes itself.
BOARD_LABELS: Final = (
    "silent_for", "strokes_recent", "strokes", "accuracy", "mean_score",
)  # fmt: skip
SERVED_FORMATS: Final[dict[str, Format]] = {"html": "html", "json": "json"}
_STATIC: Final = Path(__file__).parent / "static"


class Busy(Exception):
    """As many reports as may wait are being made or waiting already."""


class ReportSlots:
    """How many reports are made at once, and how many more may wait for a turn.

    A report is CPU-bound Python under one GIL: more at once are not made
    sooner, and each took one of the threads the pages and the live board's
    refreshes are served by, so a burst of reports (a script, or a user
    asking for a school's year again and again) held up every class's board.
    """

    def __init__(self, at_once: int, waiting: int) -> None:
        self._turns = threading.BoundedSemaphore(at_once)
        self._admitted = threading.BoundedSemaphore(at_once + waiting)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for a turn to make a report; `Busy` at once if too many wait already."""
        if not self._admitted.acquire(blocking=False):
            raise Busy
        try:
            with self._turns:
                yield
        finally:
            self._admitted.release()


@dataclass
class Context:
    """What every request reads: settings, accounts, names, the clock and the store."""

    settings: Settings
    access: AccessFile
    roster: Roster = field(default_factory=Roster)
    now: Callable[[], float] = time.time
    # open while the app runs: given (the caller closes it), or opened by the app's start
    store: ClickHouse | None = None
    reports: ReportSlots = field(
        default_factory=lambda: ReportSlots(REPORTS_AT_ONCE, REPORTS_WAITING)
    )

    @property
    def clickhouse(self) -> ClickHouse:
        if self.store is None:
            raise RuntimeError("the store is opened when the app starts")
        return self.store

    @property
    def zone(self) -> ZoneInfo:
        return self.settings.tz


@dataclass(frozen=True)
class Picks:
    """What the pickers chose: period, subject, language (all optional in the URL)."""

    start: date | None = None
    end: date | None = None
    subject: str | None = None
    lang: Lang = "zh"

    @classmethod
    def of(cls, request: Request) -> Picks:
        params = request.query_params
        lang = params.get("lang") or "zh"
        if lang not in LANGS:
            raise HTTPException(400, f"lang must be one of {', '.join(LANGS)}")
        return cls(
            _iso_date(params.get("from"), "from"),
            _iso_date(params.get("to"), "to"),
            params.get("subject") or None,
            lang,
        )

    def query(self, **extra: str) -> str:
        """These picks (and `extra`) as a URL query string, with its `?`."""
        pairs = {
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "subject": self.subject or "",
            "lang": self.lang if self.lang != "zh" else "",
            **extra,
        }
        text = urlencode({key: value for key, value in pairs.items() if value})
        return f"?{text}" if text else ""


def _iso_date(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name}: not a date (YYYY-MM-DD): {text!r}") from None
    # the board reads the days before it too: a day the stores cannot hold fails
    # in date arithmetic, not just in a query
    if not FIRST_DATE <= day <= LAST_DATE:
        raise HTTPException(
            400, f"{name}: {day} is not within {FIRST_DATE} to {LAST_DATE}, the dates stored"
        )
    return day


def path_id(value: str) -> str:
    """An id as one URL path segment (ids come from events: any character may occur)."""
    return quote(value, safe="")


def path_param(request: Request, name: str) -> str:
    """The id in path segment `name`, as `path_id` wrote it (see `SegmentedPaths`)."""
    return unquote(request.path_params[name])


# -- access -------------------------------------------------------------------


def signed_in(request: Request) -> User:
    context: Context = request.app.state.context
    authorization = request.headers.get("authorization", "")
    session = request.cookies.get(SESSION_COOKIE, "")
    try:
        user = context.access.authenticate(authorization, session)
    except Throttled as exc:
        raise HTTPException(
            429, str(exc), headers={"Retry-After": str(math.ceil(exc.retry_after))}
        ) from None
    if user is None:
        raise HTTPException(401, "sign in", headers={"WWW-Authenticate": REALM})
    mark = context.access.session_mark(user.name)
    if mark != session:
        request.state.session_mark = mark  # `SecurityHeaders` sets it on the response
    return user


def allow(school: str, schools: set[str], *, only_mine: bool) -> None:
    """Raise unless the data behind a page may be shown to a user of `school`.

    `schools`: the schools the data's rows name. `only_mine`: every row
    must be the school's (a report reads rows by id alone); otherwise the
    page reads only the school's rows, and one is enough.
    """
    if not schools:
        raise HTTPException(404, "no data for this id")
    if school in schools and (len(schools) == 1 or not only_mine):
        return
    raise HTTPException(403, "this belongs to another school")


def report_schools(
    store: ClickHouse, errors: ErrorStore, kind: Kind, scope_id: str, period: Period
) -> set[str]:
    """Every school the rows of a report (and its previous period) name, error records
    included: they outlive the statistics (no TTL), so a class id used again by another
    school can name its records alone."""
    scope = SCOPES[kind]
    member = membership(store, scope, scope_id, period.end)
    if member is None:
        return set()
    read = Period(period.previous().start, period.end)
    scopes = [(scope, scope_id)]
    if kind in ("student", "parent") and member.class_id:  # compared with their class
        scopes.append(("class_id", member.class_id))
    schools = {member.school_id}
    for column, value in scopes:
        schools |= queries.scope_schools(store, column, value, read)
        schools |= errors.scope_schools(column, value, read)
    return schools


def _own_class(context: Context, user: User, class_id: str) -> None:
    allow(user.school, queries.class_schools(context.clickhouse, class_id), only_mine=False)


def _period(context: Context, user: User, picks: Picks) -> Period:
    """The period picked; what is not picked follows the reports' default, on the school's dates."""
    span = queries.school_span(context.clickhouse, user.school)
    if span is None:
        raise HTTPException(404, TEXT[picks.lang]["no_data_yet"])
    end = picks.end or span.end
    start = picks.start or default_period(span, end).start
    try:
        return checked_period(start, end, longest=MAX_PERIOD_DAYS)
    except PeriodError as exc:
        raise HTTPException(400, str(exc)) from None


def read_only_connection(settings: Settings) -> tuple[Any, str]:
    """A connection to the `error_record` store that cannot write, and its placeholder:
    what the store opened `read_only` reads through."""
    if settings.mysql_url:
        import pymysql

        from writech.stores.mysql import MYSQL, connect_arguments

        return pymysql.connect(**connect_arguments(settings, read_only=True)), MYSQL.placeholder
    from writech.stores.sqlite import SQLITE, connect_read_only

    return connect_read_only(settings.sqlite_path), SQLITE.placeholder


@contextmanager
def error_records(settings: Settings) -> Iterator[ErrorStore]:
    """The store of `error_record`, opened read-only."""
    if not settings.mysql_url and not settings.sqlite_path.exists():
        raise ReportError("no error records stored yet")  # its path is not the reader's business
    store = open_error_store(settings, read_only=True)
    try:
        yield store
    finally:
        store.close()


# -- pages --------------------------------------------------------------------


_environment: Final = Environment(
    loader=PackageLoader("writech.serve", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["id"] = path_id


def page(request: Request, template: str, picks: Picks, **values: Any) -> HTMLResponse:
    context: Context = request.app.state.context
    params = dict(request.query_params)
    html = _environment.get_template(template).render(
        t=TEXT[picks.lang],
        picks=picks,
        lang=picks.lang,
        lang_query=f"?lang={picks.lang}" if picks.lang != "zh" else "",
        # the query alone: the browser keeps the path it asked for, and a path
        # written back ("//evil.example/x" on a 404 page) would lead off the site
        lang_links={code: f"?{urlencode({**params, 'lang': code})}" for code in LANGS},
        langs=LANGS,
        subjects=SUBJECTS[picks.lang],
        class_names=context.roster.classes,
        student_names=context.roster.students,
        **values,
    )
    return HTMLResponse(html)


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def favicon(request: Request) -> Response:
    return Response(status_code=204)


def home(request: Request) -> Response:
    user = signed_in(request)
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/schools/{path_id(user.school)}{query}", status_code=303)


def school_page(request: Request) -> Response:
    user = signed_in(request)
    context: Context = request.app.state.context
    school_id = path_param(request, "school_id")
    picks = Picks.of(request)
    allow(user.school, {school_id}, only_mine=True)
    period = _period(context, user, picks)
    classes = queries.school_classes(context.clickhouse, user.school, period)
    return page(request, "school.html.j2", picks, user=user, period=period, classes=classes)


def class_page(request: Request) -> Response:
    user = signed_in(request)
    context: Context = request.app.state.context
    class_id = path_param(request, "class_id")
    picks = Picks.of(request)
    _own_class(context, user, class_id)
    period = _period(context, user, picks)
    students = queries.class_students(context.clickhouse, user.school, class_id, period)
    return page(
        request,
        "class.html.j2",
        picks,
        user=user,
        period=period,
        class_id=class_id,
        students=students,
    )


def read_board(context: Context, user: User, class_id: str, day: date | None) -> board.Board:
    """The board of one of the user's school's classes, read now."""
    store, zone, settings = context.clickhouse, context.zone, context.settings
    now = int(context.now())
    day = day or board.local_day(now, zone)
    start, end = board.day_bounds(day, zone)
    windows = queries.class_windows(store, user.school, class_id, start, end)
    when = board.board_time(now, day, zone, windows)
    recent = board.recent_edge(when.as_of, settings.serve_recent_minutes)
    listed = Period(day - timedelta(days=CLASS_LIST_DAYS - 1), day)
    return board.assemble(
        class_id=class_id,
        class_name=context.roster.classes.get(class_id),
        school_id=user.school,
        day=day,
        zone=zone,
        when=when,
        recent_minutes=settings.serve_recent_minutes,
        refresh_seconds=settings.serve_refresh_seconds,
        windows=windows,
        today=queries.student_days(store, user.school, class_id, start, end, recent),
        roster=queries.class_students(store, user.school, class_id, listed),
        practice=queries.recent_practice(store, user.school, class_id, recent, end),
        names=context.roster.students,
        weak_score=THRESHOLDS.weak_character_score,
    )


def _board_request(request: Request) -> tuple[Context, User, str, date | None]:
    user = signed_in(request)
    context: Context = request.app.state.context
    class_id = path_param(request, "class_id")
    _own_class(context, user, class_id)
    return context, user, class_id, _board_day(request.query_params.get("day"), context.zone)


# The last second a window's start can hold (ClickHouse's DateTime, 32 bits).
_LAST_INSTANT: Final = 2**32 - 1


def _board_day(text: str | None, zone: ZoneInfo) -> date | None:
    """The board's day picked, if any: one whose local hours the stores can hold (east
    of UTC, 1 January 1970 starts before the epoch), and the days its list reads before."""
    day = _iso_date(text, "day")
    if day is None:
        return None
    first = FIRST_DATE + timedelta(days=CLASS_LIST_DAYS)
    last = board.local_day(_LAST_INSTANT, zone) - timedelta(days=1)
    if not first <= day <= last:
        raise HTTPException(400, f"day: {day} is not within {first} to {last}, the board's days")
    return day


def board_page(request: Request) -> Response:
    context, user, class_id, day = _board_request(request)
    picks = Picks.of(request)
    shown = read_board(context, user, class_id, day)
    text = TEXT[picks.lang]
    # the page fills in {minutes}, {strokes} (and each student's silent minutes)
    labels = {key: text[key] for key in BOARD_LABELS}
    return page(
        request,
        "board.html.j2",
        picks,
        user=user,
        class_id=class_id,
        board=msgspec.to_builtins(shown),
        labels=labels,
        source=f"board.json?{urlencode({'day': shown.day.isoformat()})}",
    )


def board_data(request: Request) -> Response:
    context, user, class_id, day = _board_request(request)
    shown = read_board(context, user, class_id, day)
    return Response(msgspec.json.encode(shown), media_type="application/json")


def report(request: Request) -> Response:
    user = signed_in(request)
    context: Context = request.app.state.context
    kind, scope_id = request.path_params["kind"], path_param(request, "scope_id")
    if kind not in get_args(Kind):
        raise HTTPException(404, f"no such report kind: {kind!r}")
    picks = Picks.of(request)
    fmt = SERVED_FORMATS.get(request.query_params.get("format") or "html")
    if fmt is None:
        raise HTTPException(400, "format must be html or json")
    period = _period(context, user, picks)
    options = Options(
        timezone=context.settings.timezone, subject=picks.subject, roster=context.roster
    )
    try:
        with context.reports.turn(), error_records(context.settings) as errors:
            allow(
                user.school,
                report_schools(context.clickhouse, errors, kind, scope_id, period),
                only_mine=True,
            )
            made = make_report(
                Stores(context.clickhouse, errors),
                kind,
                scope_id,
                period,
                now=datetime.fromtimestamp(context.now(), UTC),
                options=options,
            )
            body = render(made, fmt, picks.lang)
    except ReportError as exc:
        raise HTTPException(404, str(exc)) from None
    except Busy:
        raise HTTPException(
            503,
            "many reports are being made just now; try again in a few seconds",
            headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
        ) from None
    if fmt == "json":
        return Response(body, media_type="application/json")
    return HTMLResponse(body, headers={"content-security-policy": report_policy(body)})


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._open = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._open is not None:
            self.scripts.append("".join(self._open))
            self._open = None


def report_policy(html: str) -> str:
    """The Content-Security-Policy of a report page: its own inline scripts, by hash, and no other."""
    parser = _InlineScripts()
    parser.feed(html)
    parser.close()
    # A script in an <svg> (the charts') is foreign content: the browser decodes its
    # character references ("&lt;" in a label) before hashing it, where HTML's own
    # scripts are taken as written. Both forms of each are allowed.
    scripts = {form for script in parser.scripts for form in (script, unescape(script))}
    hashes = sorted(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in scripts
    )
    return REPORT_POLICY.format(scripts=" ".join(hashes) or "'none'")


# -- errors -------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json") or request.query_params.get("format") == "json"


def _error_page(
    request: Request, status: int, message: str, headers: Mapping[str, str]
) -> Response:
    if _wants_json(request):
        return Response(
            msgspec.json.encode({"error": message}),
            status_code=status,
            media_type="application/json",
            headers=dict(headers),
        )
    lang = request.query_params.get("lang")
    picks = Picks(lang=lang if lang in LANGS else "zh")
    response = page(request, "error.html.j2", picks, status=status, message=message)
    response.status_code = status
    response.headers.update(headers)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, exc.detail, exc.headers or {})


async def store_error(request: Request, exc: Exception) -> Response:
    log.error("a store could not be read: %s", exc)
    return _error_page(request, 503, "the stores cannot be read just now; try again shortly", {})


# -- the app ------------------------------------------------------------------


class SegmentedPaths:
    """Routes match segments of the path as sent, so that an id may hold "/".

    ASGI servers decode the path before routing: "/classes/3%2F2" (grade 3,
    class 2) arrived as "/classes/3/2" and matched no route. Here each
    segment of the raw path is decoded on its own and keeps "%" and "/"
    escaped, so a route's parameter is one whole segment, which `path_param`
    decodes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw:
            segments = raw.decode("latin-1").partition("?")[0].split("/")
            path = "/".join(
                unquote(segment).replace("%", "%25").replace("/", "%2F") for segment in segments
            )
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response that does not set its own, and gives a
    browser that just signed in its session mark (`AccessFile.session_mark`) as a cookie.

    With the mark, the browser's requests are not held up while its user
    name waits after someone else's failed sign-ins. The cookie is HttpOnly
    (no script reads it), Secure and SameSite=Strict, and lasts as long as
    the browser's session.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        state = scope.setdefault("state", {})  # shared by the scopes made from this one

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
                mark = state.get("session_mark")
                if mark:
                    headers.append(
                        "Set-Cookie",
                        f"{SESSION_COOKIE}={mark}; Path=/; HttpOnly; Secure; SameSite=Strict",
                    )
                message["headers"] = headers.raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(context: Context) -> Starlette:
    """The web app over `context`; it opens the ClickHouse store when it starts, unless
    `context` holds one already."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if context.store is not None:  # the caller's, open already: one client, not two
            yield
            return
        context.store = open_clickhouse(context.settings, existing=True)
        try:
            yield
        finally:
            context.store.close()
            context.store = None

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/favicon.ico", favicon),
            Mount("/static", StaticFiles(directory=_STATIC), name="static"),
            Route("/", home),
            Route("/schools/{school_id}", school_page),
            Route("/classes/{class_id}", class_page),
            Route("/classes/{class_id}/board", board_page),
            Route("/classes/{class_id}/board.json", board_data),
            Route("/reports/{kind}/{scope_id}", report),
        ],
        exception_handlers={HTTPException: http_error, StoreError: store_error},
        lifespan=lifespan,
    )
    app.state.context = context
    app.add_middleware(SegmentedPaths)
    app.add_middleware(SecurityHeaders)
    return app
