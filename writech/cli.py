"""The `writech` command: replay files, generate data, create tables, set up recovery."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from writech import __version__, counters
from writech.admin import add_admin_commands
from writech.arguments import (
    fraction,
    iso_date,
    non_negative_int,
    output_file,
    positive_int,
    seconds,
)
from writech.failures import (
    close_output,
    exit_status,
    install_signal_handlers,
    interruption,
    output_closed,
    stopped_by,
)
from writech.logs import SETUP_ERRORS, configure_logging, log_failure
from writech.outputs import OutputError
from writech.reports.cli import add_report_command
from writech.schema import SCHEMA_VERSION
from writech.serve.cli import add_serve_command
from writech.settings import Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    install_signal_handlers()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SETUP_ERRORS as exc:
        print(f"writech: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:  # a report or export not written (a full disk): said once
        print(f"writech: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        if not output_closed():
            raise
        return close_output()  # the reader left (`writech validate ... | head`)
    except BaseException as exc:
        signal_name = interruption(exc)
        if signal_name is None:
            raise
        log_failure(exc)  # one line: a normal stop
        return exit_status(signal_name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="writech",
        description="Writech Analytics: learning events in, daily statistics and diagnosis out.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"writech {__version__} (table schema {SCHEMA_VERSION})",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    replay = commands.add_parser(
        "replay", help="run the dataflow over JSON-lines files into the configured stores"
    )
    replay.add_argument(
        "paths", nargs="+", metavar="PATH", help=".jsonl/.jsonl.gz files or directories"
    )
    replay.add_argument(
        "--data-dir", help="where the embedded stores live (default: $WRITECH_DATA_DIR or ./data)"
    )
    replay.add_argument(
        "-w", "--workers", type=positive_int, default=1, help="worker threads (default 1)"
    )
    replay.add_argument(
        "-r", "--recovery", help="recovery directory to snapshot into and resume from"
    )
    replay.add_argument(
        "-s",
        "--snapshot-interval",
        type=seconds,
        default=10.0,
        help="seconds between snapshots (default 10)",
    )
    replay.add_argument(
        "-b", "--backup-interval", type=seconds, default=0.0, help="seconds snapshots are kept"
    )
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    replay.set_defaults(run=_replay)

    generate = commands.add_parser("generate", help="write a synthetic event stream")
    generate.add_argument("--events", type=non_negative_int, default=10_000)
    generate.add_argument("--students", type=positive_int, default=200)
    generate.add_argument("--days", type=positive_int, default=5)
    generate.add_argument(
        "--start", type=iso_date, default=date(2026, 9, 1), help="first school day"
    )
    generate.add_argument("--class-size", type=positive_int, default=40)
    generate.add_argument(
        "--malformed", type=fraction, default=0.01, help="fraction of broken messages"
    )
    generate.add_argument(
        "--duplicates", type=fraction, default=0.01, help="fraction of exact re-sends"
    )
    generate.add_argument(
        "--large", type=fraction, default=0.0, help="fraction of 64-200 KiB messages"
    )
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument(
        "-o",
        "--out",
        type=output_file,
        default="-",
        help="output file (.jsonl or .jsonl.gz), - for stdout",
    )
    generate.set_defaults(run=_generate)

    init_db = commands.add_parser(
        "init-db",
        help="create every table the configuration writes to; refuse a store of an older schema",
    )
    init_db.add_argument("--data-dir")
    init_db.set_defaults(run=_init_db)

    migrate = commands.add_parser(
        "migrate",
        help="upgrade the configured stores to this release's schema and apply the table "
        "layout (TTLs, cluster); stop the dataflow first",
    )
    migrate.add_argument("--data-dir")
    migrate.set_defaults(run=_migrate)

    recovery = commands.add_parser("recovery", help="recovery store commands")
    recovery_commands = recovery.add_subparsers(required=True, metavar="COMMAND")
    recovery_init = recovery_commands.add_parser("init", help="create a recovery store")
    recovery_init.add_argument(
        "--dir", default="recovery", help="recovery directory (default ./recovery)"
    )
    recovery_init.add_argument(
        "--partitions", type=positive_int, default=1, help="number of partition files"
    )
    recovery_init.set_defaults(run=_recovery_init)
    add_report_command(commands)
    add_admin_commands(commands)
    add_serve_command(commands)
    return parser


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return Settings.from_env(**overrides)


def _replay(args: argparse.Namespace) -> int:
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from writech.flow import FLOW_ID, build_flow, tune_gc
    from writech.sources.files import JsonLinesSource, total_bytes
    from writech.sources.resume import check_recovery_store, resume_states
    from writech.stores.base import init_db

    settings = _settings(args, source="files", input_paths=tuple(args.paths))
    source = JsonLinesSource(settings.inputs, settings.batch_size, settings.max_message_bytes)
    recovery = None
    if args.recovery:
        check_recovery_store(Path(args.recovery), "--recovery")
        recovery = RecoveryConfig(args.recovery, timedelta(seconds=args.backup_interval))
        source.check_resume(resume_states(Path(args.recovery), f"{FLOW_ID}.read"))
    # a store the flow cannot write to (another schema version) stops the
    # run here, in one line, before anything is read
    init_db(settings)
    flow = build_flow(settings, source, single_process=True, recovery=recovery is not None)
    tune_gc()
    progress = None
    if not args.quiet and sys.stderr.isatty():
        progress = _Progress(total_bytes(source.paths))
        progress.start()
    started = time.perf_counter()
    try:
        cli_main(
            flow,
            workers_per_process=args.workers,
            epoch_interval=timedelta(seconds=args.snapshot_interval),
            recovery_config=recovery,
        )
    finally:
        if progress:
            progress.stop()
    _print_summary(time.perf_counter() - started)
    signal_name = stopped_by()  # the input ended early: the run was asked to stop
    return exit_status(signal_name) if signal_name else 0


def _print_summary(seconds: float) -> None:
    read = int(counters.value("writech_messages_read_total"))
    processed = int(counters.value("writech_events_processed_total"))
    duplicates = int(counters.value("writech_events_duplicate_total"))
    dead = counters.dead_lettered_by_reason()
    lines = [
        f"read           {read:>12,}  ({read / seconds:,.0f} messages/s over {seconds:.1f} s)",
        f"processed      {processed:>12,}",
        f"duplicates     {duplicates:>12,}",
        f"dead-lettered  {sum(dead.values()):>12,}",
    ]
    lines += [f"  {reason:<20}{count:>5,}" for reason, count in sorted(dead.items())]
    lines.append("rows written")
    from writech.flow import WRITTEN_TABLES

    for table in WRITTEN_TABLES:
        written = int(counters.value("writech_rows_written_total", table=table.name))
        lines.append(f"  {table.name:<20}{written:>10,}")
    print("\n".join(lines))


class _Progress:
    """A progress bar on stderr: bytes read, messages/s, dead letters so far."""

    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rate]:>10,.0f} msg/s"),
            TextColumn("{task.fields[dead]:>8,} dead letters"),
            TimeElapsedColumn(),
            transient=True,
        )
        self._task = self._progress.add_task("replay", total=total, rate=0.0, dead=0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._progress.start()
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._progress.stop()

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._done.wait(0.25):
            read = counters.value("writech_messages_read_total")
            self._progress.update(
                self._task,
                completed=counters.value("writech_input_bytes_read_total"),
                rate=read / max(time.perf_counter() - started, 1e-9),
                dead=sum(counters.dead_lettered_by_reason().values()),
            )


def _generate(args: argparse.Namespace) -> int:
    from writech.generate import FIRST_DAY, LAST_DAY, generate, write

    last = args.start.toordinal() + args.days - 1  # an ordinal: --days may pass 9999-12-31
    if args.start < FIRST_DAY or last > LAST_DAY.toordinal():
        raise SettingsError(
            f"--start and --days: the school days must lie from {FIRST_DAY} to {LAST_DAY}, "
            "the days whose events the stores can hold"
        )
    messages = generate(
        events=args.events,
        students=args.students,
        days=args.days,
        start=args.start,
        class_size=args.class_size,
        malformed=args.malformed,
        duplicates=args.duplicates,
        large=args.large,
        seed=args.seed,
    )
    count = write(messages, args.out)
    if args.out != "-":
        print(f"wrote {count:,} messages to {args.out}", file=sys.stderr)
    return 0


def _init_db(args: argparse.Namespace) -> int:
    from writech.stores.base import init_db

    settings = _settings(args)
    init_db(settings)
    print(
        f"tables ready at schema version {SCHEMA_VERSION} "
        f"({'server' if settings.clickhouse_url else settings.clickhouse_dir})",
        file=sys.stderr,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from writech.stores.migrations import migrate_stores

    for line in migrate_stores(_settings(args)):
        print(line, file=sys.stderr)
    print(f"every store at schema version {SCHEMA_VERSION}", file=sys.stderr)
    return 0


def _recovery_init(args: argparse.Namespace) -> int:
    from bytewax.recovery import init_db_dir

    from writech.stores.base import make_store_dir

    make_store_dir(Path(args.dir), "--dir")
    if any(Path(args.dir).glob("part-*.sqlite3")):
        raise SettingsError(f"{args.dir} already holds a recovery store; remove it to start over")
    init_db_dir(Path(args.dir), args.partitions)
    print(f"recovery store with {args.partitions} partition(s) in {args.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
