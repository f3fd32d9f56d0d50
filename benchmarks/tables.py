"""A benchmark report's figures as the Markdown tables docs/benchmarks.md quotes.

`benchmarks.run` writes them to `benchmarks/results/tables.md` after every
run, so that the document is regenerated from one run by pasting, never
by copying numbers by hand. With a report of an earlier run (`--before`),
the results and ratios get its figures beside this run's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

# An earlier report without a lean floor had only the floor that is now the
# lean one (decode + validate + dedup + aggregate): it stands for that row,
# and the floors of now (with windows, columns and batching) have no before.
_BEFORE_LEAN: Final = {"lean-floor": "floor"}
_NEW_SINCE_LEAN: Final = frozenset({"floor", "floor-large"})


def markdown(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """Every table of the report, each under a heading naming the doc's section."""
    parts = [
        ("Results", results(report, before)),
        ("Rows per table per event", rows_per_event(report)),
        ("Stages", stages(report)),
        ("Ratios", ratios(report, before)),
        ("Latency", latency(report)),
        ("Targets", targets(report)),
        ("State memory", state(report)),
    ]
    return "\n".join(f"### {title}\n\n{body}\n" for title, body in parts if body)


def _table(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; `align` has one letter per column, l or r."""
    rule = ["---:" if side == "r" else "---" for side in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _before_row(name: str, before: dict[str, Any] | None) -> dict[str, Any] | None:
    if before is None:
        return None
    rows = {row["name"]: row for row in before["results"]}
    if "lean-floor" not in rows:
        if name in _NEW_SINCE_LEAN:
            return None
        name = _BEFORE_LEAN.get(name, name)
    return rows.get(name)


def results(report: dict[str, Any], before: dict[str, Any] | None) -> str:
    header = ["configuration", "processes", "seconds", "events/s", "peak RSS (MiB)",
              "CPU s (measured)", "CPU s other users"]  # fmt: skip
    if before is not None:
        header += ["before: events/s", "before: peak RSS (MiB)"]
    rows = []
    for row in report["results"]:
        detail = row["detail"]
        line = [
            row["name"],
            str(row["processes"]),
            f"{row['seconds']:.1f}",
            f"{row['events_per_second']:,}",
            f"{row['peak_rss_mib']:,.0f}",
            " + ".join(f"{cpu:.1f}" for cpu in detail["cpu_seconds_per_process"]),
            f"{detail['cpu_seconds_other']:.1f}",
        ]
        if before is not None:
            earlier = _before_row(row["name"], before)
            line += (
                [f"{earlier['events_per_second']:,}", f"{earlier['peak_rss_mib']:,.0f}"]
                if earlier
                else ["(new)", "(new)"]
            )
        rows.append(line)
    return _table(header, "lrrrrrr" + "rr" * (before is not None), rows)


def rows_per_event(report: dict[str, Any]) -> str:
    found: dict[str, dict[str, float]] = report.get("rows_per_event") or {}
    if not found:
        return ""
    tables = sorted({table for rows in found.values() for table in rows})
    rows = [
        [name, *(f"{rows[table]:.3f}" if table in rows else "–" for table in tables)]
        for name, rows in found.items()
    ]
    return _table(
        ["configuration", *(f"`{table}`" for table in tables)], "l" + "r" * len(tables), rows
    )


def stages(report: dict[str, Any]) -> str:
    found: dict[str, Any] = report.get("stages") or {}
    if not found:
        return ""
    measured = {
        row["name"]: 1e6 / row["events_per_second"]
        for row in report["results"]
        if row["name"] in ("lean-floor", "floor")
    }
    rows = [[f"`{stage}`", f"{micros:.2f}"] for stage, micros in found["us_per_event"].items()]
    rows += [
        ["**lean floor's stages**", f"**{found['lean_stages_us']:.2f}**"],
        ["lean-floor row, measured", _micros(measured.get("lean-floor"))],
        ["windows (`windows`, `class windows`, `window flush`)", f"{found['windows_us']:.2f}"],
        ["**all stages**", f"**{found['stages_us']:.2f}**"],
        ["floor row, measured", _micros(measured.get("floor"))],
        ["between the stages (loops, lists, the clock)", f"{found['between_stages_us']:.2f}"],
    ]
    return _table(["stage", "µs per event"], "lr", rows)


def _micros(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "–"


def ratios(report: dict[str, Any], before: dict[str, Any] | None) -> str:
    found: dict[str, float] = report["ratios"]
    earlier = _before_ratios(before) if before is not None else {}
    header = ["ratio (events/s)", "this run"] + (["before"] if before is not None else [])
    rows = [
        [label, f"{value:.2f}"]
        + ([f"{earlier[label]:.2f}" if label in earlier else "–"] if before is not None else [])
        for label, value in found.items()
    ]
    return _table(header, "lr" + "r" * (before is not None), rows)


def _before_ratios(before: dict[str, Any]) -> dict[str, float]:
    """The ratios of this run's labels, computed from the earlier run's rows."""
    from benchmarks.run import RATIOS

    found = {}
    for label, (top, bottom) in RATIOS.items():
        a, b = _before_row(top, before), _before_row(bottom, before)
        if a and b:
            found[label] = a["events_per_second"] / b["events_per_second"]
    return found


def latency(report: dict[str, Any]) -> str:
    found: list[dict[str, Any]] = report.get("latency") or []
    if not found:
        return ""
    rows = []
    for result in found:
        flow = result["dataflow"]
        insert = flow["calls"].get("insert") or {}
        batch = flow["calls"].get("aggregate batch") or {}
        for kind, label in (("window", "window row"), ("daily", "daily row")):
            seconds = result["latency_seconds"][kind]
            rows.append(
                [
                    f"{result['rate']:,}",
                    f"{result['produced_rate']:,}",
                    label,
                    *(f"{seconds.get(key, float('nan')):.2f}" for key in ("p50", "p95", "max")),
                    f"{seconds['first_third_p50']} / {seconds['last_third_p50']}",
                    str(seconds["unseen"]),
                    f"{insert.get('p50', 0):.3f} / {insert.get('p95', 0):.3f}",
                    f"{batch.get('p95', 0) * 1000:.1f}",
                    f"{result['cpu_seconds']['dataflow'] / result['cpu_seconds']['seconds']:.0%}",
                ]
            )
    header = ["rate asked", "rate produced", "row", "p50 s", "p95 s", "max s",
              "p50 first / last third", "unseen", "insert p50 / p95 s",
              "aggregate batch p95 ms", "dataflow CPU"]  # fmt: skip
    return _table(header, "rrlrrrrrrrr", rows)


def targets(report: dict[str, Any]) -> str:
    if not report["targets"]:
        return ""
    rows = [
        [check["target"], _value(check["value"]), "met" if check["met"] else "**missed**"]
        for check in report["targets"]
    ]
    return _table(["target", "this run", ""], "lrl", rows)


def _value(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def state(report: dict[str, Any]) -> str:
    found: dict[str, Any] = report.get("state") or {}
    if not found:
        return ""
    what: list[tuple[str, str, Callable[[float], str]]] = [
        ("per retained key (a student's day in one subject)", "row", "{:,.0f} B".format),
        ("per retained event id", "event_id", "{:,.1f} B".format),
        ("per student window", "student_window", "{:,.0f} B".format),
        ("per class window", "class_window", "{:,.0f} B".format),
    ]
    rows = [
        [label, form(found[f"memory_per_{key}"]), form(found[f"pickled_per_{key}"])]
        for label, key, form in what
    ]
    counts = (
        f"{found['retained_rows']:,} keys, {found['retained_event_ids']:,} event ids, "
        f"{found['retained_student_windows']:,} student and {found['retained_class_windows']:,} "
        f"class windows; {found['memory_bytes'] / 1e6:,.0f} MB in memory, "
        f"{found['pickled_bytes'] / 1e6:,.1f} MB pickled"
    )
    return counts + "\n\n" + _table(["", "in memory", "pickled"], "lrr", rows)
