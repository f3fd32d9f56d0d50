"""`writech serve`: the teachers' web app, and `--hash-password` for its access file."""

from __future__ import annotations

import argparse
import getpass
import sys

from writech.arguments import port
from writech.settings import PREFIX, Settings, SettingsError


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` to the `writech` command."""
    serve = commands.add_parser(
        "serve",
        help="the teachers' web app: the live class board and the reports, per school",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    serve.add_argument("--port", type=port, default=8080, help="default 8080")
    serve.add_argument(
        "--data-dir", help="where the embedded stores live (default: $WRITECH_DATA_DIR or ./data)"
    )
    serve.add_argument(
        "--access-file",
        help=f"who may sign in (TOML; default: ${PREFIX}SERVE_ACCESS_FILE)",
    )
    serve.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (from the terminal, or one line of stdin) and print the "
        "hash to put in the access file; serves nothing",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    if args.hash_password:
        return _hash_password()
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.access_file:
        overrides["serve_access_file"] = args.access_file
    settings = Settings.from_env(**overrides)
    if not settings.serve_access_file:
        raise SettingsError(
            f"{PREFIX}SERVE_ACCESS_FILE (or --access-file): no access file, so nobody could "
            "sign in; README's 'Live class board' shows how to write one"
        )

    from writech.reports.roster import Roster, RosterError, read_roster
    from writech.serve.access import AccessError, AccessFile
    from writech.serve.app import Context, create_app
    from writech.serve.server import run
    from writech.stores.base import open_clickhouse

    try:
        access = AccessFile(settings.serve_access_file)
    except AccessError as exc:
        raise SettingsError(f"{PREFIX}SERVE_ACCESS_FILE: {exc}") from None
    roster = Roster()
    if settings.serve_roster_file:
        try:
            roster = read_roster(settings.serve_roster_file)
        except (OSError, RosterError) as exc:
            raise SettingsError(f"{PREFIX}SERVE_ROSTER_FILE: {exc}") from None
    # Opened before the server starts, so that a store that cannot be served is said
    # in one line: a mistyped --data-dir (served as a new, empty store before), an
    # embedded store another process has open, a server needing `writech migrate`.
    # The app serves this one: a ClickHouse server gets one client, not two.
    store = open_clickhouse(settings, existing=True)
    try:
        run(create_app(Context(settings, access, roster, store=store)), args.host, args.port)
    finally:
        store.close()
    return 0


def _hash_password() -> int:
    from writech.serve.access import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("writech: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("writech: an empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
