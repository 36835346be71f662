"""Organizers sign in to their petition's dashboard by an emailed link: no passwords.

1. `/p/{slug}/organizer` offers to email a sign-in link to the address the petition was started
   with (whoever presses the button, only the organizer receives it). A link row is stored and a
   `SignInRequested` (link id only) goes on the stream; the notifier reads the address and the
   link from signing (`POST /internal/sign-in-links`) and sends it through its one pipeline.
2. The link's token is `<link id>.<keyed MAC of the link id>` (the key derived from
   GROUNDSWELL_MAILBOX_KEY): nothing secret is stored, and the notifier gets the same link if it
   asks again after a crash. It works once, for GROUNDSWELL_SIGN_IN_LINK_TTL_S, for its petition.
3. `/o/{token}` spends the link and sets a session cookie (random, `HttpOnly`, `SameSite=Lax`,
   `Secure` behind https; only its SHA-256 is stored) for that petition alone, valid for
   GROUNDSWELL_ORGANIZER_SESSION_TTL_S. Without a session the dashboard answers 401; with one for
   another petition, 403. State-changing forms are POSTs: a Lax cookie does not travel on another
   site's POST, and shared/http.py's CrossSiteGuard refuses cross-site POSTs besides.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

from fastapi import Request
from sqlalchemy import select, update

from services.signing import db
from services.signing.abuse import MailBudget
from shared.db import as_utc
from contract.events import SignInRequested
from contract.internal_api import SignInLink
from shared.unit_of_work import UnitOfWork

COOKIE = "groundswell_organizer"


def _key(secret: bytes) -> bytes:
    return hashlib.blake2b(secret, person=b"gs-sign-in", digest_size=32).digest()


def link_token(secret: bytes, link_id: str) -> str:
    mac = hmac.new(_key(secret), link_id.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{link_id}.{mac}"


def link_of(secret: bytes, token: str) -> str | None:
    """The link id a token names, if its MAC is right (constant time); else None."""
    link_id, _, mac = token.partition(".")
    try:
        UUID(link_id)
    except ValueError:
        return None
    return link_id if hmac.compare_digest(link_token(secret, link_id), token) else None


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    petition_id: str


class Organizers:
    def __init__(self, write: UnitOfWork, settings, mail_budget: MailBudget) -> None:
        self.write = write
        self.sessions = write.sessions
        self.settings = settings
        self.secret = settings.mailbox_secret()
        self.mail_budget = mail_budget

    async def request_link(self, petition_id: str, correlation_id: str | None, purpose: str = "sign_in") -> bool:
        """Queue a sign-in link for the petition's organizer; False when none goes: one was asked for
        less than GROUNDSWELL_SIGN_IN_RESEND_S ago (the earlier one is on its way), the organizer
        never confirmed their email (only the link from /start, `purpose` confirm, goes to an address
        nobody confirmed, and /start counted it against the budget), or the organizer's mailbox is
        over its email budget (GROUNDSWELL_MAILBOX_EMAILS_PER_HOUR and _PER_DAY)."""
        now = datetime.now(timezone.utc)
        links, petitions = db.organizer_links, db.petitions
        async with self.write() as work:
            session = work.session
            petition = (await session.execute(
                select(petitions.c.status, petitions.c.organizer_mailbox_key).where(petitions.c.id == petition_id)
            )).first()
            if petition is None or (purpose == "sign_in" and petition.status == db.UNCONFIRMED):
                return False
            latest = (await session.execute(
                select(links.c.created_at).where(links.c.petition_id == petition_id)
                .order_by(links.c.created_at.desc()).limit(1)
            )).scalar()
            if latest is not None and now - as_utc(latest) < timedelta(seconds=self.settings.sign_in_resend_s):
                return False
            if purpose == "sign_in" and await session.run_sync(
                    lambda sync: self.mail_budget.over(sync.connection(), [petition.organizer_mailbox_key])[0]):
                return False  # (the block commits: the refused email counted too)
            link_id = str(uuid4())
            await session.execute(links.insert().values(
                id=link_id, petition_id=petition_id, created_at=now,
                expires_at=now + timedelta(seconds=self.settings.sign_in_link_ttl_s)))
            work.add(SignInRequested(petition_id=petition_id, link_id=link_id, correlation_id=correlation_id,
                                     purpose=purpose))
        return True

    async def links_to_send(self, link_ids: list[str]) -> list[SignInLink]:
        """For the notifier: each link still worth sending, with the organizer's contact."""
        links, petitions = db.organizer_links, db.petitions
        now = datetime.now(timezone.utc)
        public_url = self.settings.public_url.rstrip("/")
        async with self.sessions() as session:
            rows = (await session.execute(
                select(links.c.id, links.c.petition_id, links.c.expires_at, petitions.c.organizer_name,
                       petitions.c.organizer_email, petitions.c.language)
                .join(petitions, petitions.c.id == links.c.petition_id)
                .where(links.c.id.in_(link_ids), links.c.used_at.is_(None), petitions.c.organizer_erased_at.is_(None))
            )).all()
        return [SignInLink(link_id=row.id, petition_id=row.petition_id, name=row.organizer_name, language=row.language,
                           email=row.organizer_email, sign_in_url=f"{public_url}/o/{link_token(self.secret, row.id)}")
                for row in rows if as_utc(row.expires_at) > now]

    async def sign_in(self, token: str) -> tuple[str, str] | None:
        """Spend a link: (petition id, session token), or None for a link that is wrong, used or
        expired."""
        link_id = link_of(self.secret, token)
        if link_id is None:
            return None
        links = db.organizer_links
        now = datetime.now(timezone.utc)
        session_token = secrets.token_urlsafe(32)
        async with self.sessions.begin() as session:
            spent = (await session.execute(
                update(links).where(links.c.id == link_id, links.c.used_at.is_(None), links.c.expires_at > now)
                .values(used_at=now).returning(links.c.petition_id)
            )).scalar()
            if spent is None:
                return None
            await session.execute(db.organizer_sessions.insert().values(
                token_hash=session_hash(session_token), petition_id=spent, created_at=now,
                expires_at=now + timedelta(seconds=self.settings.organizer_session_ttl_s)))
        return spent, session_token

    async def session_of(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        sessions = db.organizer_sessions
        async with self.sessions() as session:
            row = (await session.execute(
                select(sessions.c.petition_id, sessions.c.expires_at).where(sessions.c.token_hash == session_hash(token))
            )).first()
        if row is None or as_utc(row.expires_at) <= datetime.now(timezone.utc):
            return None
        return Session(row.petition_id)

    async def sign_out(self, request: Request) -> None:
        if token := request.cookies.get(COOKIE):
            async with self.sessions.begin() as session:
                await session.execute(db.organizer_sessions.delete().where(
                    db.organizer_sessions.c.token_hash == session_hash(token)))
