"""Decision makers: a petition reaches its decision maker at each threshold, and they answer publicly.

1. The counter publishes ThresholdReached once per petition and threshold (GROUNDSWELL_THRESHOLDS;
   a dip and a second crossing reach nothing again). Signing's durable consumer `signing` records
   it (the page shows it) and, when the petition names a decision maker, issues a link to respond
   and publishes DecisionMakerNotified, in one transaction: a redelivered ThresholdReached finds the
   threshold recorded and does nothing.
2. The notifier emails the petition to the decision maker once (DecisionMakerNotified is keyed in its
   ledger), reading the address and the link from `POST /internal/decision-maker-links`.
3. The link's token is `<link id>.<keyed MAC>` (as organizers' sign-in links: nothing secret is
   stored). `/r/{token}` shows the petition and a form; the POST publishes the response, spends the
   link and publishes ResponsePublished, in one transaction. A second POST is refused (410), as is a
   link past GROUNDSWELL_RESPONSE_LINK_DAYS. Opening the page does not spend it (mail scanners open
   links).
4. The page and the counter's petition JSON show the response; the notifier emails it to the
   supporters who opted in, once each, through its one delivery pipeline.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

from sqlalchemy import select, update

from contract.events import DecisionMakerNotified, ResponsePublished, ThresholdReached
from contract.internal_api import DecisionMakerLink, PublicText, Response, Translation
from services.signing import db
from shared.db import as_utc
from shared.store import store_of
from shared.unit_of_work import UnitOfWork


def _key(secret: bytes) -> bytes:
    return hashlib.blake2b(secret, person=b"gs-respond", digest_size=32).digest()


def respond_token(secret: bytes, link_id: str) -> str:
    return f"{link_id}.{hmac.new(_key(secret), link_id.encode(), hashlib.sha256).hexdigest()[:32]}"


def link_of(secret: bytes, token: str) -> str | None:
    """The link id a token names, if its MAC is right (constant time); else None."""
    link_id = token.partition(".")[0]
    try:
        UUID(link_id)
    except ValueError:
        return None
    return link_id if hmac.compare_digest(respond_token(secret, link_id), token) else None


@dataclass(frozen=True)
class Link:
    """A decision maker's link, as its page needs it."""

    link_id: str
    petition_id: str
    threshold: int
    label: str
    reached_at: datetime
    expires_at: datetime
    used: bool
    expired: bool


class Decisions:
    def __init__(self, write: UnitOfWork, settings) -> None:
        self.write = write
        self.sessions = write.sessions
        self.secret = settings.mailbox_secret()
        self.link_ttl = timedelta(days=settings.response_link_days)
        self.public_url = settings.public_url.rstrip("/")

    async def record_threshold(self, event: ThresholdReached) -> bool:
        """Record a threshold reached; the first time, issue the decision maker's link (if the petition
        names one) and queue DecisionMakerNotified. False when it was recorded before (a redelivery)."""
        petition_id = str(event.petition_id)
        async with self.write() as work:
            session = work.session
            petition = (await session.execute(
                select(db.petitions.c.decision_maker_email).where(db.petitions.c.id == petition_id))).first()
            if petition is None:
                raise LookupError(f"petition {petition_id} is not known here")
            recorded = (await session.execute(
                store_of(session).insert(db.petition_thresholds)
                .values(petition_id=petition_id, threshold=event.threshold, label=event.label,
                        reached_at=event.occurred_at)
                .on_conflict_do_nothing().returning(db.petition_thresholds.c.threshold))).first()
            if recorded is None:
                return False
            if petition.decision_maker_email:
                now = datetime.now(timezone.utc)
                link_id = str(uuid4())
                await session.execute(db.decision_maker_links.insert().values(
                    id=link_id, petition_id=petition_id, threshold=event.threshold, created_at=now,
                    expires_at=now + self.link_ttl))
                work.add(DecisionMakerNotified(petition_id=petition_id, threshold=event.threshold, link_id=link_id,
                                               correlation_id=event.correlation_id))
        return True

    async def links_to_send(self, link_ids: list[str]) -> list[DecisionMakerLink]:
        """For the notifier: each link still worth sending, with the decision maker's address."""
        links, petitions, reached = db.decision_maker_links, db.petitions, db.petition_thresholds
        now = datetime.now(timezone.utc)
        async with self.sessions() as session:
            rows = (await session.execute(
                select(links.c.id, links.c.petition_id, links.c.threshold, links.c.expires_at,
                       petitions.c.decision_maker_email, petitions.c.language, reached.c.label)
                .join(petitions, petitions.c.id == links.c.petition_id)
                .join(reached, (reached.c.petition_id == links.c.petition_id) & (reached.c.threshold == links.c.threshold))
                .where(links.c.id.in_(link_ids), links.c.used_at.is_(None), petitions.c.decision_maker_email.is_not(None))
            )).all()
        found = []
        for row in rows:
            if as_utc(row.expires_at) <= now:
                continue
            url = f"{self.public_url}/r/{respond_token(self.secret, row.id)}"
            found.append(DecisionMakerLink(link_id=row.id, petition_id=row.petition_id, threshold=row.threshold,
                                           label=row.label, email=row.decision_maker_email, language=row.language, respond_url=url,
                                           summary_url=f"{url}/summary", expires_at=as_utc(row.expires_at)))
        return found

    async def link(self, token: str) -> Link | None:
        """The link a token names (used or expired ones too, so the page can say so); None if none."""
        link_id = link_of(self.secret, token)
        if link_id is None:
            return None
        links, reached = db.decision_maker_links, db.petition_thresholds
        async with self.sessions() as session:
            row = (await session.execute(
                select(links, reached.c.label, reached.c.reached_at)
                .join(reached, (reached.c.petition_id == links.c.petition_id) & (reached.c.threshold == links.c.threshold))
                .where(links.c.id == link_id))).first()
        if row is None:
            return None
        return Link(link_id=row.id, petition_id=row.petition_id, threshold=row.threshold, label=row.label,
                    reached_at=as_utc(row.reached_at), expires_at=as_utc(row.expires_at), used=row.used_at is not None,
                    expired=as_utc(row.expires_at) <= datetime.now(timezone.utc))

    async def respond(self, link: Link, responder: str, body: str, correlation_id: str | None = None) -> bool:
        """Publish the response with this link: False if the link was used (or expired) meanwhile."""
        links = db.decision_maker_links
        now = datetime.now(timezone.utc)
        async with self.write() as work:
            spent = (await work.session.execute(
                update(links).where(links.c.id == link.link_id, links.c.used_at.is_(None), links.c.expires_at > now)
                .values(used_at=now).returning(links.c.id))).first()
            if spent is None:
                return False
            await work.session.execute(db.petition_responses.insert().values(
                petition_id=link.petition_id, threshold=link.threshold, responder=responder, body=body, published_at=now))
            work.add(ResponsePublished(petition_id=link.petition_id, threshold=link.threshold,
                                       correlation_id=correlation_id))
        return True

    async def public_text(self, petition) -> PublicText:
        """What the petition says publicly (for the counter's list and JSON)."""
        return PublicText(
            petition_id=petition.id, title=petition.title, story=petition.story, language=petition.language,
            created_at=as_utc(petition.created_at),
            translations=[Translation(language=language, title=t.title, story=t.story)
                          for language, t in sorted(petition.translations.items())],
            responses=[Response(threshold=r.threshold, responder=r.responder, body=r.body,
                                published_at=as_utc(r.published_at)) for r in petition.responses.values()])


async def thresholds_and_responses(conn, petition_id: str) -> tuple[dict, dict]:
    """A petition's thresholds reached and responses, by threshold (for PetitionCache)."""
    t, r = db.petition_thresholds, db.petition_responses
    reached = (await conn.execute(select(t.c.threshold, t.c.label, t.c.reached_at).where(t.c.petition_id == petition_id))).all()
    answered = (await conn.execute(select(r.c.threshold, r.c.responder, r.c.body, r.c.published_at)
                                   .where(r.c.petition_id == petition_id))).all()
    return {row.threshold: row for row in reached}, {row.threshold: row for row in answered}
