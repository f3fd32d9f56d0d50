"""The services a benchmark writes to, and where the machine's CPU went meanwhile.

The stores are the tests' own (`tests/services/`): chDB behind ClickHouse's
HTTP interface in a process of its own, and a database on the MariaDB the
tests use. CPU is read from Linux's /proc: every process's by the service
it is, and the whole machine's busy time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.services.clickhouse_http import ClickHouseServer


@dataclass(frozen=True)
class Stores:
    """Fresh server stores: the settings that select them, and the ClickHouse fixture."""

    env: dict[str, str]
    clickhouse: ClickHouseServer


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[Stores]:
    """A fresh ClickHouse HTTP fixture (chDB behind HTTP) and MariaDB database."""
    from tests.services.clickhouse_http import ClickHouseServer
    from tests.services.mysql import MysqlUser

    shutil.rmtree(folder, ignore_errors=True)
    server = ClickHouseServer(folder / "clickhouse")
    server.start()
    user = MysqlUser()
    database = user.create_database()
    try:
        yield Stores(
            {
                "WRITECH_CLICKHOUSE_URL": server.url,
                "WRITECH_MYSQL_URL": user.url(database),
                "WRITECH_DATA_DIR": str(folder / "unused-embedded-data"),
            },
            server,
        )
    finally:
        user.drop_database(database)
        user.drop()
        server.stop()


def free_port() -> int:
    from tests.services.ports import free_port

    return free_port()


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (Linux /proc/stat)."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return 0.0
    ticks = [int(value) for value in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# Which service a process is, by a word of its command line.
ROLES = {
    "tests.services.clickhouse_http": "clickhouse fixture",
    "tansu": "kafka broker",
    "mariadbd": "mariadb",
    "mysqld": "mariadb",
}


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """Every live process's service name ("" if none) and CPU seconds so far (Linux /proc)."""
    found = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            stat = (folder / "stat").read_text()
            command = (
                (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()
        seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        role = next((role for word, role in ROLES.items() if word in command), "")
        found[int(folder.name)] = (role, seconds)
    return found


def cpu_by_service(
    before: dict[int, tuple[str, float]], services: Sequence[str]
) -> dict[str, float]:
    """CPU seconds each of `services` spent since `before` (a `cpu_by_process()`)."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in cpu_by_process().items():
        used = seconds - before.get(pid, (role, 0.0))[1]
        if role in services and used > 0:
            spent[role] = round(spent.get(role, 0.0) + used, 2)
    return spent
