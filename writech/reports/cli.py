"""`writech report ...`: learning-diagnosis reports from the stored tables (SPEC §8).

Exit codes: 0 done (an empty period is a report saying so), 1 unknown id
or nothing stored, 2 bad arguments (an unreadable roster too).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from writech.arguments import (
    id_argument,
    iso_date,
    output_directory,
    output_file,
    student_id_argument,
)
from writech.outputs import written
from writech.reports.build import Options
from writech.reports.formats import EXTENSIONS, FORMATS, Format
from writech.reports.labels import LANGS
from writech.reports.model import DEFAULT_DAYS, Period
from writech.reports.roster import Roster, RosterError, read_roster
from writech.settings import Settings

if TYPE_CHECKING:
    from writech.reports.service import Kind, Stores


def add_report_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report student|class|school|parent|schema` to the `writech` command."""
    report = commands.add_parser(
        "report",
        help="learning-diagnosis reports per student, class or school, and a student's "
        "page for the family (HTML, JSON, Markdown)",
    )
    kinds = report.add_subparsers(required=True, metavar="KIND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--from",
        dest="start",
        type=iso_date,
        metavar="DATE",
        help=f"first day, inclusive (default: up to {DEFAULT_DAYS} days ending on --to, "
        "leaving as many days before them to compare with)",
    )
    common.add_argument(
        "--to",
        dest="end",
        type=iso_date,
        metavar="DATE",
        help="last day, inclusive (default: the newest date in the data)",
    )
    common.add_argument("--format", choices=FORMATS, default="html", help="default html")
    common.add_argument("--lang", choices=LANGS, default="zh", help="labels: zh (default) or en")
    common.add_argument(
        "--subject", help="report on one subject only (e.g. chinese, math, english)"
    )
    common.add_argument(
        "--roster",
        type=_roster,
        metavar="CSV",
        help="names to show for student and class ids: a CSV with a header naming "
        "student_id,student_name and/or class_id,class_name",
    )
    common.add_argument(
        "--data-dir", help="where the embedded stores live (default: $WRITECH_DATA_DIR or ./data)"
    )

    student = kinds.add_parser("student", parents=[common], help="one student's report")
    student.add_argument("scope_id", metavar="STUDENT_ID", type=student_id_argument)
    _add_out(student)
    student.set_defaults(run=_single, kind="student")

    class_ = kinds.add_parser(
        "class", parents=[common], help="one class's report, or every class's"
    )
    class_.add_argument("scope_id", metavar="CLASS_ID", nargs="?", type=id_argument)
    _add_out(class_)
    class_.add_argument(
        "--all-classes",
        action="store_true",
        help="a report for every class with data in the period, into --out-dir",
    )
    class_.add_argument("--out-dir", type=output_directory, help="directory for --all-classes")
    class_.set_defaults(run=_class, kind="class")

    school = kinds.add_parser("school", parents=[common], help="one school's report")
    school.add_argument("scope_id", metavar="SCHOOL_ID", type=id_argument)
    _add_out(school)
    school.set_defaults(run=_single, kind="school")

    parent = kinds.add_parser(
        "parent", parents=[common], help="one page for a student's family (A4, plain words)"
    )
    parent.add_argument("scope_id", metavar="STUDENT_ID", type=student_id_argument)
    _add_out(parent)
    parent.set_defaults(run=_single, kind="parent")

    schema = kinds.add_parser("schema", help="print the JSON Schema of the reports' JSON")
    schema.set_defaults(run=_schema)


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=output_file,
        help="output file, - for stdout (default: stdout for json and markdown, "
        "KIND-ID-FROM_TO.html for html)",
    )


def _roster(path: str) -> Roster:
    try:
        return read_roster(path)
    except (OSError, RosterError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read the roster {path}: {exc}") from None


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(**({"data_dir": args.data_dir} if args.data_dir else {}))


def _options(args: argparse.Namespace, settings: Settings) -> Options:
    return Options(timezone=settings.timezone, subject=args.subject, roster=args.roster or Roster())


def report_file_name(kind: Kind, scope_id: str, period: Period, fmt: Format) -> str:
    """The file a report is written to by default: one per scope, whatever its id."""
    # ids come from events: only what is safe in a file name is kept, and where
    # anything was replaced, a hash of the id follows, or "7/1" and "7_1" would
    # share a file and one class's report would replace the other's
    safe = re.sub(r"[^\w.-]+", "_", scope_id).strip(".") or "_"
    if safe != scope_id:
        digest = hashlib.blake2b(scope_id.encode(errors="surrogatepass"), digest_size=6)
        safe = f"{safe}-{digest.hexdigest()}"
    return f"{kind}-{safe}-{period.start}_{period.end}.{EXTENSIONS[fmt]}"


def _write(text: str, out: str | Path) -> None:
    with written(out) as stream:
        stream.write(text.encode())


def _with_stores(args: argparse.Namespace, work: Callable[[Stores, Options], int]) -> int:
    """Run `work` on the configured stores; a `ReportError` is exit code 1, a period
    that cannot be reported on (`PeriodError`) 2, as other bad arguments."""
    from writech.reports.service import PeriodError, ReportError, open_stores

    settings = _settings(args)
    try:
        with open_stores(settings) as stores:
            return work(stores, _options(args, settings))
    except ReportError as exc:
        print(f"writech: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, PeriodError) else 1


def _single(args: argparse.Namespace) -> int:
    from writech.reports.render import render
    from writech.reports.service import make_report, resolve_period

    def work(stores: Stores, options: Options) -> int:
        period = resolve_period(stores, args.start, args.end)
        report = make_report(stores, args.kind, args.scope_id, period, options=options)
        out = args.out or (
            report_file_name(args.kind, args.scope_id, period, args.format)
            if args.format == "html"
            else "-"
        )
        _write(render(report, args.format, args.lang), out)
        if out != "-":
            print(f"wrote {out}", file=sys.stderr)
        return 0

    return _with_stores(args, work)


def _class(args: argparse.Namespace) -> int:
    if not args.all_classes:
        if not args.scope_id or args.out_dir:
            print("writech: give a CLASS_ID, or --all-classes with --out-dir", file=sys.stderr)
            return 2
        return _single(args)
    if args.scope_id or args.out or not args.out_dir:
        print(
            "writech: --all-classes takes --out-dir, and neither CLASS_ID nor --out",
            file=sys.stderr,
        )
        return 2
    return _with_stores(args, lambda stores, options: _all_classes(stores, options, args))


def _all_classes(stores: Stores, options: Options, args: argparse.Namespace) -> int:
    from writech.reports.render import render
    from writech.reports.service import class_ids, make_report, resolve_period

    period = resolve_period(stores, args.start, args.end)
    ids = class_ids(stores, period)
    if not ids:
        print(f"writech: no class has data from {period.start} to {period.end}", file=sys.stderr)
        return 0
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with _progress(len(ids)) as advance:
        for class_id in ids:
            report = make_report(stores, "class", class_id, period, now, options)
            out = out_dir / report_file_name("class", class_id, period, args.format)
            _write(render(report, args.format, args.lang), out)
            advance(class_id)
    print(f"wrote {len(ids)} class reports to {out_dir}", file=sys.stderr)
    return 0


@contextmanager
def _progress(total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr when it is a terminal; silent otherwise (CronJob logs)."""
    if not sys.stderr.isatty():
        yield lambda class_id: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("class reports"), BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns,
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=total)
        yield lambda class_id: bar.update(task, advance=1, description=class_id)


def _schema(args: argparse.Namespace) -> int:
    from writech.reports.render import json_schema

    sys.stdout.write(json_schema())
    return 0
