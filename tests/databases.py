"""Databases for tests: SQLite files, or throwaway PostgreSQL databases.

PostgreSQL is found in this order: GROUNDSWELL_TEST_DATABASE_URL (a server URL), the local
server on 127.0.0.1:5432, a testcontainers PostgreSQL when a Docker engine answers; otherwise
PostgreSQL tests skip with the reason, and under CI=true that skip is a failure.
GROUNDSWELL_TEST_POSTGRES=container skips the first two: every PostgreSQL test then runs on one
testcontainers PostgreSQL (`postgres:16-alpine`, the official image or its stand-in from
tests/compose/standins), as CI runs them.
"""

import asyncio
import functools
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
import sqlite3
from pathlib import Path

import asyncpg
import pytest

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

# For a test about what the database does not decide (the page in a browser, HTTP caching and
# CORS, live streams, the front door's files): run on SQLite only, instead of the `backend`
# fixture's two. Counting, signing, moderation and email run on both.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


@functools.cache
def postgres_server() -> tuple[str | None, str]:
    """(admin URL of a PostgreSQL server or None, how it was found or why not)."""
    given = os.environ.get("GROUNDSWELL_TEST_DATABASE_URL")
    candidates = [(given, "GROUNDSWELL_TEST_DATABASE_URL")] if given else [(LOCAL_SERVER, "local server")]
    container_only = os.environ.get("GROUNDSWELL_TEST_POSTGRES") == "container"
    for url, source in ([] if container_only else candidates):
        if _answers(url):
            return url, source
    container_url, why = _testcontainer()
    if container_url:
        return container_url, f"testcontainers, {why}"
    if container_only:
        return None, f"GROUNDSWELL_TEST_POSTGRES=container, and no testcontainers PostgreSQL: {why}"
    return None, f"no PostgreSQL: {candidates[0][1]} did not answer and no testcontainers PostgreSQL: {why}"


def _answers(url: str) -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(_plain(url), timeout=3)
        await conn.close()

    try:
        _sync(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def _testcontainer() -> tuple[str | None, str]:
    """A testcontainers PostgreSQL for this test session: (its URL, "") or (None, why not)."""
    # This machine kind's traps (../shared/guide/docker.md): Ryuk, testcontainers' reaper, is only
    # on Docker Hub (the container is stopped at exit instead), and a /.dockerenv file makes it
    # think it runs inside a container.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
    try:
        from tests.compose.stack import engine

        host, source = engine()
        if host is None:
            return None, source
        os.environ["DOCKER_HOST"] = host
        from tests.compose import standins

        standins.ensure(log=lambda line: print(f"testcontainers: {line}", flush=True), only=("postgres:16-alpine",))
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        image = container.get_wrapped_container().image
        kind = "a stand-in" if standins.LABEL in (image.labels or {}) else "the official image"
    except Exception as exc:  # noqa: BLE001 - no Docker engine or no image: PostgreSQL is simply not available
        return None, f"{type(exc).__name__}: {exc}"[:300]
    import atexit

    atexit.register(container.stop)
    return container.get_connection_url(), f"container {container.get_wrapped_container().short_id}, " \
                                           f"postgres:16-alpine ({kind})"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def require_postgres() -> str:
    url, reason = postgres_server()
    if url is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(reason)
    return url


class Database:
    """One service's database for one test: a SQLite file or a fresh PostgreSQL database."""

    def __init__(self, backend: str, name: str, folder: Path, server: str | None = None) -> None:
        """`server`: a PostgreSQL admin URL (a test's own server, tests/pgserver.py); else the shared one."""
        self.backend = backend
        if backend == "sqlite":
            self.path = folder / f"{name}.db"
            self.url = f"sqlite+aiosqlite:///{self.path}"
            return
        server = server or require_postgres()
        self.name = f"gs_{name}_{secrets.token_hex(4)}"
        _admin(server, f'CREATE DATABASE "{self.name}"')
        base = _plain(server).rsplit("/", 1)[0]
        self.plain_url = f"{base}/{self.name}"
        self.url = self.plain_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        self.server = server

    def query(self, sql: str) -> list[tuple]:
        if self.backend == "sqlite":
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as conn:
                return conn.execute(sql).fetchall()
        return [tuple(row) for row in _sync(_fetch(self.plain_url, sql))]

    def execute(self, sql: str) -> None:
        if self.backend == "sqlite":
            with sqlite3.connect(self.path, timeout=10) as conn:
                conn.execute(sql)
            return
        _sync(_fetch(self.plain_url, sql))

    def drop(self) -> None:
        if self.backend == "postgres":
            _admin(self.server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def _fetch(url: str, sql: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def _admin(server: str, sql: str) -> None:
    _sync(_fetch(_plain(server), sql))


def _sync(coro):
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result()
