"""The web app in a real browser (Debian's headless Chromium, driven by Playwright).

The live board end to end: `writech replay` writes a class's first minutes into a
ClickHouse server, `writech serve` (its own process, reading that server) shows them,
and while the page is open a second replay produces the next minutes: they must appear
on the page by its own refreshes, with the writing, silent and absent students and the
lowest characters, and no console message at all (a Content-Security-Policy violation
is one). Then a teacher's path through the reports: school, class, class report, student
report, JSON. Screenshots go to the test's directory, or into docs/ with
WRITECH_DOCS_SCREENSHOTS=1 (how docs/board.png and docs/serve-*.png are made)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

from tests.helpers import REPO
from tests.services.clickhouse_http import ClickHouseServer
from tests.services.ports import free_port, tail, terminate, wait_until
from tests.test_reports import clean_environment
from tests.test_serve import PASSWORD, get, write_access_file

CHROMIUM = "/usr/bin/chromium"
SCHOOL, CLASS = "school-live", "class-live"
STUDENTS = [f"stu-live-{n:02d}" for n in range(24)]
NAMES = [
    "王子涵",
    "李雨桐",
    "张浩然",
    "刘欣怡",
    "陈梓轩",
    "杨思琪",
    "赵俊杰",
    "黄诗涵",
    "周宇航",
    "吴佳怡",
    "徐子墨",
    "孙可馨",
    "马一诺",
    "朱梓涵",
    "胡晨曦",
    "郭子豪",
    "何雨萱",
    "林浩宇",
    "罗欣然",
    "高俊熙",
    "梁若汐",
    "宋嘉怡",
    "郑博文",
    "谢雨泽",
]
CHARACTERS = "永人大天山水火木日月"
# Minutes before now written by the first replay, then by the second.
FIRST, SECOND = range(18, 9, -1), range(9, 0, -1)


def noon_zone(now: datetime) -> str:
    """A fixed-offset zone in which `now` is around noon: the test's minutes all fall today."""
    offset = 12 - now.hour  # -11 .. 12 hours
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs are reversed


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def events(now: datetime, minutes: range, seed: int) -> list[dict[str, Any]]:
    """A class writing: each minute some students send strokes and stroke-order checks.

    Students 0-15 write in every minute, 16-19 only in the first replay's minutes
    (then they are silent), 20-23 wrote yesterday only (not here today).
    """
    rng = random.Random(seed)
    found = []
    for back in minutes:
        minute = (now - timedelta(minutes=back)).replace(second=0, microsecond=0)
        writers = STUDENTS[:16] + (STUDENTS[16:20] if minutes is FIRST else [])
        for student in writers:
            at = minute + timedelta(seconds=rng.randint(0, 59))
            base = {"student_id": student, "class_id": CLASS, "school_id": SCHOOL}
            found.append(
                base
                | {
                    "event_type": "stroke_raw",
                    "timestamp": iso(at),
                    "payload": {"stroke_count": rng.randint(5, 60), "subject": "chinese"},
                }
            )
            character = rng.choice(CHARACTERS)
            weak = character in "永水" and STUDENTS.index(student) % 3 == 0
            found.append(
                base
                | {
                    "event_type": "stroke_order",
                    "timestamp": iso(at + timedelta(milliseconds=1)),
                    "payload": {
                        "character": character,
                        "score": rng.uniform(20, 55) if weak else rng.uniform(65, 100),
                    },
                }
            )
    if minutes is FIRST:  # yesterday: on the class's list, not here today
        yesterday = iso(now - timedelta(days=1))
        found += [
            {"event_type": "login_event", "student_id": student, "class_id": CLASS,
             "school_id": SCHOOL, "timestamp": yesterday}
            for student in STUDENTS[20:]
        ]  # fmt: skip
    return found


@dataclass
class Live:
    url: str
    clickhouse: ClickHouseServer
    data_dir: Path
    environment: dict[str, str]
    now: datetime
    shots: Path

    def replay(self, minutes: range) -> None:
        name = "first" if minutes is FIRST else "second"
        path = self.data_dir.parent / f"{name}.jsonl"
        path.write_text(
            "".join(
                json.dumps(event, ensure_ascii=False) + "\n"
                for event in events(self.now, minutes, seed=minutes.start)
            )
        )
        result = subprocess.run(
            [sys.executable, "-m", "writech", "replay", str(path),
             "--data-dir", str(self.data_dir), "-q"],
            capture_output=True, text=True, timeout=300, env=self.environment,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    return REPO / "docs" if os.environ.get("WRITECH_DOCS_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def live(tmp_path: Path, clickhouse_server: ClickHouseServer, screenshots: Path) -> Iterator[Live]:
    now = datetime.now(UTC)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "student_id,student_name,class_id,class_name\n"
        + "".join(f"{s},{n},{CLASS},三年级（2）班\n" for s, n in zip(STUDENTS, NAMES, strict=True))
    )
    environment = clean_environment() | {
        "WRITECH_CLICKHOUSE_URL": clickhouse_server.url,
        "WRITECH_TIMEZONE": noon_zone(now),
        "WRITECH_SERVE_REFRESH_SECONDS": "1",
        "WRITECH_SERVE_ROSTER_FILE": str(roster),
        "WRITECH_SERVE_ACCESS_FILE": str(
            write_access_file(tmp_path / "access.toml", {"teacher": SCHOOL})
        ),
    }
    state = Live("", clickhouse_server, tmp_path / "data", environment, now, screenshots)
    state.replay(FIRST)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "writech", "serve", "--port", str(port),
             "--data-dir", str(state.data_dir)],
            stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=REPO,
        )  # fmt: skip
    state.url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: server.poll() is None and _answers(state.url + "/healthz"), 60, "writech serve"
        )
    except TimeoutError:
        terminate(server, 10)
        pytest.fail(f"writech serve did not start:\n{tail(log)}")
    # loopback unless told otherwise
    assert f"running on http://127.0.0.1:{port}" in log.read_text()
    yield state
    terminate(server, 10)
    assert server.returncode == 0, tail(log)  # SIGTERM is a clean stop
    assert "resume" not in log.read_text()  # nothing like a dataflow's stop is said


def _answers(url: str) -> bool:
    try:
        return get(url).status == 200
    except OSError:
        return False


@pytest.fixture
def page(live: Live) -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page signed in as the school's teacher, and every console message it logs."""
    messages: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(
            http_credentials={"username": "teacher", "password": PASSWORD},
            viewport={"width": 1280, "height": 900},
            locale="zh-CN",
        )
        opened = context.new_page()

        def heard(message: ConsoleMessage) -> None:
            messages.append(f"{message.type}: {message.text} ({message.location})")

        opened.on("console", heard)
        opened.on("pageerror", lambda error: messages.append(f"page error: {error}"))
        yield opened, messages
        browser.close()


def minutes_drawn(page: Page) -> int:
    return int(page.locator("#chart").get_attribute("data-minutes") or 0)


def count(page: Page, state: str) -> int:
    return int(page.locator(f"#count-{state}").inner_text())


def test_the_board_follows_the_class_while_it_writes(
    live: Live, page: tuple[Page, list[str]]
) -> None:
    browser, messages = page
    browser.goto(f"{live.url}/classes/{CLASS}/board")
    assert minutes_drawn(browser) == len(FIRST)
    assert browser.locator("#chart > rect.bar").count() == len(FIRST)
    # the first minutes ended nine minutes ago: everyone who wrote is silent now
    assert (count(browser, "writing"), count(browser, "silent"), count(browser, "absent")) == (
        0,
        20,
        4,
    )

    live.replay(SECOND)  # the page is open and refreshing meanwhile
    total = len(FIRST) + len(SECOND)
    expect(browser.locator("#chart")).to_have_attribute("data-minutes", str(total), timeout=60_000)
    assert browser.locator("#chart > rect.bar").count() == total
    assert browser.locator("#chart polyline.accuracy").count() >= 1
    assert (count(browser, "writing"), count(browser, "silent"), count(browser, "absent")) == (
        16,
        4,
        4,
    )
    silent = browser.locator("#students-silent li.student")
    assert (
        sorted(silent.evaluate_all("items => items.map(i => i.dataset.student)")) == STUDENTS[16:20]
    )
    assert "王子涵" in browser.locator("#students-writing").inner_text()  # the roster's names
    rows = browser.locator("#characters tbody tr")
    assert rows.count() >= 3
    scores = [float(s) for s in rows.locator("td:nth-child(2)").all_inner_texts()]
    assert scores == sorted(scores)  # lowest first
    assert browser.locator("#characters tr.weak").count() >= 1  # 永 and 水 are weak
    assert browser.locator("#stale").is_hidden()
    browser.screenshot(path=str(live.shots / "board.png"), full_page=True)
    assert messages == []


def test_a_teacher_browses_from_the_school_to_a_students_report(
    live: Live, page: tuple[Page, list[str]]
) -> None:
    browser, messages = page
    live.replay(SECOND)
    browser.goto(live.url)  # the school of the signed-in user
    assert browser.url.endswith(f"/schools/{SCHOOL}")
    browser.screenshot(path=str(live.shots / "serve-school.png"), full_page=True)
    browser.get_by_role("link", name="三年级（2）班").first.click()
    assert browser.url.endswith(f"/classes/{CLASS}")
    # the default period is today (the later half of the two days stored): 20 wrote today
    assert browser.locator("#students tbody tr").count() == 20
    browser.screenshot(path=str(live.shots / "serve-class.png"), full_page=True)

    # the class report as made on request; its pygal scripts run under the policy's hashes
    browser.locator("p.links").get_by_role("link", name="班级报告").click()
    assert f"/reports/class/{CLASS}" in browser.url
    assert browser.locator("svg.pygal-chart").count() >= 1
    browser.go_back()
    browser.locator("#students tbody tr").first.get_by_role("link", name="学生报告").click()
    assert "/reports/student/stu-live-" in browser.url
    browser.go_back()
    browser.locator("#students tbody tr").first.get_by_role("link", name="JSON").first.click()
    report = json.loads(browser.locator("pre").first.inner_text())
    assert (report["kind"], report["school_id"]) == ("student", SCHOOL)

    # the subject picker carries on into the report links
    browser.goto(f"{live.url}/classes/{CLASS}")
    browser.select_option("select[name=subject]", "chinese")
    browser.get_by_role("button", name="显示").click()
    assert "subject=chinese" in browser.url
    href = browser.locator("p.links").get_by_role("link", name="班级报告").get_attribute("href")
    assert "subject=chinese" in str(href)
    assert messages == []
