"""Database plumbing shared by the services: engines and dialect-neutral upserts."""

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and its folder created."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # No pre-ping (a round trip on every checkout): a connection found dead on use is dropped
        # with its pool, and the group committer tries its batch again on a fresh one.
        return create_async_engine(url, pool_recycle=1800)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: SQLite has one writer at a time anyway, and queueing in the
    # pool is fair and prompt, where SQLite's busy handler sleeps and backs off (long tails).
    engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sync_engine(database_url: str) -> Engine:
    """The same database through a blocking driver (sqlite3, psycopg), for a thread that runs a
    whole transaction at once: one hop from the event loop per transaction, not one per statement."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = sqlalchemy.create_engine(url.set(drivername="sqlite"), connect_args={"timeout": 30},
                                          pool_size=1, max_overflow=0)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg"), pool_size=1, max_overflow=1,
                                    pool_recycle=1800)


def unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or cannot answer now (down, restarting, connection lost,
    pool exhausted, locked): a retry later can succeed. Not a bad statement or bad data."""
    if isinstance(exc, (OSError, TimeoutError, sqlalchemy.exc.TimeoutError, sqlalchemy.exc.InterfaceError,
                        sqlalchemy.exc.OperationalError)):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated or _sqlstate(exc)[:2] in UNAVAILABLE_SQLSTATE_CLASSES)


# PostgreSQL's connection exceptions (08), insufficient resources (53: a full disk, out of memory,
# too many connections) and operator intervention (57: shutting down, starting up, cannot connect
# now): the server is going away, not there yet, or short of something that comes back.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


def _sqlstate(exc: BaseException) -> str:
    """The SQLSTATE behind a DBAPIError (asyncpg's, as SQLAlchemy hands it over), or ''."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return ""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine_or_dialect_name) -> bool:
    name = getattr(getattr(engine_or_dialect_name, "dialect", None), "name", engine_or_dialect_name)
    return name == "postgresql"


def insert(dialect_name: str, table: Table):
    """An INSERT that supports ON CONFLICT on both SQLite and PostgreSQL."""
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from the database, with its zone: SQLite hands them back naive (they
    were written in UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
