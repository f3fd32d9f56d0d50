"""Databases and users on the MariaDB the tests use (started by `scripts/services.sh`).

The server is reached as root over TCP on 127.0.0.1:3306 (override with
`WRITECH_TEST_MYSQL_ADMIN`, as host:port). Tests get a user of their own
with a password, and a fresh database each.

Tests that take MariaDB down (outages) never touch that shared server:
`MariadbServer` is a private `mariadbd` on a free loopback port with a data
directory of its own, started and stopped by its PID.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from tests.services.ports import free_port, tail, terminate, wait_until

ADMIN_ADDRESS = os.environ.get("WRITECH_TEST_MYSQL_ADMIN", "127.0.0.1:3306")


def admin_connection(address: str = ADMIN_ADDRESS) -> Connection[Cursor]:
    host, _, port = address.partition(":")
    return pymysql.connect(
        host=host, port=int(port or 3306), user="root", password="", autocommit=True,
        charset="utf8mb4",
    )  # fmt: skip


class MysqlUser:
    """A user with a password, granted `privileges` on the databases it creates or is granted."""

    def __init__(self, privileges: str = "ALL", address: str = ADMIN_ADDRESS) -> None:
        self.privileges = privileges
        self.address = address
        self.name = f"writech_{secrets.token_hex(4)}"
        # Characters a URL must escape: the URL handling is part of what is tested.
        self.password = f"pw:{secrets.token_hex(8)}/@"
        self._admin = admin_connection(address)
        self._execute("CREATE USER %s@'%%' IDENTIFIED BY %s", self.name, self.password)
        self._execute("CREATE USER %s@'localhost' IDENTIFIED BY %s", self.name, self.password)

    def url(self, database: str, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"mysql://{self.name}:{secret}@{self.address}/{database}"

    def create_database(self) -> str:
        database = f"writech_test_{secrets.token_hex(4)}"
        self._execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        self.grant(database)
        return database

    def grant(self, database: str) -> None:
        for host in ("%", "localhost"):
            self._execute(f"GRANT {self.privileges} ON `{database}`.* TO %s@%s", self.name, host)

    def drop_database(self, database: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS `{database}`")

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of `sql`, run as root."""
        with self._connection().cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(sql, args or None)
            return list(cursor.fetchall())

    def execute(self, sql: str, *args: Any) -> None:
        self._execute(sql, *args)

    def drop(self) -> None:
        for host in ("%", "localhost"):
            self._execute("DROP USER IF EXISTS %s@%s", self.name, host)
        self._admin.close()

    def _connection(self) -> Connection[Cursor]:
        """The root connection, opened again if the server restarted since."""
        try:
            self._admin.ping(reconnect=False)
        except pymysql.MySQLError:
            self._admin = admin_connection(self.address)
        return self._admin

    def _execute(self, sql: str, *args: Any) -> None:
        with self._connection().cursor() as cursor:
            cursor.execute(sql, args or None)


def _mariadb_binary(name: str) -> str:
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (Debian package mariadb-server)")
    return found


class MariadbServer:
    """A private MariaDB server: `mariadbd` on a free loopback port, data in `folder`.

    `start()` creates the data directory on first use (`mariadb-install-db`,
    root without a password over TCP) and waits until the server answers;
    `stop()` shuts it down by its PID. The data survive a stop and a start,
    so a test can take the database away from a running dataflow and give
    it back.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60) -> None:
        data = self.folder / "data"
        if not data.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [_mariadb_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                 f"--user={getpass.getuser()}", "--auth-root-authentication-method=normal",
                 "--skip-test-db"],
                check=True,
                capture_output=True,
            )  # fmt: skip
        with open(self.folder / "server.log", "ab") as log:
            self._process = subprocess.Popen(
                [_mariadb_binary("mariadbd"), "--no-defaults", f"--datadir={data}",
                 f"--user={getpass.getuser()}", "--bind-address=127.0.0.1", f"--port={self.port}",
                 f"--socket={self.folder / 'mariadb.sock'}", f"--pid-file={self.folder / 'mariadb.pid'}",
                 "--skip-log-bin", "--innodb-buffer-pool-size=32M", "--skip-name-resolve"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until(self._answers, timeout, f"mariadbd on {self.address}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mariadbd did not start; its log:\n{self.log_tail()}") from None

    def stop(self) -> None:
        """Shut the server down (SIGTERM to its PID; SIGKILL if it hangs)."""
        process, self._process = self._process, None
        terminate(process, 60)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.folder / "server.log", lines)

    def _answers(self) -> bool:
        if not self.running:
            raise RuntimeError(f"mariadbd exited; its log:\n{self.log_tail()}")
        try:
            admin_connection(self.address).close()
        except pymysql.MySQLError:
            return False
        return True
