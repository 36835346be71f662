"""Service loops ride out a dependency that is away, and stop the process for anything else."""

import asyncio

import httpx
import pytest
import sqlalchemy.exc

from shared import lifecycle


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(lifecycle, "BACKOFF_FIRST_S", 0.001)


def failing(errors: list[BaseException]):
    runs = []

    async def start() -> None:
        runs.append(len(runs))
        if errors:
            raise errors.pop(0)

    return start, runs


async def test_a_loop_is_started_again_after_transient_failures():
    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    start, runs = failing([down, httpx.ConnectError("no route"), ConnectionResetError(), TimeoutError()])
    await asyncio.wait_for(lifecycle.ride_out(start, "loop"), 5)
    assert len(runs) == 5  # four failures, then a run that returned


async def test_a_failure_no_wait_cures_is_raised():
    start, runs = failing([sqlalchemy.exc.OperationalError("x", {}, OSError()), ValueError("a bug")])
    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(lifecycle.ride_out(start, "loop"), 5)
    assert len(runs) == 2


def test_what_counts_as_transient():
    assert lifecycle.transient(sqlalchemy.exc.OperationalError("x", {}, OSError()))
    assert lifecycle.transient(httpx.ReadTimeout("slow"))
    assert not lifecycle.transient(sqlalchemy.exc.IntegrityError("x", {}, Exception()))
    assert not lifecycle.transient(KeyError("bug"))


def test_a_postgresql_shutting_down_or_starting_is_a_database_away():
    """Connecting while PostgreSQL shuts down gives asyncpg's CannotConnectNowError (57P03), which
    SQLAlchemy wraps as a plain DBAPIError with no connection to invalidate: still transient."""
    import asyncpg
    import sqlalchemy.exc

    from shared.db import unavailable

    class Translated(Exception):  # SQLAlchemy's asyncpg adapter error, caused by asyncpg's
        pass

    orig = Translated("the database system is shutting down")
    orig.__cause__ = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    assert unavailable(sqlalchemy.exc.DBAPIError("connect", {}, orig))
    orig.__cause__ = asyncpg.exceptions.UniqueViolationError("duplicate key")
    assert not unavailable(sqlalchemy.exc.DBAPIError("INSERT", {}, orig))
