"""Whether events flow: for readiness (/readyz), a metric and a log line an operator's alerting
can match. Every process can be running and every connection up while nothing moves:

- `outbox`: an event has waited in this service's outbox longer than GROUNDSWELL_STALL_AFTER_S;
- `broker`: the relay is connected and publishing, events wait, and for BROKER_SILENT_S every
  round of publishes left some unstored (shared/outbox.py unacknowledged_for_s): a broker that
  stopped storing (a full disk, seen to last until nats-server restarts; the embedded supervisor
  restarts it on this, services/embedded);
- `consumer`: the service's durable consumer has messages waiting and has neither taken nor
  acknowledged one for GROUNDSWELL_STALL_AFTER_S;
- `storage`: a folder this process writes (a SQLite database's, the front door's) has less than
  GROUNDSWELL_MIN_FREE_MB free;
- `smtp`: the notifier's mail server does not answer (services/notifier/smtp.py SmtpReachable).

Each part is checked every CHECK_EVERY_S beside the service's work; /readyz reads the result.
A part that stops is logged once as `events_stalled` (level error, with `part`) and again each
minute while it lasts, then `events_flowing_again`; `groundswell_events_stalled{part}` is 1 meanwhile.
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import structlog

from shared.db import as_utc
from shared.metrics import EVENTS_STALLED

log = structlog.get_logger("flow")

CHECK_EVERY_S = 2.0
BROKER_SILENT_S = 10.0
REPEAT_LOG_S = 60.0

Check = Callable[[], Awaitable[tuple[bool, dict]]]  # -> (flowing, what an operator should see)


class FlowWatch:
    def __init__(self, stall_after_s: float = 30.0, min_free_bytes: int = 8 << 20, clock=time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.min_free_bytes = min_free_bytes
        self.clock = clock
        self._checks: dict[str, Check] = {}
        self.flowing: dict[str, bool] = {}
        self.details: dict[str, dict] = {}
        self._stalled_since: dict[str, float] = {}
        self._logged_at: dict[str, float] = {}

    # --- parts --------------------------------------------------------------------------------

    def watch_outbox(self, relay) -> None:
        """This service's outbox (shared/outbox.py OutboxRelay): its oldest event's age, and
        whether the broker acknowledges what the relay publishes."""

        async def outbox() -> tuple[bool, dict]:
            waiting, oldest = await relay.recent_backlog()  # the relay reads it every second anyway
            age_s = (datetime.now(timezone.utc) - as_utc(oldest)).total_seconds() if oldest else 0.0
            return age_s <= self.stall_after_s, {"unpublished": waiting, "oldest_age_s": round(age_s, 1)}

        async def broker() -> tuple[bool, dict]:
            silent_s = relay.unacknowledged_for_s()
            return silent_s <= BROKER_SILENT_S, {"unacknowledged_for_s": round(silent_s, 1)}

        self._checks["outbox"] = outbox
        self._checks["broker"] = broker

    def watch_consumer(self, info: Callable[[], Awaitable[object]], durable: str) -> None:
        """A durable consumer: `info()` is its ConsumerInfo (nats-py's js.consumer_info)."""
        seen: dict[str, float | tuple] = {}

        async def consumer() -> tuple[bool, dict]:
            state = await info()
            waiting = (state.num_pending or 0) + (state.num_ack_pending or 0)
            position = (state.delivered.stream_seq if state.delivered else 0,
                        state.ack_floor.stream_seq if state.ack_floor else 0)
            now = self.clock()
            if seen.get("position") != position or not waiting:
                seen["position"], seen["moved_at"] = position, now
            idle_s = now - seen["moved_at"]
            return idle_s <= self.stall_after_s, {"durable": durable, "waiting": waiting, "idle_s": round(idle_s, 1)}

        self._checks["consumer"] = consumer

    def watch_storage(self, folders: Iterable[Path]) -> None:
        """Local folders this process writes to: each must keep min_free_bytes free."""
        folders = [Path(folder) for folder in folders]
        if not folders:
            return

        async def storage() -> tuple[bool, dict]:
            free = {str(folder): free_bytes(folder) for folder in folders}
            low = {folder: n for folder, n in free.items() if n is not None and n < self.min_free_bytes}
            return not low, {"free_mb": {f: round(n / (1 << 20), 1) for f, n in (low or free).items() if n is not None}}

        self._checks["storage"] = storage

    def watch(self, name: str, check: Check) -> None:
        """Any other part the service's events need to flow (the notifier's SMTP server)."""
        self._checks[name] = check

    # --- checking ------------------------------------------------------------------------------

    def checks(self) -> dict[str, bool]:
        """Each part's last verdict (a part not checked yet counts as flowing)."""
        return {name: self.flowing.get(name, True) for name in self._checks}

    async def run(self) -> None:
        """Forever: check every part, then wait CHECK_EVERY_S."""
        while True:
            await self.check_once()
            await asyncio.sleep(CHECK_EVERY_S)

    async def check_once(self) -> None:
        for name, check in list(self._checks.items()):
            try:
                flowing, detail = await asyncio.wait_for(check(), CHECK_EVERY_S * 2)
            except Exception:  # noqa: BLE001 - a dependency away: /readyz says so already; keep the last verdict
                continue
            self._record(name, flowing, detail)

    def _record(self, name: str, flowing: bool, detail: dict) -> None:
        now = self.clock()
        self.details[name] = detail
        was = self.flowing.get(name, True)
        self.flowing[name] = flowing
        EVENTS_STALLED.labels(name).set(0 if flowing else 1)
        if not flowing:
            since = self._stalled_since.setdefault(name, now)
            if was or now - self._logged_at.get(name, 0.0) >= REPEAT_LOG_S:
                self._logged_at[name] = now
                log.error("events_stalled", part=name, stalled_for_s=round(now - since, 1), **detail)
        elif not was:
            since = self._stalled_since.pop(name, now)
            log.warning("events_flowing_again", part=name, stalled_for_s=round(now - since, 1), **detail)


def free_bytes(folder: Path) -> int | None:
    """Bytes free for an unprivileged writer in the folder's file system; None if it cannot be read."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def local_folders(database_url: str, *others: Path | None) -> list[Path]:
    """The folders a process writes to on this host: a SQLite database's, and any given."""
    folders = []
    if database_url.startswith("sqlite") and ":///" in database_url:
        path = database_url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            folders.append(Path(path).resolve().parent)
    folders += [Path(other) for other in others if other is not None]
    return folders
