"""The HTML reports in a real browser: Debian's headless Chromium loads each one
with no console message, and every chart the report's data calls for is there,
as an inline SVG with axes (and a legend where series are compared)."""

from __future__ import annotations

import json
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.test_reports import FROM, TO, Dataset, build_dataset, writech

CHROMIUM = "/usr/bin/chromium"
SAMPLES = [("student", "edge-graded"), ("class", "class-0000"), ("school", "school-000")]
A4_AT_150_DPI = (1240, 1754)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.getbasetemp() / "reports-dataset")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, isolated and offline-quiet; console messages go to stderr."""
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class Page(HTMLParser):
    """What the loaded page holds: charts by name, their SVG parts, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self.external: list[str] = []
        self._chart: str | None = None  # the figure being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href", "xlink:href"):
            if (attributes.get(name) or "").startswith(("http:", "https:", "//")):
                self.external.append(f"{tag} {name}={attributes[name]}")
        if tag == "link":
            self.external.append(f"link {attributes}")
        chart_name = attributes.get("data-chart")
        if tag == "figure" and chart_name:
            self._chart = chart_name
            self.charts[chart_name] = {"svg": 0, "axes": 0, "legends": 0}
        if self._chart is None:
            return
        classes = (attributes.get("class") or "").split()
        chart = self.charts[self._chart]
        chart["svg"] += tag == "svg" and "pygal-chart" in classes
        chart["axes"] += tag == "g" and "axis" in classes
        chart["legends"] += tag == "g" and "legend" in classes

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._chart = None


def expected_charts(kind: str, report: dict[str, Any]) -> set[str]:
    """The charts the report's data calls for (a chart of nothing is left out)."""
    summary = report.get("summary", report)
    charts = {f"trend_{key}" for key in summary["trend"]["values"]}
    if kind == "student":
        return charts | ({"knowledge_points"} if report["knowledge_points"] else set())
    charts.add("active_students")
    if summary["knowledge_points"]:
        charts |= {"knowledge_points_by_rate", "knowledge_points_by_students"}
    if kind == "class":
        charts |= {f"histogram_{d['indicator']}" for d in summary["distributions"] if d["students"]}
    else:
        charts.add("classes")
    return charts


def make(dataset: Dataset, kind: str, scope_id: str, out: Path, fmt: str = "html") -> None:
    result = writech(
        "report", kind, scope_id, "--data-dir", str(dataset.data_dir), "--format", fmt,
        "--from", FROM.isoformat(), "--to", TO.isoformat(), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_console_errors_are_seen(tmp_path: Path) -> None:
    # the check below is only worth something if a broken page fails it
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>console.error('broken'); missing();</script>")
    result = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    messages = console_messages(result.stderr)
    assert any("broken" in m for m in messages)
    assert any("missing is not defined" in m for m in messages)


@pytest.mark.parametrize(("kind", "scope_id"), SAMPLES)
def test_report_loads_cleanly_with_every_chart(
    dataset: Dataset, tmp_path: Path, kind: str, scope_id: str
) -> None:
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    make(dataset, kind, scope_id, html)
    make(dataset, kind, scope_id, data, "json")
    result = chromium(tmp_path / "profile", "--dump-dom", html.as_uri())
    assert result.returncode == 0, result.stderr
    assert console_messages(result.stderr) == []

    page = Page()
    page.feed(result.stdout)
    assert page.external == []
    expected = expected_charts(kind, json.loads(data.read_text()))
    assert set(page.charts) == expected
    for name, parts in page.charts.items():
        assert parts["svg"] == 1, name
        assert parts["axes"] >= 2, name  # an x and a y axis
    if kind == "student":
        assert page.charts["trend_homework_score"]["legends"] == 2  # the student and the class


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize(("kind", "scope_id"), SAMPLES[:2])
def test_screenshot_at_a4_width(dataset: Dataset, tmp_path: Path, kind: str, scope_id: str) -> None:
    html, png = tmp_path / "report.html", tmp_path / "report.png"
    make(dataset, kind, scope_id, html)
    result = chromium(
        tmp_path / "profile",
        "--hide-scrollbars",
        f"--window-size={A4_AT_150_DPI[0]},{A4_AT_150_DPI[1]}",
        f"--screenshot={png}",
        html.as_uri(),
    )
    assert result.returncode == 0, result.stderr
    assert png_size(png) == A4_AT_150_DPI
