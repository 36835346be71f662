"""The discovery list's projection: what each petition says (title, an excerpt, its searchable text,
its translations' titles) and its decision makers' responses, beside the counts, statuses and hours
the counting keeps (services/counter/projection.py).

The text is not in the events (a story may name people, and the stream cannot be purged): when a
PetitionCreated, PetitionUpdated or ResponsePublished passes, the durable consumer `listing` reads
the petition's public text from signing's internal API and writes it here, replacing what was
there, so a redelivery writes the same rows again. Counting never waits on it: while signing is
away the list is behind, the counts are not. `groundswell counter rebuild` reads every petition's
text again (rebuild_listing)."""

import asyncio
import json
from collections.abc import Sequence

import httpx
import structlog
from sqlalchemy import delete, select

from contract.events import LISTING_DURABLE, PetitionCreated, PetitionUpdated, ResponsePublished, decode_event
from contract.internal_api import PublicText
from services.counter.db import petition_counts, petition_listing, petition_responses
from services.counter.store import counter_store
from shared.consumers import Delivery, Registry
from shared.deadletters import DeadLetters, describe
from shared.store import store_of

log = structlog.get_logger("counter.listing")

EXCERPT_CHARS = 240
FETCHES_AT_ONCE = 16


class PetitionUnknown(Exception):
    """Signing does not know the petition (a database restored from before it)."""


class SigningTexts:
    """Signing's internal API: a petition's public text (contract/internal_api.py PublicText)."""

    def __init__(self, signing_url: str, internal_token: str | None, http: httpx.AsyncClient | None = None) -> None:
        self.base = signing_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {internal_token or ''}"}
        self.http = http or httpx.AsyncClient(timeout=10)

    async def public(self, petition_id: str) -> PublicText:
        response = await self.http.get(f"{self.base}/internal/petitions/{petition_id}/public", headers=self.headers)
        if response.status_code == 404:
            raise PetitionUnknown(petition_id)
        response.raise_for_status()
        return PublicText.model_validate_json(response.content)

    async def many(self, petition_ids: Sequence[str]) -> list[PublicText]:
        limit = asyncio.Semaphore(FETCHES_AT_ONCE)

        async def one(petition_id: str) -> PublicText:
            async with limit:
                return await self.public(petition_id)

        return list(await asyncio.gather(*(one(p) for p in petition_ids)))

    async def close(self) -> None:
        await self.http.aclose()


def excerpt(story: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(story.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


async def write_texts(conn, texts: Sequence[PublicText]) -> None:
    """Make these petitions' rows say what their texts say (in the caller's transaction)."""
    store = counter_store(conn)
    for text in sorted(texts, key=lambda t: t.petition_id):
        row = {"title": text.title, "language": text.language, "excerpt": excerpt(text.story),
               "created_at": text.created_at,
               "translations": json.dumps({t.language: t.title for t in text.translations}, sort_keys=True)}
        statement = store_of(conn).insert(petition_listing).values(petition_id=text.petition_id, **row)
        await conn.execute(statement.on_conflict_do_update(index_elements=["petition_id"], set_=row))
        searchable = " ".join([text.title, text.story, *(f"{t.title} {t.story}" for t in text.translations)])
        await conn.run_sync(lambda sync, p=text.petition_id, b=searchable: store.index_text(sync, p, b))
        await conn.execute(delete(petition_responses).where(petition_responses.c.petition_id == text.petition_id))
        if text.responses:
            await conn.execute(petition_responses.insert(), [
                {"petition_id": text.petition_id, "threshold": r.threshold, "responder": r.responder, "body": r.body,
                 "published_at": r.published_at} for r in text.responses])


async def rebuild_listing(conn, texts: SigningTexts) -> int:
    """Every counted petition's text read from signing again, into emptied tables; how many."""
    petition_ids = sorted((await conn.execute(select(petition_counts.c.petition_id))).scalars().all())
    fetched = await texts.many(petition_ids)
    await conn.execute(delete(petition_listing))
    await conn.execute(delete(petition_responses))
    await conn.run_sync(lambda sync: counter_store(sync).clear_search(sync))
    await write_texts(conn, fetched)
    return len(fetched)


LISTING = Registry(LISTING_DURABLE, "Builds the discovery list's texts and the decision makers' responses, read "
                                    "from signing when a petition is created or changed or a response published.",
                   decode_event)


@LISTING.on(PetitionCreated, PetitionUpdated, ResponsePublished)
def _texts_of(event) -> str:
    """The petition whose public text to read again."""
    return str(event.petition_id)


def refresh_listing(engine, texts: SigningTexts, dead_letters: DeadLetters, retry_delay_s: float,
                    dead_letter_after: int = 5):
    async def handle(messages: Sequence[Delivery]) -> None:
        """Read the batch's petitions' texts from signing, write them in one transaction, then ack."""
        readable = []
        for item in messages:
            if item.unreadable is not None:
                await dead_letters.bury(item.msg, f"undecodable: {describe(item.unreadable)}")
            else:
                readable.append(item)
        by_petition: dict[str, list[Delivery]] = {}
        for item in readable:
            by_petition.setdefault(LISTING.handler(item.event.type).run(item.event), []).append(item)
        fetched, later = [], []
        for petition_id, items in by_petition.items():
            try:
                fetched.append(await texts.public(petition_id))
            except PetitionUnknown as exc:
                for item in items:
                    if item.deliveries >= dead_letter_after:
                        await dead_letters.bury(item.msg, describe(exc))
                    else:
                        later.append(item)
            except (httpx.HTTPError, ValueError) as exc:  # signing away or answering badly: later
                log.warning("petition_text_unread", petition_id=petition_id, error=str(exc) or type(exc).__name__,
                            retry_in_s=retry_delay_s)
                later += items
        done = [item for item in readable if item not in later]
        try:
            async with engine.begin() as conn:
                await write_texts(conn, fetched)
        except Exception:  # noqa: BLE001 - nothing acked: the batch comes back after the delay
            log.exception("listing_failed", petitions=len(fetched), retry_in_s=retry_delay_s)
            later, done = readable, []
        for item in later:
            await item.nak(retry_delay_s)
        for item in done:
            await item.ack()

    return handle
