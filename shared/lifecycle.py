"""Start and stop of the pieces every service shares: database, NATS, background tasks."""

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine

import structlog
from nats.aio.client import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import nats as gs_nats
from shared.db import create_engine, sessionmaker
from shared.flow import FlowWatch, local_folders
from shared.migrations import migrate
from shared.settings import ServiceSettings

log = structlog.get_logger("lifecycle")


class Runtime:
    """What one service process holds open: its engine, its NATS client, its tasks."""

    def __init__(self, settings: ServiceSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.engine: AsyncEngine = create_engine(settings.database_url)
        self.sessions = sessionmaker(self.engine)
        self.nc: Client | None = None
        self.tasks: list[asyncio.Task] = []
        self.brokers: list = []  # FastStream brokers consuming on self.nc (shared/consumers.py)
        # Whether events flow (shared/flow.py); each service says which of its parts to watch.
        self.flow = FlowWatch(settings.stall_after_s, settings.min_free_mb << 20)
        self.flow.watch_storage(local_folders(settings.database_url, getattr(settings, "public_dir", None)))

    async def open_database(self) -> None:
        if self.settings.migrate_on_start:
            await migrate(self.name, self.settings.database_url, **self.settings.migration_attributes())
        self.spawn(self.flow.run(), "flow-watch")

    async def connect_nats(self) -> Client:
        self.nc = await gs_nats.connect(
            self.settings.nats_servers, self.name, self.settings.nats_connect_timeout_s
        )
        log.info("nats_connected", servers=self.nc.connected_url.netloc if self.nc.connected_url else None)
        return self.nc

    async def start_consuming(self, broker, nc: Client) -> None:
        """Start a FastStream broker's subscribers on this process's connection; close() stops them."""
        self.brokers.append(broker)
        await broker.start_on(nc)

    def spawn(self, coro: Coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self.tasks.append(task)
        return task

    def keep(self, start: Callable[[], Coroutine], name: str) -> asyncio.Task:
        """Run a service loop, started again with bounded backoff when it fails for a reason that
        passes (the database, NATS, SMTP or another service away for a while); any other failure
        stops the process, as with spawn(), for its supervisor to restart."""
        return self.spawn(ride_out(start, name), name)

    async def readiness(self) -> dict[str, bool]:
        """The database and NATS answer, and events flow (shared/flow.py)."""
        return {"database": await self._database_ok(), "nats": bool(self.nc and self.nc.is_connected),
                **self.flow.checks()}

    async def _database_ok(self, timeout_s: float = 2.0) -> bool:
        # The bound covers the connect too: a pooled connection to a server that restarted, or a
        # connect that hangs, would otherwise hold a readiness probe for asyncpg's 60 s.
        try:
            async with asyncio.timeout(timeout_s):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure (TimeoutError included) means "not ready"
            return False
        return True

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop tasks, NATS and the database, each step bounded: shutdown never hangs."""
        gs_nats.closing()
        await _bounded("consumers", [asyncio.ensure_future(broker.stop()) for broker in self.brokers], timeout_s)
        await _bounded("tasks", [*self.tasks], timeout_s, cancel=True)
        if self.nc is not None and not self.nc.is_closed:
            # close, not drain: draining a pull subscription waits on fetch leftovers, and
            # nothing here needs draining (unacked messages come back; unmarked rows are re-sent).
            await _bounded("nats", [asyncio.ensure_future(self.nc.close())], timeout_s)
        await _bounded("database", [asyncio.ensure_future(self.engine.dispose())], timeout_s)


RECANCEL_S = 0.1


async def _bounded(step: str, futures: list, timeout_s: float, cancel: bool = False) -> None:
    """Wait for `futures` at most `timeout_s`. With `cancel`, cancel them, and cancel again every
    RECANCEL_S while any is left: on Python 3.11 asyncio.wait_for (which nats-py uses inside its
    fetch and watch calls) swallows a cancellation that lands as its inner wait completes, and the
    loop around it runs on; a second cancellation ends it."""
    if not futures:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    done, pending = set(), set(futures)
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        if cancel:
            for future in pending:
                future.cancel()
        finished, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, remaining) if cancel else remaining)
        done |= finished
    for future in done:
        if not future.cancelled() and future.exception() is not None and \
                not isinstance(future.exception(), asyncio.CancelledError):
            log.debug("shutdown_step_error", step=step, error=repr(future.exception()))
    if pending:
        log.warning("shutdown_step_timed_out", step=step,
                    pending=[getattr(f, "get_name", lambda: "?")() for f in pending],
                    stuck_at=[_where(f) for f in pending])


def _where(future) -> str:
    """file:line of the innermost coroutine frame a stuck task is waiting in."""
    coro, where = future.get_coro() if hasattr(future, "get_coro") else None, "?"
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return where


crashed: list[str] = []  # names of background tasks that died; the CLI then exits non-zero
stop_on_crash = False  # set by the CLI: a service process stops itself when a background task dies


def _report_crash(task: asyncio.Task) -> None:
    """A service whose loop died must not linger half-alive: stop it, so its supervisor restarts it."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background_task_crashed", task=task.get_name(), exc_info=task.exception())
        crashed.append(task.get_name())
        if stop_on_crash:
            os.kill(os.getpid(), signal.SIGTERM)


BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def transient(exc: BaseException) -> bool:
    """A failure that waiting cures: a dependency down, restarting, or unreachable."""
    import httpx
    import nats.errors

    from shared.db import unavailable

    if unavailable(exc) or isinstance(exc, (nats.errors.Error, httpx.TransportError, ConnectionError)):
        return True
    try:
        import aiosmtplib
    except ImportError:  # pragma: no cover - every service installs it
        return False
    return isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                            aiosmtplib.SMTPTimeoutError))


async def ride_out(start: Callable[[], Coroutine], name: str) -> None:
    """start() again after each transient failure, waiting 0.5 s doubling to 30 s; the wait starts
    over once the loop has run a minute without failing."""
    delay = BACKOFF_FIRST_S
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await start()
            return
        except Exception as exc:
            if not transient(exc):
                raise
            if asyncio.get_running_loop().time() - started > 60:
                delay = BACKOFF_FIRST_S
            log.warning("background_task_retrying", task=name, error=type(exc).__name__, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
