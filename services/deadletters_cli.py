"""`groundswell counter|notifier dead-letters [--retry all|ID,...] [--resolved]`."""

import json

from shared.db import create_engine, sessionmaker
from shared.deadletters import DeadLetters


async def dead_letters_command(service: str, settings, retry: str | None, include_resolved: bool) -> list[dict]:
    """List the service's dead letters, or retry them (all, or the ids given) and say what happened."""
    if service == "notifier":
        from services.notifier import db
        from contract.events import NOTIFIER_DURABLE as durable
    else:
        from services.counter import db
        from contract.events import COUNTER_DURABLE as durable
    engine = create_engine(settings.database_url)
    sessions = sessionmaker(engine)
    letters = DeadLetters(sessions, db.dead_letters, durable)
    try:
        if retry is None:
            return [_shown(row) for row in await letters.listing(include_resolved)]
        ids = None if retry == "all" else [int(part) for part in retry.split(",") if part.strip()]
        handle, close = await _handler(service, settings, sessions)
        try:
            return await letters.retry(ids, handle)
        finally:
            await close()
    finally:
        await engine.dispose()


def _shown(row) -> dict:
    payload = bytes(row.payload)
    try:
        event_type = json.loads(payload).get("type")
    except (ValueError, AttributeError):
        event_type = None
    return {"id": row.id, "durable": row.durable, "stream_seq": row.stream_seq, "subject": row.subject,
            "type": event_type, "error": row.error, "deliveries": row.deliveries,
            "created_at": row.created_at.isoformat(), "retried_at": row.retried_at and row.retried_at.isoformat(),
            "resolved_at": row.resolved_at and row.resolved_at.isoformat()}


async def _handler(service: str, settings, sessions):
    """The service's own handling of one payload, outside the running process."""
    if service == "notifier":
        from services.notifier.app import compose
        from services.notifier.service import retry_handler

        parts = compose(settings, sessions)  # a fan-out it opens is worked by the running notifier
        return retry_handler(parts.notifier), parts.close

    from services.counter.projection import Delivered, apply_events, counted

    async def handle(payload: bytes) -> None:
        # The counter's outbox sweep (running process) publishes any milestone this reaches.
        async with sessions.kw["bind"].begin() as conn:
            await apply_events(conn, [Delivered(counted(payload), 0)])

    async def close() -> None:
        return None

    return handle, close
