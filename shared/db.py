"""Database plumbing shared by the services: engines, sessions, what a failure means, UTC."""

from datetime import datetime, timezone

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from shared.store import store_of


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine, set up as its kind of database needs (shared/store.py)."""
    url = make_url(database_url)
    return store_of(url.get_backend_name()).engine(url)


def create_sync_engine(database_url: str) -> Engine:
    """The same database through a blocking driver (sqlite3, psycopg), for a thread that runs a
    whole transaction at once: one hop from the event loop per transaction, not one per statement."""
    url = make_url(database_url)
    return store_of(url.get_backend_name()).sync_engine(url)


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


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from the database, with its zone: SQLite hands them back naive (they
    were written in UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
