"""Alembic migrations, one history per service, run under a lock so concurrent runs are safe."""

import contextlib
import fcntl
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, make_url

from shared.db import create_engine
from shared.store import store_of

log = structlog.get_logger("migrate")

# One advisory lock key per service, so services sharing a server never wait on each other.
LOCK_KEYS = {"signing": 7_301_001, "counter": 7_301_002, "notifier": 7_301_003}


def alembic_config(service: str) -> Config:
    config = Config()
    config.set_main_option("script_location", f"services.{service}:migrations")
    return config


async def migrate(service: str, database_url: str, **attributes) -> None:
    """Bring the service's database to the newest revision; a second, concurrent run waits.
    `attributes` reach the migrations (op.get_context().config.attributes), e.g. a secret."""
    engine = create_engine(database_url)
    try:
        with _file_lock(database_url):
            async with engine.connect() as conn:
                store = store_of(conn)
                await store.lock(conn, LOCK_KEYS[service])
                try:
                    await conn.run_sync(_upgrade, service, attributes)
                    await conn.commit()
                finally:
                    await store.unlock(conn, LOCK_KEYS[service])
    finally:
        await engine.dispose()
    log.info("migrated", service=service)


def _upgrade(connection: Connection, service: str, attributes: dict) -> None:
    config = alembic_config(service)
    config.attributes.update(attributes)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@contextlib.contextmanager
def _file_lock(database_url: str):
    """SQLite has no advisory locks: processes migrating one file take a lock file beside it."""
    url = make_url(database_url)
    if not store_of(url.get_backend_name()).single_writer or not url.database or url.database == ":memory:":
        yield
        return
    lock_path = Path(url.database).with_suffix(".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
