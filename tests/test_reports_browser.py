"""The HTML reports in a real browser: Debian's headless Chromium loads each one
with no console message and nothing wider than an A4 page, every chart the
report's data calls for is there (an inline SVG with axes, and a legend where
series are compared), and printed to PDF the parent page is one A4 page and
the class report's essentials are at most three."""

from __future__ import annotations

import json
import re
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.test_reports import CLASS, FROM, TO, Dataset, build_dataset, writech

CHROMIUM = "/usr/bin/chromium"
SAMPLES = [
    ("class", CLASS, "zh"),
    ("class", CLASS, "en"),
    ("student", "stu-000005", "zh"),
    ("student", "stu-000006", "en"),
    ("school", "school-000", "zh"),
    ("parent", "stu-000005", "zh"),
    ("parent", "stu-000012", "en"),
]
A4_AT_150_DPI = (1240, 1754)
A4_AT_96_DPI = (794, 1123)
DETAILS = '<div class="page-break" id="details">'


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
        self.overflow: dict[str, Any] | None = None
        self._chart: str | None = None  # the figure being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body" and attributes.get("data-overflow"):
            self.overflow = json.loads(attributes["data-overflow"] or "{}")
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
    if kind == "parent":
        return set()
    summary = report.get("summary", report)
    charts = {f"trend_{key}" for key in summary["trend"]["values"]}
    if kind == "student":
        rated = [p for p in report["knowledge_points"] if p["error_rate"] is not None]
        return charts | ({"knowledge_points"} if rated else set())
    charts.add("active_students")
    if summary["knowledge_points"]:
        charts.add("knowledge_points")
    if kind == "class":
        scores = {
            "homework_score",
            "exam_score",
            "stroke_order_accuracy",
            "legibility",
            "writing_quality",
        }
        charts |= {
            f"histogram_{d['indicator']}"
            for d in summary["distributions"]
            if d["students"] and d["indicator"] in scores
        }
    else:
        charts.add("classes")
    return charts


def make(
    dataset: Dataset, kind: str, scope_id: str, out: Path, fmt: str = "html", lang: str = "zh"
) -> None:
    result = writech(
        "report", kind, scope_id, "--data-dir", str(dataset.data_dir), "--format", fmt,
        "--from", FROM.isoformat(), "--to", TO.isoformat(), "--out", str(out), "--lang", lang,
        "--roster", str(dataset.roster),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# Measures, once the page is laid out at A4 width, whatever sticks out of it.
OVERFLOW_PROBE = """<script>
const page = document.documentElement;
const wide = [...document.querySelectorAll("body *")]
  .filter((e) => { const r = e.getBoundingClientRect(); return r.width && (r.right > page.clientWidth + 0.5 || r.left < -0.5); })
  .map((e) => e.tagName + "." + e.className + ": " + (e.textContent || "").slice(0, 40));
document.body.dataset.overflow = JSON.stringify({scroll: page.scrollWidth, client: page.clientWidth, wide});
</script>"""


def pdf_pages(pdf: Path) -> int:
    """Pages of a PDF Chromium printed: one page object each."""
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))


def print_to_pdf(profile: Path, html: Path) -> Path:
    pdf = html.with_suffix(".pdf")
    result = chromium(profile, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri())
    assert result.returncode == 0, result.stderr
    return pdf


def test_console_errors_and_overflow_are_seen(tmp_path: Path) -> None:
    # the checks below are only worth something if a broken page fails them
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><body><p>x</p><table><tr><td style='white-space:nowrap'>"
        + "x" * 400
        + "</td></tr></table><script>console.error('broken'); missing();</script>"
        + OVERFLOW_PROBE
        + "</body>"
    )
    result = chromium(
        tmp_path / "profile",
        f"--window-size={A4_AT_96_DPI[0]},{A4_AT_96_DPI[1]}",
        "--dump-dom",
        page.as_uri(),
    )
    messages = console_messages(result.stderr)
    assert any("broken" in m for m in messages)
    assert any("missing is not defined" in m for m in messages)
    parsed = Page()
    parsed.feed(result.stdout)
    assert parsed.overflow is not None
    assert parsed.overflow["scroll"] > parsed.overflow["client"]
    assert parsed.overflow["wide"]


def test_pdf_pages_are_counted(tmp_path: Path) -> None:
    page = tmp_path / "three.html"
    page.write_text(
        "<!DOCTYPE html><style>div { break-before: page; }</style><p>1</p><div>2</div><div>3</div>"
    )
    assert pdf_pages(print_to_pdf(tmp_path / "profile", page)) == 3


@pytest.mark.parametrize(("kind", "scope_id", "lang"), SAMPLES)
def test_report_loads_cleanly_within_the_page_with_every_chart(
    dataset: Dataset, tmp_path: Path, kind: str, scope_id: str, lang: str
) -> None:
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    make(dataset, kind, scope_id, html, lang=lang)
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

    probed = tmp_path / "probed.html"
    probed.write_text(html.read_text().replace("</body>", OVERFLOW_PROBE + "</body>"))
    result = chromium(
        tmp_path / "profile",
        f"--window-size={A4_AT_96_DPI[0]},{A4_AT_96_DPI[1]}",
        "--dump-dom",
        probed.as_uri(),
    )
    page = Page()
    page.feed(result.stdout)
    assert page.overflow is not None
    assert page.overflow["wide"] == []
    assert page.overflow["scroll"] <= page.overflow["client"]


@pytest.mark.parametrize(
    ("scope_id", "lang"), [("stu-000005", "zh"), ("stu-000006", "zh"), ("stu-000012", "en")]
)
def test_parent_page_prints_on_one_a4_page(
    dataset: Dataset, tmp_path: Path, scope_id: str, lang: str
) -> None:
    html = tmp_path / "parent.html"
    make(dataset, "parent", scope_id, html, lang=lang)
    assert pdf_pages(print_to_pdf(tmp_path / "profile", html)) == 1


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_class_essentials_print_on_at_most_three_pages(
    dataset: Dataset, tmp_path: Path, lang: str
) -> None:
    html = tmp_path / "class.html"
    make(dataset, "class", CLASS, html, lang=lang)
    text = html.read_text()
    assert DETAILS in text
    essentials = tmp_path / "essentials.html"
    essentials.write_text(text[: text.index(DETAILS)] + "</body></html>")
    assert 'id="actions"' in essentials.read_text()
    assert pdf_pages(print_to_pdf(tmp_path / "profile", essentials)) <= 3
    # the details follow, on pages of their own
    assert pdf_pages(print_to_pdf(tmp_path / "profile", html)) > 3


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize(
    ("kind", "scope_id"), [("class", CLASS), ("student", "stu-000005"), ("parent", "stu-000005")]
)
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
