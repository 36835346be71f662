"""What signing keeps only for a while: unconfirmed signatures (GROUNDSWELL_PENDING_EXPIRY_DAYS;
held ones too, if no moderator released them by then), client-address hashes
(GROUNDSWELL_CLIENT_KEY_RETENTION_DAYS) and spent rate-limit windows. Every replica may run it:
each step is one idempotent statement."""

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import structlog
from sqlalchemy import delete, update

from services.signing import db
from services.signing.settings import SigningSettings

log = structlog.get_logger("signing")


@dataclass(frozen=True)
class Purged:
    expired: int  # pending or held signatures deleted
    client_keys: int  # client-address hashes blanked
    windows: int  # rate-limit windows deleted


async def purge(sessions, settings: SigningSettings, now: datetime | None = None) -> Purged:
    now = now or datetime.now(timezone.utc)
    s = db.signatures
    async with sessions.begin() as session:
        expired = await session.execute(delete(s).where(
            s.c.state.in_((db.PENDING, db.HELD)),
            s.c.created_at < now - timedelta(days=settings.pending_expiry_days)))
        keys = await session.execute(update(s).where(
            s.c.client_key.is_not(None),
            s.c.created_at < now - timedelta(days=settings.client_key_retention_days)).values(client_key=None))
        windows = await session.execute(delete(db.rate_windows).where(db.rate_windows.c.expires_at < now.timestamp()))
        await session.execute(delete(db.mail_budget).where(db.mail_budget.c.day < int(now.timestamp() // 86400)))
    return Purged(expired.rowcount, keys.rowcount, windows.rowcount)


async def run(sessions, settings: SigningSettings) -> None:
    """Forever: purge, then wait GROUNDSWELL_PURGE_INTERVAL_S."""
    while True:
        started = time.perf_counter()
        purged = await purge(sessions, settings)
        if purged.expired or purged.client_keys or purged.windows:
            log.info("purged", expired_signatures=purged.expired, client_keys=purged.client_keys,
                     rate_windows=purged.windows, seconds=round(time.perf_counter() - started, 3))
        await asyncio.sleep(settings.purge_interval_s)
