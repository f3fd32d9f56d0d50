"""Databases and users on the MariaDB the tests use (started by `scripts/services.sh`).

The server is reached as root over TCP on 127.0.0.1:3306 (override with
`WRITECH_TEST_MYSQL_ADMIN`, as host:port). Tests get a user of their own
with a password, and a fresh database each.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import quote

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

ADMIN_ADDRESS = os.environ.get("WRITECH_TEST_MYSQL_ADMIN", "127.0.0.1:3306")


def admin_connection() -> Connection[Cursor]:
    host, _, port = ADMIN_ADDRESS.partition(":")
    return pymysql.connect(
        host=host, port=int(port or 3306), user="root", password="", autocommit=True,
        charset="utf8mb4",
    )  # fmt: skip


class MysqlUser:
    """A user with a password, granted `privileges` on the databases it creates or is granted."""

    def __init__(self, privileges: str = "ALL") -> None:
        self.privileges = privileges
        self.name = f"writech_{secrets.token_hex(4)}"
        # Characters a URL must escape: the URL handling is part of what is tested.
        self.password = f"pw:{secrets.token_hex(8)}/@"
        self._admin = admin_connection()
        self._execute("CREATE USER %s@'%%' IDENTIFIED BY %s", self.name, self.password)
        self._execute("CREATE USER %s@'localhost' IDENTIFIED BY %s", self.name, self.password)

    def url(self, database: str, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"mysql://{self.name}:{secret}@{ADMIN_ADDRESS}/{database}"

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
        with self._admin.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(sql, args or None)
            return list(cursor.fetchall())

    def execute(self, sql: str, *args: Any) -> None:
        self._execute(sql, *args)

    def drop(self) -> None:
        for host in ("%", "localhost"):
            self._execute("DROP USER IF EXISTS %s@%s", self.name, host)
        self._admin.close()

    def _execute(self, sql: str, *args: Any) -> None:
        with self._admin.cursor() as cursor:
            cursor.execute(sql, args or None)
