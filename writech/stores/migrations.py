"""Schema versions and migrations: each store knows the schema it holds (issue 13).

`CREATE ... IF NOT EXISTS` cannot change a table, so every store records
its schema's version in a `schema_version` table of its own
(`writech.schema_version` in ClickHouse, `schema_version` beside
`error_record` in SQLite or MySQL): one row per version reached, with when
and what changed; the store's version is the highest. A store that holds
the tables but no such table was made before versions were recorded: it is
version 1, the schema of the first release.

What opening a store does (`open_schema`):

- a fresh store (none of the tables) is created at `SCHEMA_VERSION`,
  silently, by whoever opens it first (the version is recorded before the
  tables, so a store with tables and no version is always an old one);
- an older embedded store (chDB, SQLite) is upgraded on the spot, and the
  log says so: it belongs to the one process that opened it;
- an older server store (a ClickHouse server, MySQL) is never changed
  implicitly: opening it raises `SchemaError` naming `writech migrate`, so
  the dataflow stops before it writes a row;
- a store newer than this release is refused, embedded or not.

`writech migrate` (`migrate_schema`) applies the migrations due, then
brings every ClickHouse table to the registry's definition under the
configured layout (`writech.schema.Layout`: TTLs, cluster). A table is
compared with a scratch table created from the registry (ClickHouse
formats both alike): where only the TTL differs it is altered; where
anything else differs (columns, types, codecs, key, partitions, indexes,
engine) it is rebuilt: the scratch table is filled with `INSERT ...
SELECT` (columns it lacks take their defaults), the two are exchanged
atomically and the old one dropped. Views are replaced. Every step can run
again: a migration stopped half way is finished by the next `writech
migrate`, and the version is recorded only at the end. The dataflow must
be stopped meanwhile (rows inserted into a table being copied are lost).

Migrations (`MIGRATIONS`) hold what a comparison of definitions cannot
infer, such as values computed differently: version 2 re-keys the error
records by (student, event, position); version 3 lets MySQL's error records
hold text of any length.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from writech.schema import (
    CLICKHOUSE_TABLES,
    DATABASE,
    ERROR_RECORD,
    SCHEMA_VERSION,
    Layout,
    Table,
    error_record_key,
)
from writech.settings import Settings
from writech.stores.base import ClickHouse, StoreError, create_schema, layout_of

log = logging.getLogger(__name__)

VERSIONS: Final = "schema_version"
# What a table being rebuilt is called until it replaces the table.
REBUILD_SUFFIX: Final = "__rebuild"
# A store with the tables and no versions was made by the first release.
FIRST_VERSION: Final = 1


class SchemaError(StoreError):
    """A store holds a schema this release cannot write to; the message says what to do."""


# -- what every store offers ---------------------------------------------------


class Schema(Protocol):
    """A store's schema, as `open_schema` and `migrate_schema` see it."""

    where: str  # the store, as messages name it

    def version(self) -> int | None:
        """The store's version; None for a fresh store."""
        ...

    def create(self) -> None:
        """Create a fresh store at `SCHEMA_VERSION` (idempotent)."""
        ...

    def ensure(self) -> None:
        """Create whatever of the current schema is missing, and only then run DDL."""
        ...

    def upgrade(self, found: int) -> list[str]:
        """Bring a store of version `found` to `SCHEMA_VERSION` and record it; what was done."""
        ...


def open_schema(schema: Schema, *, upgrade_older: bool) -> None:
    """Make `schema` ready for this release's writes, or raise `SchemaError` (module docstring)."""
    found = schema.version()
    if found is None:
        schema.create()
        return
    _refuse_newer(schema, found)
    if found < SCHEMA_VERSION:
        if not upgrade_older:
            raise SchemaError(
                f"{schema.where} holds schema version {found}; this release writes version "
                f"{SCHEMA_VERSION}: stop the dataflow and run `writech migrate` (nothing was "
                "written; docs/operations.md, Schema versions)"
            )
        for line in schema.upgrade(found):
            log.warning("%s: %s", schema.where, line)
        return
    schema.ensure()


def migrate_schema(schema: Schema) -> list[str]:
    """`writech migrate` on one store: create it, or upgrade it and apply the layout; what was done."""
    found = schema.version()
    if found is None:
        schema.create()
        return [f"created at schema version {SCHEMA_VERSION}"]
    _refuse_newer(schema, found)
    return schema.upgrade(found)


def migrate_stores(settings: Settings) -> list[str]:
    """`writech migrate`: every configured store at this release's schema and layout.

    What was done, a line per step naming its store. An embedded store is
    upgraded as it opens (and logs each step); here it gets the layout.
    """
    layout = layout_of(settings)
    done: list[str] = []
    clickhouse: ClickHouse
    if settings.clickhouse_url:
        from writech.stores.clickhouse import ClickHouseServerStore

        clickhouse = server = ClickHouseServerStore(settings)
        schema = server.schema(layout)
    else:
        from writech.stores import chdb

        clickhouse = embedded = chdb.open_store(settings.clickhouse_dir, layout)
        schema = ClickHouseSchema(embedded, layout, embedded.where)
    try:
        done += [f"{schema.where}: {line}" for line in migrate_schema(schema)]
    finally:
        clickhouse.close()
    if settings.mysql_url:
        from writech.stores.mysql import MysqlErrorStore

        mysql = MysqlErrorStore(settings, upgrade=True)
        mysql.close()
        done += [f"{mysql.where}: {line}" for line in mysql.upgraded]
    else:
        from writech.stores.sqlite import connect

        connect(settings.sqlite_path).close()
    return done


def _refuse_newer(schema: Schema, found: int) -> None:
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"{schema.where} holds schema version {found}, newer than this release knows "
            f"({SCHEMA_VERSION}): run the release that wrote it, or a later one"
        )


# -- the migrations --------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """What reaching `version` takes beyond the registry's definitions, per store."""

    version: int
    summary: str
    sql: Callable[[SqlSchema], str] | None = None
    clickhouse: Callable[[ClickHouseSchema], str] | None = None


def _rekey_error_records(schema: SqlSchema) -> str:
    return schema.rebuild_error_records()


def _unbound_error_text(schema: SqlSchema) -> str:
    return schema.unbound_text()


MIGRATIONS: Final = (
    Migration(
        2,
        "homework_result, the minute windows and the audit tables; dead_letter.produced_at, "
        "by month, with a TTL; error_record keyed by (student_id, event_id, position); "
        "codecs, LowCardinality, skipping indexes and the read views",
        sql=_rekey_error_records,
    ),
    Migration(
        3,
        "error_record's text columns hold text of any length (MySQL: LONGTEXT, was TEXT)",
        sql=_unbound_error_text,
    ),
)


def _due(found: int) -> list[Migration]:
    return [migration for migration in MIGRATIONS if migration.version > found]


def _summary(found: int) -> str:
    return "; ".join(migration.summary for migration in _due(found)) or "layout"


# -- ClickHouse --------------------------------------------------------------------

_TTL: Final = re.compile(r" TTL (.*?)(?= SETTINGS |$)")
_REPLICA: Final = re.compile(r"(Replicated\w*MergeTree)\('[^']*', '[^']*'(, )?")
_CREATE: Final = re.compile(r"^CREATE TABLE \S+")


@dataclass(frozen=True)
class Definition:
    """A table's CREATE statement as the server formats it, without its name or replica path."""

    statement: str

    @classmethod
    def of(cls, create_table_query: str) -> Definition:
        statement = _CREATE.sub("CREATE TABLE", create_table_query, count=1)
        return cls(_REPLICA.sub(lambda m: f"{m[1]}(", statement))

    @property
    def ttl(self) -> str:
        """The TTL clause's expression, empty without one."""
        found = _TTL.search(self.statement)
        return found[1] if found else ""

    def without_ttl(self) -> str:
        return _TTL.sub("", self.statement)


class ClickHouseSchema:
    """The ClickHouse tables of `writech.schema`, in one store, laid out by `layout`."""

    def __init__(self, store: ClickHouse, layout: Layout, where: str) -> None:
        self.store = store
        self.layout = layout
        self.where = where

    def version(self) -> int | None:
        present = self._present()
        if VERSIONS in present:
            rows = self.store.query(
                f"SELECT max(version) AS version, count() AS n FROM `{DATABASE}`.`{VERSIONS}`"
            )
            if rows and rows[0]["n"]:
                return int(rows[0]["version"])
        # no version yet: being created by another process, or from the first release
        if present & {table.name for table in CLICKHOUSE_TABLES}:
            return FIRST_VERSION
        return None

    def create(self) -> None:
        self._record(SCHEMA_VERSION, "created")
        create_schema(self.store, self.layout)

    def ensure(self) -> None:
        if self.missing():
            create_schema(self.store, self.layout)

    def missing(self) -> list[str]:
        """The registry's tables and views the store does not have (or this user cannot see)."""
        present = self._present()
        wanted = [name for table in CLICKHOUSE_TABLES for name in (table.name, *table.views())]
        return [name for name in wanted if name not in present]

    def upgrade(self, found: int) -> list[str]:
        self.store.command(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`{self.layout.on_cluster}")
        done = [line for table in CLICKHOUSE_TABLES if (line := self.converge(table))]
        for table in CLICKHOUSE_TABLES:
            for name, ddl in table.views(layout=self.layout).items():
                self.store.command(f"DROP VIEW IF EXISTS {_name(name)}{self.layout.on_cluster}")
                self.store.command(ddl)
        done += [
            line
            for migration in _due(found)
            if migration.clickhouse and (line := migration.clickhouse(self))
        ]
        if found < SCHEMA_VERSION:
            self._record(SCHEMA_VERSION, _summary(found))
            done.append(f"schema version {found} -> {SCHEMA_VERSION}")
        return done

    def converge(self, table: Table) -> str:
        """Bring `table` to its registry definition; what was done ("" when nothing)."""
        scratch = table.name + REBUILD_SUFFIX
        self._drop(scratch)  # left by a rebuild that stopped half way: never the only copy
        if table.name not in self._present():
            self.store.command(table.ddl(layout=self.layout))
            return f"created {table.name}"
        self.store.command(table.ddl(layout=self.layout, name=scratch))
        have, want = self._definition(table.name), self._definition(scratch)
        if have == want:
            self._drop(scratch)
            return ""
        if have.without_ttl() == want.without_ttl():
            self._drop(scratch)
            change = f"MODIFY TTL {want.ttl}" if want.ttl else "REMOVE TTL"
            self.store.command(f"ALTER TABLE {_name(table.name)}{self.layout.on_cluster} {change}")
            return f"{table.name}: TTL {want.ttl or 'removed'}"
        kept = [name for name in table.column_names if name in self._columns(table.name)]
        columns = ", ".join(f"`{name}`" for name in kept)
        # one statement however many months it spans; every row copied, even
        # two equal ones (the copy is not a retried insert)
        self.store.command(
            f"INSERT INTO {_name(scratch)} ({columns}) SELECT {columns} FROM {_name(table.name)} "
            "SETTINGS max_partitions_per_insert_block = 0, insert_deduplicate = 0"
        )
        rows = self.store.query(f"SELECT count() AS n FROM {_name(scratch)}")[0]["n"]
        self.store.command(
            f"EXCHANGE TABLES {_name(table.name)} AND {_name(scratch)}{self.layout.on_cluster}"
        )
        self._drop(scratch)
        return f"rebuilt {table.name} ({rows:,} rows)"

    def _record(self, version: int, summary: str) -> None:
        self.store.command(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`{self.layout.on_cluster}")
        self.store.command(
            f"CREATE TABLE IF NOT EXISTS {_name(VERSIONS)}{self.layout.on_cluster} "
            "(`version` UInt32, `applied_at` DateTime64(6, 'UTC'), `summary` String) "
            f"ENGINE = {self.layout.merge_tree('Replacing')} ORDER BY version"
        )
        self.store.command(
            f"INSERT INTO {_name(VERSIONS)} VALUES ({version:d}, now64(6), {_literal(summary)})"
        )

    def _present(self) -> set[str]:
        rows = self.store.query(
            "SELECT name FROM system.tables WHERE database = {database:String}",
            {"database": DATABASE},
        )
        return {str(row["name"]) for row in rows}

    def _definition(self, name: str) -> Definition:
        rows = self.store.query(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = {database:String} AND name = {name:String}",
            {"database": DATABASE, "name": name},
        )
        return Definition.of(str(rows[0]["create_table_query"]))

    def _columns(self, name: str) -> set[str]:
        rows = self.store.query(
            "SELECT name FROM system.columns "
            "WHERE database = {database:String} AND table = {name:String}",
            {"database": DATABASE, "name": name},
        )
        return {str(row["name"]) for row in rows}

    def _drop(self, name: str) -> None:
        self.store.command(f"DROP TABLE IF EXISTS {_name(name)}{self.layout.on_cluster} SYNC")


def _name(name: str) -> str:
    return f"`{DATABASE}`.`{name}`"


def _literal(text: str) -> str:
    """`text` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- SQLite and MySQL ----------------------------------------------------------------


class Cursor(Protocol):
    """The DB-API cursor both SQL stores give (sqlite3, PyMySQL)."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...

    def fetchall(self) -> Any: ...


@dataclass(frozen=True)
class SqlDialect:
    """How one SQL store says what `SqlSchema` needs."""

    name: str  # "SQLite", "MySQL"
    placeholder: str
    table_exists: str  # one placeholder: the table's name; a row when it exists
    versions_ddl: str
    record_version: str  # three placeholders: version, applied_at, summary; a no-op when there
    error_record_ddl: Callable[[str], str]  # the CREATE statement under a given name
    indexes: tuple[str, ...]  # error_record's indexes, where not in its CREATE statement
    # Statements that put the rebuilt table (named by the argument) in error_record's place.
    replace_error_record: Callable[[str], tuple[str, ...]]
    # What lets error_record's free text be of any length, where a type bounds it.
    unbound_text: str = ""
    # Statements around a migration, when the store's DDL is transactional.
    begin: str = ""
    commit: str = ""
    rollback: str = ""


# Rows copied per statement while error_record is rebuilt.
_COPY_BATCH: Final = 10_000


class SqlSchema:
    """`error_record`'s store (SQLite or MySQL), read and changed through one cursor."""

    def __init__(self, cursor: Cursor, dialect: SqlDialect, where: str) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.where = where

    def version(self) -> int | None:
        if self._exists(VERSIONS):
            self.cursor.execute(f"SELECT MAX(version) FROM {VERSIONS}")
            found = self.cursor.fetchall()
            if found and found[0][0] is not None:
                return int(found[0][0])
        return FIRST_VERSION if self._exists(ERROR_RECORD.name) else None

    def create(self) -> None:
        self._record(SCHEMA_VERSION, "created")
        self.ensure()

    def ensure(self) -> None:
        if not self._exists(ERROR_RECORD.name):
            for statement in (
                self.dialect.error_record_ddl(ERROR_RECORD.name),
                *self.dialect.indexes,
            ):
                self.cursor.execute(statement)

    def upgrade(self, found: int) -> list[str]:
        due = [migration for migration in _due(found) if migration.sql]
        if not due and found == SCHEMA_VERSION:
            return []
        self._statement(self.dialect.begin)
        try:
            done = [line for migration in due if migration.sql and (line := migration.sql(self))]
            self._record(SCHEMA_VERSION, _summary(found))
        except BaseException:
            self._statement(self.dialect.rollback)
            raise
        self._statement(self.dialect.commit)
        return [*done, f"schema version {found} -> {SCHEMA_VERSION}"]

    def rebuild_error_records(self) -> str:
        """error_record afresh from the registry's DDL, every key recomputed from its row."""
        scratch = ERROR_RECORD.name + REBUILD_SUFFIX
        self.cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
        self.cursor.execute(self.dialect.error_record_ddl(scratch))
        names = ERROR_RECORD.column_names
        select = (
            f"SELECT {', '.join(names)} FROM {ERROR_RECORD.name} "
            f"WHERE record_key > {self.dialect.placeholder} ORDER BY record_key LIMIT {_COPY_BATCH}"
        )
        insert = (
            f"INSERT INTO {scratch} ({', '.join(names)}) "
            f"VALUES ({', '.join(self.dialect.placeholder for _ in names)})"
        )
        student, event, position = (names.index(n) for n in ("student_id", "event_id", "position"))
        after, copied = "", 0
        while True:  # in key order, a batch at a time: memory stays flat
            self.cursor.execute(select, (after,))
            rows = self.cursor.fetchall()
            if not rows:
                break
            after = rows[-1][0]
            self.cursor.executemany(
                insert,
                [
                    (error_record_key(row[student], row[event], row[position]), *row[1:])
                    for row in rows
                ],
            )
            copied += len(rows)
        for statement in self.dialect.replace_error_record(scratch):
            self.cursor.execute(statement)
        return f"rebuilt error_record, keyed by (student_id, event_id, position) ({copied:,} rows)"

    def unbound_text(self) -> str:
        """error_record's free-text columns made to hold any length (MySQL's TEXT: 64 KiB)."""
        if not self.dialect.unbound_text:
            return ""  # SQLite: TEXT has no limit
        self.cursor.execute(self.dialect.unbound_text)
        return "error_record: free-text columns hold any length (LONGTEXT)"

    def _record(self, version: int, summary: str) -> None:
        self.cursor.execute(self.dialect.versions_ddl)
        applied = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        self.cursor.execute(self.dialect.record_version, (version, applied, summary))

    def _exists(self, table: str) -> bool:
        self.cursor.execute(self.dialect.table_exists, (table,))
        return bool(self.cursor.fetchall())

    def _statement(self, sql: str) -> None:
        if sql:
            self.cursor.execute(sql)
