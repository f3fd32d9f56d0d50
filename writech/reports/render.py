"""Reports as JSON, Markdown or one self-contained HTML file.

All three are rendered from the same model instance, by functions from a
report to a string (`render`), so a web app can serve them as they are.
HTML uses Jinja2 templates (writech/reports/templates) with inline CSS and
inline pygal SVG charts: no script, font or style is fetched from anywhere,
so the file can be mailed, archived and printed on A4 as it is.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
import pygal  # type: ignore[import-untyped]
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pygal.graph.graph import Graph  # type: ignore[import-untyped]
from pygal.style import Style  # type: ignore[import-untyped]

from writech.reports.formats import EXTENSIONS, Format
from writech.reports.indicators import SCORES
from writech.reports.labels import (
    ACTIONS,
    AXES,
    ERROR_TYPES,
    FLAGS,
    INDICATORS,
    SUBJECTS,
    TEXT,
    TIERS,
    UNITS,
    ZONES,
    Lang,
)
from writech.reports.model import (
    SCHEMA_VERSION,
    AboveClass,
    Action,
    AttentionReason,
    CharacterScore,
    CharactersImproving,
    CharactersMastered,
    ClassReport,
    ContactFamily,
    Declining,
    Distribution,
    FarBelowClass,
    FlagReason,
    FullMarks,
    GroupSummary,
    Improved,
    IndicatorKey,
    KnowledgePoint,
    ParentReport,
    Period,
    PointsMastered,
    PractiseCharacters,
    PractiseKnowledgePoint,
    QuestionRef,
    Reading,
    Report,
    SchoolReport,
    SteadyPractice,
    Strength,
    StudentReport,
    Tier,
    Trend,
)

# CJK first, so Chinese labels render wherever one of them is installed.
FONT_STACK: Final = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", '
    '"Hiragino Sans GB", "WenQuanYi Micro Hei", "Noto Sans", "Helvetica Neue", Arial, sans-serif'
)
# Characters shown large, as a teacher writes them on the board.
KAI_STACK: Final = '"Noto Serif CJK SC", "Source Han Serif SC", "KaiTi", "STKaiti", serif'
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
    """The report as a document: JSON, Markdown or a self-contained HTML page."""
    if fmt == "json":
        return to_json(report)
    texts = Texts(lang, report)
    kind = _kind(report)
    context: dict[str, Any] = {
        "report": report,
        "t": texts.t,
        "f": texts,
        "rules": texts.rules,
        "kind": kind,
        "version": SCHEMA_VERSION,
    }
    if fmt == "html":
        context["charts"] = Charts(texts).of(report)
        context["font_stack"] = Markup(FONT_STACK)
        context["kai_stack"] = Markup(KAI_STACK)
    return _environment(fmt).get_template(f"{kind}.{EXTENSIONS[fmt]}.j2").render(context)


def _kind(report: Report) -> str:
    if isinstance(report, StudentReport):
        return "student"
    if isinstance(report, ParentReport):
        return "parent"
    return "class" if isinstance(report, ClassReport) else "school"


@functools.cache
def _environment(fmt: Format) -> Environment:
    """The Jinja2 environment of one format: every value a template shows is escaped for it.

    HTML escapes as Jinja2 does. Markdown escapes by `finalize`, which runs on
    every `{{ ... }}` value before autoescaping: it returns the value's Markdown
    as `Markup`, which autoescaping then leaves alone, as it leaves the output
    of macros and `caller()` (Markup too), so nothing is escaped twice. Ids,
    names and knowledge points come from the devices and the roster, so the
    escaping covers every value, not a list of them that a template could
    forget to extend.
    """
    markdown = fmt == "markdown"
    return Environment(
        loader=PackageLoader("writech.reports", "templates"),
        autoescape=True,
        finalize=_markdown_value if markdown else None,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# ASCII punctuation that starts inline Markdown (CommonMark and GitHub's tables and
# strikethrough): raw HTML and autolinks (<), entities (&), links and images ([ ]),
# code (`), emphasis (* _), strikethrough (~), cells (|), and the escape itself.
_MARKDOWN_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>&|~])")


def _markdown_value(value: object) -> Markup:
    """`value` as Markdown text that renders as itself, on one line (it may sit in a table cell)."""
    if isinstance(value, Markup):
        return value  # a macro's output, Markdown already
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))
    return Markup(text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


_MINUS: Final = "\u2212"
_TOTALS: Final = frozenset({"study_minutes", "strokes", "characters"})


class Texts:
    """Numbers, names and sentences as one language shows them, for one report.

    `None` is always "no data" or "too little data", never 0.
    """

    def __init__(self, lang: Lang, report: Report) -> None:
        self.lang = lang
        self.t = TEXT[lang]
        self.report = report
        self.zone = ZoneInfo(report.timezone)
        # the thresholds, and the report's time zone, as sentence fields
        self.rules: dict[str, Any] = msgspec.structs.asdict(report.thresholds) | {
            "timezone": self.zone_name()
        }

    # -- names ----------------------------------------------------------------

    def student(self, student_id: str) -> str:
        return self.report.student_names.get(student_id, student_id)

    def class_name(self, class_id: str) -> str:
        return self.report.class_names.get(class_id, class_id) or "—"

    def students(self, ids: Sequence[str], limit: int = 12) -> str:
        """Names, the first `limit` of them, and how many more."""
        names = self.t["list_separator"].join(self.student(s) for s in ids[:limit])
        if len(ids) > limit:
            names += " " + self.t["and_more"].format(count=len(ids) - limit, total=len(ids))
        return names

    def subject(self, name: str | None) -> str:
        if name is None:
            return self.t["all_subjects"]
        return SUBJECTS[self.lang].get(name, name)

    def error_type(self, name: str) -> str:
        return ERROR_TYPES[self.lang].get(name, name)

    def error_types(self, types: dict[str, int]) -> str:
        return self.t["list_separator"].join(
            f"{self.error_type(name)} {count}" for name, count in types.items()
        )

    def tier(self, tier: Tier) -> str:
        return TIERS[self.lang][tier]

    # -- numbers --------------------------------------------------------------

    def indicator(self, key: IndicatorKey) -> str:
        return INDICATORS[self.lang][key]

    def unit(self, key: IndicatorKey) -> str:
        return UNITS[self.lang][key]

    def heading(self, key: IndicatorKey) -> str:
        """A column heading: the name, and the unit the column's numbers are in."""
        unit = self.unit(key)
        name = self.indicator(key)
        return self.parenthesised(name, unit) if unit else name

    def parenthesised(self, text: str, aside: object) -> str:
        return f"{text}（{aside}）" if self.lang == "zh" else f"{text} ({aside})"

    def axis(self, key: IndicatorKey) -> str:
        return AXES[self.lang][key]

    def number(self, value: float | None, key: IndicatorKey | None = None) -> str:
        """The value without unit: 1 decimal for averages, whole numbers for totals."""
        if value is None:
            return self.t["no_data"]
        if key in _TOTALS:
            return f"{value:,.0f}".replace("-", _MINUS)
        return f"{value:.1f}".replace("-", _MINUS)

    def value(self, value: float | None, key: IndicatorKey) -> str:
        text = self.number(value, key)
        unit = self.unit(key)
        if value is None or not unit:
            return text
        return f"{text}{unit}" if unit in ("%", "/100") or self.lang == "zh" else f"{text} {unit}"

    def reading(self, reading: Reading | None, key: IndicatorKey, students: bool = False) -> str:
        """A value, or why there is none: no data, or too little (and how little)."""
        if reading is None or reading.evidence == "none":
            return self.t["no_data"]
        if reading.value is None:
            return self.t["too_little_students" if students else "too_little_events"].format(
                count=reading.count
            )
        return self.value(reading.value, key)

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
        """A share in percent; None only under an evidence floor."""
        return self.t["too_little"] if value is None else f"{value:.1f}%"

    def score(self, value: float) -> str:
        return f"{value:.1f}"

    # -- dates and times --------------------------------------------------------

    def day(self, day: date) -> str:
        return day.strftime("%m-%d")

    def month_day(self, day: date) -> str:
        return self.t["month_day"].format(month=day.month, day=day.day, month_name=f"{day:%b}")

    def date_range(self, period: Period) -> str:
        return self.t["date_range"].format(start=period.start, end=period.end)

    def period(self, period: Period) -> str:
        days = self.t["days"].format(days=period.days)
        return self.parenthesised(self.date_range(period), days)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def time(self, moment: datetime) -> str:
        return self.local(moment).strftime("%H:%M")

    def stamp(self, moment: datetime) -> str:
        """Date and time in the school's time zone, named."""
        return f"{self.local(moment):%Y-%m-%d %H:%M} {self.zone_name()}"

    def zone_name(self) -> str:
        return ZONES[self.lang].get(self.report.timezone, self.report.timezone)

    # -- questions and characters ---------------------------------------------

    def question(self, question_id: str) -> str:
        """q5 as the language numbers questions ("5" in "第 5 题", "Q5"); other ids as they are."""
        if question_id[:1] == "q" and question_id[1:].isdigit():
            return self.t["question_each"].format(number=question_id[1:])
        return question_id

    def questions(self, references: Sequence[QuestionRef], subject: str | None = None) -> str:
        """Questions grouped by homework, in the order given: by the homework's id, or for
        a family (given the subject) by the day it was handed in."""
        by_homework: dict[tuple[str, date], list[str]] = {}
        for reference in references:
            by_homework.setdefault((reference.homework_id, reference.date), []).append(
                self.question(reference.question_id)
            )
        return self.t["list_separator"].join(
            self.t["question_ref"].format(homework_id=homework_id, question=self._join(numbers))
            if subject is None
            else self.t["parent_question_ref"].format(
                date=self.month_day(day),
                subject=self.subject(subject),
                question=self._join(numbers),
            )
            for (homework_id, day), numbers in by_homework.items()
        )

    def _join(self, items: Sequence[str]) -> str:
        return self.t["list_separator"].join(items)

    def question_ids(self, question_ids: Sequence[str]) -> str:
        return self.t["question_number"].format(
            question=self.t["list_separator"].join(self.question(q) for q in question_ids)
        )

    def glyphs(self, scores: Sequence[CharacterScore]) -> str:
        return self._join([self.t["glyph"].format(character=s.character) for s in scores])

    def character_scores(self, scores: Sequence[CharacterScore]) -> str:
        return self.t["list_separator"].join(
            self.t["character_score"].format(
                character=s.character, mean=self.number(s.mean), attempts=s.attempts
            )
            for s in scores
        )

    def character_progress(self, scores: Sequence[CharacterScore]) -> str:
        return self.t["list_separator"].join(
            self.t["character_progress"].format(
                character=s.character,
                first_half=self.number(s.first_half),
                second_half=self.number(s.second_half),
            )
            for s in scores
        )

    def flags(self, reasons: Sequence[FlagReason]) -> str:
        return self.t["list_separator"].join(
            FLAGS[self.lang][reason].format(**self.rules) for reason in reasons
        )

    def flag_rules(self) -> str:
        return self.t["list_separator"].join(
            text.format(**self.rules) for text in FLAGS[self.lang].values()
        )

    # -- sentences --------------------------------------------------------------

    def reason(self, reason: AttentionReason) -> str:
        if isinstance(reason, Declining):
            key = reason.indicator
            return self.t["declining"].format(
                indicator=self.indicator(key),
                previous=self.value(reason.previous, key),
                current=self.value(reason.current, key),
                drop=self.number(reason.drop, key),
            )
        if isinstance(reason, FarBelowClass):
            key = reason.indicator
            return self.t["far_below_class"].format(
                indicator=self.indicator(key),
                value=self.value(reason.value, key),
                class_median=self.value(reason.class_median, key),
                gap=self.number(reason.gap, key),
            )
        return self.t["no_activity"].format(previous_active_days=reason.previous_active_days)

    def action(self, action: Action) -> str:
        """An action or a suggestion: what to do, with the numbers behind it."""
        if isinstance(action, ContactFamily):
            return self.t["contact_family"].format(previous_active_days=action.previous_active_days)
        if isinstance(action, PractiseKnowledgePoint):
            return self.t["practise_knowledge_point"].format(
                subject=self.subject(action.subject),
                knowledge_point=action.knowledge_point,
                homework_with_errors=action.homework_with_errors,
                graded_homework=action.graded_homework,
                error_rate=self.rate(action.error_rate),
                class_error_rate=self.rate(action.class_error_rate),
                main_error_type=self.error_type(action.main_error_type),
                questions=self.questions(action.questions),
            )
        if isinstance(action, PractiseCharacters):
            return self.t["practise_characters"].format(
                characters=self.character_scores(action.characters)
            )
        key = action.indicator
        return self.t["improve_indicator"].format(
            indicator=self.indicator(key),
            value=self.value(action.value, key),
            class_median=self.value(action.class_median, key),
            previous=self.value(action.previous, key),
            action=ACTIONS[self.lang][key],
        )

    def strength(self, strength: Strength, parent: bool = False) -> str:
        """What went well; for a parent, in the plainest words."""
        prefix = "parent_" if parent else ""
        if isinstance(strength, AboveClass):
            key = strength.indicator
            return self.t[prefix + "above_class"].format(
                indicator=self.indicator(key),
                value=self.value(strength.value, key),
                class_median=self.value(strength.class_median, key),
            )
        if isinstance(strength, Improved):
            key = strength.indicator
            return self.t[prefix + "improved"].format(
                indicator=self.indicator(key),
                value=self.value(strength.value, key),
                previous=self.value(strength.previous, key),
            )
        if isinstance(strength, CharactersMastered):
            characters = (
                self.glyphs(strength.characters)
                if parent
                else self.character_scores(strength.characters)
            )
            return self.t[prefix + "characters_mastered"].format(characters=characters)
        if isinstance(strength, CharactersImproving):
            return self.t[prefix + "characters_improving"].format(
                characters=self.character_progress(strength.characters)
            )
        if isinstance(strength, PointsMastered):
            return self.t[prefix + "points_mastered"].format(
                points=self._join(
                    [
                        self.t[prefix + "point_mastered"].format(
                            subject=self.subject(p.subject),
                            knowledge_point=p.knowledge_point,
                            homework=p.homework,
                            class_error_rate=self.rate(p.class_error_rate),
                        )
                        for p in strength.points
                    ]
                )
            )
        if isinstance(strength, FullMarks):
            return self.t[prefix + "full_marks"].format(
                homework=strength.homework, graded_homework=strength.graded_homework
            )
        assert isinstance(strength, SteadyPractice)
        return self.t[prefix + "steady_practice"].format(
            active_days=strength.active_days, days=strength.days
        )

    def practice_title(self, item: PractiseCharacters | PractiseKnowledgePoint) -> str:
        if isinstance(item, PractiseCharacters):
            return self.t["parent_characters_title"].format(characters=self.glyphs(item.characters))
        return self.t["parent_point_title"].format(
            subject=self.subject(item.subject), knowledge_point=item.knowledge_point
        )

    def practice_body(self, item: PractiseCharacters | PractiseKnowledgePoint) -> str:
        if isinstance(item, PractiseCharacters):
            means = [s.mean for s in item.characters if s.mean is not None]
            return self.t["parent_characters_body"].format(
                mean=f"{sum(means) / len(means):.0f}" if means else self.t["no_data"]
            )
        return self.t["parent_point_body"].format(
            homework_with_errors=item.homework_with_errors,
            graded_homework=item.graded_homework,
            questions=self.questions(item.questions, item.subject),
        )

    def parent_facts(self, report: ParentReport) -> str:
        score = (
            ""
            if report.homework_score is None
            else self.t["parent_score"].format(
                score=self.value(report.homework_score, "homework_score")
            )
        )
        return self.t["parent_facts"].format(
            name=self.student(report.student_id),
            homework_done=report.homework_done,
            score=score,
            active_days=report.active_days,
            characters_written=report.characters_written,
        )


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
        if isinstance(report, ParentReport):
            return {}
        if isinstance(report, ClassReport):
            charts = self._group(report.summary, "class")
            charts |= {
                f"histogram_{spread.indicator}": self._histogram(spread)
                for spread in report.summary.distributions
                if spread.histogram and spread.indicator in SCORES
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
        points = [p for p in report.knowledge_points if p.error_rate is not None]
        points = points[:KNOWLEDGE_POINT_BARS]
        if points:
            charts["knowledge_points"] = self._bars(
                [self._point_label(p) for p in points],
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
        points = summary.knowledge_points[:KNOWLEDGE_POINT_BARS]
        if points:
            charts["knowledge_points"] = self._bars(
                [self._point_label(p) for p in points],
                [
                    (self.t["students_repeated"], [float(p.students_repeated) for p in points]),
                    (self.t["students_affected"], [float(p.students_affected) for p in points]),
                ],
                self.t["students_unit"],
                "{:.0f}",
            )
        return charts

    def _classes(self, report: SchoolReport) -> Markup:
        chart = self._chart(
            pygal.Bar,
            CHART_WIDE,
            title=self.t["class_scores"],
            y_title=self.t["score"] + " (%)",
            range=(0, 100),
            x_label_rotation=-30 if len(report.classes) > 8 else 0,
        )
        chart.x_labels = [self.texts.class_name(c.class_id) for c in report.classes]
        for key in SCORES:
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
        chart = self._chart(
            pygal.Line,
            CHART_SMALL,
            _VERSUS,
            title=self.texts.indicator(key),
            y_title=self.texts.axis(key),
            allow_interruptions=True,
            dots_size=3,
            show_legend=len(series) > 1,
            **({"range": (0, 100)} if key in SCORES else {"include_x_axis": True}),
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

    def _point_label(self, point: KnowledgePoint) -> str:
        return f"{self.texts.subject(point.subject)} · {point.knowledge_point}"
