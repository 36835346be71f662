"""One adapter per database kind: what differs between SQLite and PostgreSQL, in one place.

Code asks `store_of(...)` for its database's adapter and calls it; it never tests a dialect's
name itself (tests/unit/test_layers.py checks). A service whose own statements differ between the
two subclasses these (services/signing/store.py).

The differences, and why:
- SQLite has one writer: nothing comes between a read and a write in one transaction, so a
  read-then-write needs no RETURNING. PostgreSQL has many: each claim must be one statement.
- On SQLite, many rows travel as one JSON parameter (shared/bulk.py says why: the GIL); on
  PostgreSQL, an executemany of a cached statement is already one round trip.
- Claiming rows among replicas (`FOR UPDATE SKIP LOCKED`), an advisory lock for migrations and
  COPY exist on PostgreSQL only; with SQLite there is one process per database.
"""

from collections.abc import Sequence
from typing import Any

from pathlib import Path

import sqlalchemy
from sqlalchemy import Connection, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import Session

from shared.bulk import insert_json, insert_records, mark_json, present


class Store:
    """The adapter's interface; SQLite and PostgreSQL below implement it."""

    name = ""
    single_writer = False  # True: nothing comes between a read and a write in one transaction

    def __init__(self) -> None:
        self._statements: dict[tuple, Any] = {}  # built once, compiled once (SQLAlchemy's cache)

    def engine(self, url: URL) -> AsyncEngine:
        raise NotImplementedError

    def sync_engine(self, url: URL) -> Engine:
        raise NotImplementedError

    def insert(self, table: Table):
        """An INSERT that takes ON CONFLICT (DO NOTHING / DO UPDATE)."""
        raise NotImplementedError

    def add_rows(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
                 conflict: Sequence[str] | None = None) -> None:
        """Insert many rows (each with the same keys), skipping those that conflict on `conflict`."""
        raise NotImplementedError

    def inserted(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, key: str,
                 conflict: Sequence[str]) -> set:
        """Insert the rows, skipping those that conflict on `conflict`; the `key` of each row inserted."""
        raise NotImplementedError

    def mark(self, conn: Connection, table: Table, column: str, values: Sequence[str], set_sql: str,
             statement: Any) -> None:
        """UPDATE the rows whose `column` is among `values`: `set_sql` on SQLite, `statement` (an
        executemany with a `marked` parameter) on PostgreSQL."""
        raise NotImplementedError

    def claim(self, query):
        """A SELECT of rows this process will work on while others may too."""
        return query

    async def lock(self, conn, key: int) -> None:
        """Hold a lock across processes on this database (SQLite: the caller's file lock)."""

    async def unlock(self, conn, key: int) -> None:
        pass

    async def load(self, session, table: Table, columns: Sequence[str], records: Sequence[Sequence[Any]], *,
                   conflict: Sequence[str]) -> None:
        """Insert a great many rows (a replay), each a sequence of values in the order of `columns`,
        skipping those that conflict; `session` is an AsyncSession or an AsyncConnection."""
        raise NotImplementedError


class SQLite(Store):
    name = "sqlite"
    single_writer = True

    def engine(self, url: URL) -> AsyncEngine:
        """WAL, a busy timeout, its folder created; one connection per process: SQLite has one
        writer at a time anyway, and queueing in the pool is fair and prompt, where SQLite's busy
        handler sleeps and backs off (long tails)."""
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine

    def sync_engine(self, url: URL) -> Engine:
        engine = sqlalchemy.create_engine(url.set(drivername="sqlite"), connect_args={"timeout": 30},
                                          pool_size=1, max_overflow=0)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def insert(self, table: Table):
        return sqlite.insert(table)

    def add_rows(self, conn, table, rows, *, conflict=None) -> None:
        insert_json(conn, table, rows, conflict=conflict)  # one statement (shared/bulk.py)

    def inserted(self, conn, table, rows, *, key, conflict) -> set:
        keys = [row[key] for row in rows]
        if list(conflict) == [key]:  # rows already there share their key: those found before were not inserted
            before = present(conn, table, key, keys)
            insert_json(conn, table, rows, conflict=conflict)
            return set(keys) - before
        # keys new to the table: one statement in, one row back; one writer, so those found are ours
        insert_json(conn, table, rows, conflict=conflict)
        return present(conn, table, key, keys)

    def mark(self, conn, table, column, values, set_sql, statement) -> None:
        mark_json(conn, table, column, values, set_sql)

    async def load(self, session, table, columns, records, *, conflict) -> None:
        await session.run_sync(lambda sync: insert_records(connection_of(sync), table, columns, records,
                                                           conflict=conflict))


class PostgreSQL(Store):
    name = "postgresql"

    def engine(self, url: URL) -> AsyncEngine:
        # No pre-ping (a round trip on every checkout): a connection found dead on use is dropped
        # with its pool, and the group committer tries its batch again on a fresh one.
        return create_async_engine(url, pool_recycle=1800)

    def sync_engine(self, url: URL) -> Engine:
        return sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg"), pool_size=1, max_overflow=1,
                                        pool_recycle=1800)

    def insert(self, table: Table):
        return postgresql.insert(table)

    def add_rows(self, conn, table, rows, *, conflict=None) -> None:
        if not rows:
            return
        cache_key = ("add_rows", table.name, tuple(conflict or ()))
        if (statement := self._statements.get(cache_key)) is None:
            statement = self.insert(table)
            if conflict:
                statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
            self._statements[cache_key] = statement
        conn.execute(statement, list(rows))

    def inserted(self, conn, table, rows, *, key, conflict) -> set:
        cache_key = ("inserted", table.name, key, tuple(conflict))
        if (statement := self._statements.get(cache_key)) is None:
            statement = self._statements[cache_key] = (
                self.insert(table).on_conflict_do_nothing(index_elements=list(conflict)).returning(table.c[key]))
        return set(conn.execute(statement, list(rows)).scalars().all())

    def mark(self, conn, table, column, values, set_sql, statement) -> None:
        conn.execute(statement, [{"marked": value} for value in values])

    def claim(self, query):
        return query.with_for_update(skip_locked=True)

    async def lock(self, conn, key: int) -> None:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        await conn.commit()

    async def unlock(self, conn, key: int) -> None:
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        await conn.commit()

    async def load(self, session, table, columns, records, *, conflict) -> None:
        """COPY into a temporary table, then insert the new rows: several times faster than
        INSERT ... VALUES for a replay's hundreds of thousands."""
        if not records:
            return
        async_connection = session if isinstance(session, AsyncConnection) else await session.connection()
        connection = await async_connection.get_raw_connection()
        driver = connection.driver_connection  # asyncpg, inside this session's transaction
        staging = f"loading_{table.name}"
        await driver.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
                             f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        await driver.copy_records_to_table(staging, columns=list(columns), records=records)
        names = ", ".join(columns)
        await driver.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "
                             f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING")
        await driver.execute(f"TRUNCATE {staging}")


def connection_of(sync: Connection | Session) -> Connection:
    """The Connection that `run_sync` hands over: itself from an AsyncConnection, the session's
    from an AsyncSession."""
    return sync.connection() if isinstance(sync, Session) else sync


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_STORES: dict[str, type[Store]] = {"sqlite": SQLite, "postgresql": PostgreSQL}
_ADAPTERS: dict[tuple[type[Store], str], Store] = {}


def store_of(bind: Any, family: type[Store] = Store) -> Store:
    """The adapter for this database: `bind` is a dialect name, an engine, a connection or a
    session (sync or async). `family`: a service's own adapters (subclasses of SQLite and
    PostgreSQL sharing a base), else the platform's."""
    name = bind if isinstance(bind, str) else _dialect_name(bind)
    adapter = _ADAPTERS.get((family, name))
    if adapter is None:
        kind = _STORES[name]
        classes = [c for c in _subclasses(family) if issubclass(c, kind)] or [kind]
        adapter = _ADAPTERS[family, name] = classes[-1]()
    return adapter


def _subclasses(family: type) -> list[type]:
    found = [family]
    for sub in family.__subclasses__():
        found += _subclasses(sub)
    return found


def _dialect_name(bind: Any) -> str:
    dialect = getattr(bind, "dialect", None)
    if dialect is None:
        get_bind = getattr(bind, "get_bind", None)
        dialect = get_bind().dialect if get_bind else bind.bind.dialect
    return dialect.name
