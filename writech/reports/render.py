"""Reports as JSON, Markdown or one self-contained HTML file.

All three are rendered from the same model instance. HTML uses Jinja2
templates (writech/reports/templates) with inline CSS and inline pygal SVG
charts: no script, font or style is fetched from anywhere, so the file can
be mailed, archived and printed on A4 as it is.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Final

import msgspec
import pygal  # type: ignore[import-untyped]
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pygal.graph.graph import Graph  # type: ignore[import-untyped]
from pygal.style import Style  # type: ignore[import-untyped]

from writech.reports import build
from writech.reports.formats import EXTENSIONS, Format
from writech.reports.labels import (
    ACTIONS,
    AXES,
    ERROR_TYPES,
    INDICATORS,
    SUBJECTS,
    TEXT,
    UNITS,
    Lang,
)
from writech.reports.model import (
    SCHEMA_VERSION,
    AttentionReason,
    ClassReport,
    Declining,
    Distribution,
    FarBelowClass,
    GroupSummary,
    ImproveIndicator,
    IndicatorKey,
    KeepGoing,
    KnowledgePointErrors,
    Period,
    PractiseKnowledgePoint,
    Report,
    SchoolReport,
    StudentReport,
    Suggestion,
    Trend,
)

# CJK first, so Chinese labels render wherever one of them is installed.
FONT_STACK: Final = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", '
    '"Hiragino Sans GB", "WenQuanYi Micro Hei", "Noto Sans", "Helvetica Neue", Arial, sans-serif'
)
BLUE: Final = "#2563eb"
GREY: Final = "#94a3b8"
PALETTE: Final = (BLUE, "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04", "#db2777", GREY)


_LABEL_FONT_SIZE: Final = 13
_MARGIN: Final = 12


def _style(colors: tuple[str, ...]) -> Style:
    return Style(
        font_family=FONT_STACK,
        background="#ffffff",
        plot_background="#ffffff",
        foreground="#334155",
        foreground_strong="#0f172a",
        foreground_subtle="#cbd5e1",
        colors=colors,
        title_font_size=17,
        label_font_size=_LABEL_FONT_SIZE,
        major_label_font_size=13,
        legend_font_size=14,
        value_font_size=12,
        no_data_font_size=24,
        opacity=".75",
        opacity_hover=".9",
        guide_stroke_color="#e2e8f0",
        major_guide_stroke_color="#cbd5e1",
        guide_stroke_dasharray="3,3",
        major_guide_stroke_dasharray="3,3",
    )


_STYLE: Final = _style(PALETTE)
# A student (blue) against their class (grey).
_VERSUS: Final = _style((BLUE, GREY))
_DASHED: Final = {"width": 2, "dasharray": "6, 4"}
CHART_SMALL: Final = (420, 280)
CHART_WIDE: Final = (860, 340)
KNOWLEDGE_POINT_BARS: Final = 10
# Most date labels an axis shows; the others are left as ticks.
DATE_LABELS: Final = 8


def to_json(report: Report) -> str:
    return msgspec.json.format(msgspec.json.encode(report).decode(), indent=2) + "\n"


def json_schema() -> str:
    """JSON Schema of every report kind (docs/reports.md describes it in prose)."""
    schema = msgspec.json.schema(Report)
    return msgspec.json.format(msgspec.json.encode(schema).decode(), indent=2) + "\n"


def render(report: Report, fmt: Format, lang: Lang = "zh") -> str:
    if fmt == "json":
        return to_json(report)
    texts = Texts(lang)
    kind = _kind(report)
    context: dict[str, Any] = {
        "report": report,
        "t": TEXT[lang],
        "f": texts,
        "kind": kind,
        "version": SCHEMA_VERSION,
        "rules": {
            "decline": f"{build.DECLINE_POINTS:g}",
            "half": build.MIN_EVENTS_PER_HALF,
            "far": build.MIN_EVENTS_FAR_BELOW,
            "fence": build.MIN_STUDENTS_FOR_FENCE,
        },
    }
    if fmt == "html":
        context["charts"] = Charts(texts).of(report)
        context["font_stack"] = Markup(FONT_STACK)
    return _environment().get_template(f"{kind}.{EXTENSIONS[fmt]}.j2").render(context)


def _kind(report: Report) -> str:
    if isinstance(report, StudentReport):
        return "student"
    return "class" if isinstance(report, ClassReport) else "school"


@functools.cache
def _environment() -> Environment:
    """One Jinja2 environment: HTML templates autoescaped, Markdown ones not."""
    environment = Environment(
        loader=PackageLoader("writech.reports", "templates"),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = _markdown_cell
    return environment


def _markdown_cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


_MINUS: Final = "\u2212"


class Texts:
    """Numbers and names as one language shows them; `None` is always "no data"."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self.t = TEXT[lang]

    def indicator(self, key: IndicatorKey, per_student: bool = False) -> str:
        name = INDICATORS[self.lang][key]
        totals = key not in {m.key for m in build.MEASURES if m.averaged}
        return name + self.t["per_student"] if per_student and totals else name

    def unit(self, key: IndicatorKey) -> str:
        return UNITS[self.lang][key]

    def heading(self, key: IndicatorKey, per_student: bool = False) -> str:
        """A column heading: the name, and the unit the column's numbers are in."""
        unit = self.unit(key)
        name = self.indicator(key, per_student)
        return self.parenthesised(name, unit) if unit else name

    def parenthesised(self, text: str, aside: object) -> str:
        return f"{text}（{aside}）" if self.lang == "zh" else f"{text} ({aside})"

    def axis(self, key: IndicatorKey) -> str:
        return AXES[self.lang][key]

    def number(self, value: float | None, key: IndicatorKey | None = None) -> str:
        """The value without unit: 1 decimal for scores and speed, whole numbers for totals."""
        if value is None:
            return self.t["no_data"]
        if key in ("study_minutes", "strokes", "characters"):
            return f"{value:,.0f}".replace("-", _MINUS)
        return f"{value:.1f}".replace("-", _MINUS)

    def value(self, value: float | None, key: IndicatorKey) -> str:
        text = self.number(value, key)
        unit = self.unit(key)
        if value is None or not unit:
            return text
        return f"{text}{unit}" if unit in ("%", "/100") or self.lang == "zh" else f"{text} {unit}"

    def change(self, value: float | None, key: IndicatorKey) -> str:
        if value is None:
            return "—"
        sign = "+" if value > 0 else (_MINUS if value < 0 else "±")
        return sign + self.number(abs(value), key)

    def direction(self, value: float | None) -> str:
        """A CSS class: every indicator is better when higher."""
        if not value:
            return ""
        return "up" if value > 0 else "down"

    def rate(self, value: float | None) -> str:
        return self.t["no_data"] if value is None else f"{value:.1f}%"

    def subject(self, name: str) -> str:
        return SUBJECTS[self.lang].get(name, name)

    def error_type(self, name: str) -> str:
        return ERROR_TYPES[self.lang].get(name, name)

    def error_types(self, point: KnowledgePointErrors) -> str:
        return self.t["list_separator"].join(
            f"{self.error_type(name)} {count}" for name, count in point.error_types.items()
        )

    def day(self, day: date) -> str:
        return day.strftime("%m-%d")

    def period(self, period: Period) -> str:
        days = self.t["days"].format(days=period.days)
        return self.parenthesised(f"{period.start.isoformat()} – {period.end.isoformat()}", days)

    def suggestion(self, suggestion: Suggestion) -> str:
        if isinstance(suggestion, PractiseKnowledgePoint):
            return self.t["practise_knowledge_point"].format(
                subject=self.subject(suggestion.subject),
                knowledge_point=suggestion.knowledge_point,
                homework_with_errors=suggestion.homework_with_errors,
                graded_homework=suggestion.graded_homework,
                error_rate=self.rate(suggestion.error_rate),
                class_error_rate=self.rate(suggestion.class_error_rate),
                main_error_type=self.error_type(suggestion.main_error_type),
            )
        if isinstance(suggestion, ImproveIndicator):
            key = suggestion.indicator
            return self.t["improve_indicator"].format(
                indicator=self.indicator(key),
                value=self.value(suggestion.value, key),
                class_average=self.value(suggestion.class_average, key),
                previous=self.value(suggestion.previous, key),
                action=ACTIONS[self.lang][key],
            )
        assert isinstance(suggestion, KeepGoing)
        return self.t["keep_going"]

    def reason(self, reason: AttentionReason) -> str:
        if isinstance(reason, Declining):
            key = reason.indicator
            return self.t["declining"].format(
                indicator=self.indicator(key),
                first_half=self.value(reason.first_half, key),
                second_half=self.value(reason.second_half, key),
                drop=self.number(reason.drop, key),
            )
        if isinstance(reason, FarBelowClass):
            key = reason.indicator
            return self.t["far_below_class"].format(
                indicator=self.indicator(key),
                value=self.value(reason.value, key),
                class_median=self.value(reason.class_median, key),
                lower_fence=self.value(reason.lower_fence, key),
            )
        return self.t["no_activity"].format(previous_active_days=reason.previous_active_days)


def _wide_text_extra(labels: Sequence[str]) -> int:
    """Room pygal misses for labels in CJK: it sizes every character as 0.6 em, these take 1."""
    wide = max(
        (sum(unicodedata.east_asian_width(c) in "WF" for c in label) for label in labels), default=0
    )
    return math.ceil(wide * 0.45 * _LABEL_FONT_SIZE)


def _svg(chart: Graph) -> Markup:
    # pygal builds the SVG as an element tree: labels from the data are escaped
    return Markup(chart.render(is_unicode=True))


class Charts:
    """Every chart of a report, as inline SVG keyed by a name the templates use."""

    def __init__(self, texts: Texts) -> None:
        self.texts = texts
        self.t = texts.t

    def _chart(
        self,
        kind: Callable[..., Graph],
        size: tuple[int, int],
        style: Style = _STYLE,
        **options: Any,
    ) -> Graph:
        width, height = size
        chart: Graph = kind(
            style=style,
            width=width,
            height=height,
            no_data_text=self.t["no_data"],
            # pygal's default adds a tooltip script from a CDN: the file must stand alone.
            js=[],
            disable_xml_declaration=True,
            legend_at_bottom=True,
            truncate_legend=-1,
            truncate_label=-1,
            margin=_MARGIN,
            # room for the last x label, which pygal centres on the plot's right edge
            margin_right=3 * _MARGIN,
            spacing=8,
            max_scale=6,
            **options,
        )
        return chart

    def of(self, report: Report) -> dict[str, Markup]:
        if isinstance(report, StudentReport):
            return self._student(report)
        if isinstance(report, ClassReport):
            charts = self._group(report.summary, "class")
            charts |= {
                f"histogram_{spread.indicator}": self._histogram(spread)
                for spread in report.summary.distributions
                if spread.histogram
            }
            return charts
        charts = self._group(report.summary, "school")
        if report.classes:
            charts["classes"] = self._classes(report)
        return charts

    def _student(self, report: StudentReport) -> dict[str, Markup]:
        charts = {
            f"trend_{key}": self._trend(
                key,
                report.trend,
                [
                    (self.t["trend_student"], report.trend),
                    (self.t["trend_class"], report.class_trend),
                ],
            )
            for key in report.trend.values
        }
        points = report.knowledge_points
        if points:
            charts["knowledge_points"] = self._bars(
                [self._point_label(p.subject, p.knowledge_point) for p in points],
                [
                    (self.t["trend_student"], [p.error_rate for p in points]),
                    (self.t["class_error_rate"], [p.class_error_rate for p in points]),
                ],
                self.t["error_rate"] + " (%)",
            )
        return charts

    def _group(self, summary: GroupSummary, scope: str) -> dict[str, Markup]:
        name = self.t[f"trend_{scope}"]
        charts = {
            f"trend_{key}": self._trend(key, summary.trend, [(name, summary.trend)])
            for key in summary.trend.values
        }
        active = self._chart(
            pygal.Bar,
            CHART_WIDE,
            title=self.t["active_students"],
            y_title=self.t["students_unit"],
            show_legend=False,
            **self._date_axis(summary.trend.dates),
        )
        active.add(self.t["active_students"], summary.active_students)
        charts["active_students"] = _svg(active)
        by_rate = summary.knowledge_points[:KNOWLEDGE_POINT_BARS]
        if by_rate:
            charts["knowledge_points_by_rate"] = self._bars(
                [self._point_label(p.subject, p.knowledge_point) for p in by_rate],
                [(self.t["error_rate"], [p.error_rate for p in by_rate])],
                self.t["error_rate"] + " (%)",
            )
            by_students = sorted(summary.knowledge_points, key=lambda p: -p.students_affected)
            by_students = by_students[:KNOWLEDGE_POINT_BARS]
            charts["knowledge_points_by_students"] = self._bars(
                [self._point_label(p.subject, p.knowledge_point) for p in by_students],
                [(self.t["students_affected"], [float(p.students_affected) for p in by_students])],
                self.t["students_unit"],
                "{:.0f}",
            )
        return charts

    def _classes(self, report: SchoolReport) -> Markup:
        chart = self._chart(
            pygal.Bar,
            CHART_WIDE,
            title=self.t["class_scores"],
            y_title=self.t["score"] + " / " + AXES[self.texts.lang]["writing_quality"],
            range=(0, 100),
            x_label_rotation=-30 if len(report.classes) > 8 else 0,
        )
        chart.x_labels = [c.class_id for c in report.classes]
        for key in build.SCORES:
            chart.add(self.texts.indicator(key), [c.values[key] for c in report.classes])
        return _svg(chart)

    def _date_axis(self, dates: Sequence[date]) -> dict[str, Any]:
        every = max(1, math.ceil(len(dates) / DATE_LABELS))
        return {
            "x_labels": [self.texts.day(d) for d in dates],
            "x_labels_major_every": every,
            "show_minor_x_labels": every == 1,
        }

    def _trend(
        self, key: IndicatorKey, trend: Trend, series: Sequence[tuple[str, Trend]]
    ) -> Markup:
        scores = key in build.SCORES
        chart = self._chart(
            pygal.Line,
            CHART_SMALL,
            _VERSUS,
            title=self.texts.indicator(key, per_student=len(series) == 1),
            y_title=self.texts.axis(key),
            allow_interruptions=True,
            dots_size=3,
            show_legend=len(series) > 1,
            **({"range": (0, 100)} if scores else {"include_x_axis": True}),
            **self._date_axis(trend.dates),
        )
        for index, (name, values) in enumerate(series):
            chart.add(
                name, values.values[key], stroke_style={"width": 2} if index == 0 else _DASHED
            )
        return _svg(chart)

    def _histogram(self, spread: Distribution) -> Markup:
        key = spread.indicator
        chart = self._chart(
            pygal.Histogram,
            CHART_SMALL,
            title=self.texts.indicator(key),
            x_title=self.texts.axis(key),
            y_title=self.t["histogram_y"],
            show_legend=False,
        )
        chart.add(
            self.texts.indicator(key),
            [(b.students, b.start, b.end) for b in spread.histogram],
        )
        return _svg(chart)

    def _bars(
        self,
        labels: list[str],
        series: Sequence[tuple[str, list[float | None]]],
        axis: str,
        value_format: str = "{:.1f}%",
    ) -> Markup:
        chart = self._chart(
            pygal.HorizontalBar,
            (CHART_WIDE[0], 90 + 30 * len(labels) * len(series)),
            _VERSUS,
            margin_left=_MARGIN + _wide_text_extra(labels),
            # the value axis of a horizontal chart is pygal's x axis
            x_title=axis,
            show_legend=len(series) > 1,
            include_x_axis=True,
            print_values=True,
            formatter=value_format.format,
        )
        # pygal stacks horizontal bars bottom-up: reverse so the first is on top.
        chart.x_labels = labels[::-1]
        for name, values in series:
            chart.add(name, values[::-1])
        return _svg(chart)

    def _point_label(self, subject: str, knowledge_point: str) -> str:
        return f"{self.texts.subject(subject)} · {knowledge_point}"
