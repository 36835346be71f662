"""People's contacts in signing's tables: who to write to, unsubscribing, and erasure. The one
place the queries over names and addresses live (docs/personal-data.md)."""

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Row, and_, func, select, update

from services.signing import db
from contract.events import OrganizerErased
from shared.unit_of_work import UnitOfWork

s, p = db.signatures, db.petitions


async def recipients(sessions, petition_id: str, signed_before: datetime, after: str, limit: int) -> list[Row]:
    """Supporters who opted in, are still subscribed and whose signature counted by `signed_before`,
    in signature-id order after `after`: (id, name, email, unsubscribe_token, language)."""
    query = (
        select(s.c.id, s.c.name, s.c.email, s.c.unsubscribe_token, s.c.language)
        .where(and_(
            s.c.petition_id == petition_id,
            s.c.updates.is_(True),
            s.c.unsubscribed_at.is_(None),
            s.c.erased_at.is_(None),
            s.c.state == db.CONFIRMED,  # pending, held and invalidated signers hear nothing
            # Supporters are those whose signature counted by then (confirmed, or signed before
            # confirmation existed).
            func.coalesce(s.c.confirmed_at, s.c.created_at) <= signed_before,
            s.c.id > after,
        ))
        .order_by(s.c.id)
        .limit(limit)
    )
    async with sessions() as session:
        return (await session.execute(query)).all()


async def pending(sessions, signature_ids: list[str]) -> list[Row]:
    """Those of these signatures still waiting for their link (not confirmed, held, invalidated,
    expired or erased): (id, petition_id, name, email, confirm_token, language: theirs, else the petition's)."""
    async with sessions() as session:
        return (await session.execute(
            select(s.c.id, s.c.petition_id, s.c.name, s.c.email, s.c.confirm_token,
                   func.coalesce(s.c.language, p.c.language).label("language"))
            .join(p, p.c.id == s.c.petition_id)
            .where(s.c.id.in_(signature_ids), s.c.state == db.PENDING, s.c.erased_at.is_(None))
        )).all()


async def organizer(sessions, petition_id: str) -> Row | None:
    """(organizer_name, organizer_email, organizer_erased_at, review_note, language, milestone_emails) of a
    petition, or None."""
    async with sessions() as session:
        return (await session.execute(
            select(p.c.organizer_name, p.c.organizer_email, p.c.organizer_erased_at, p.c.review_note, p.c.language,
                   p.c.milestone_emails)
            .where(p.c.id == petition_id)
        )).first()


async def subscription(sessions, token: str) -> Row | None:
    """The signature an unsubscribe token belongs to: (id, unsubscribed_at, title, slug, language: the
    signer's, else the petition's), or None."""
    async with sessions() as session:
        return (await session.execute(
            select(s.c.id, s.c.unsubscribed_at, p.c.title, p.c.slug,
                   func.coalesce(s.c.language, p.c.language).label("language"))
            .join(p, p.c.id == s.c.petition_id)
            .where(s.c.unsubscribe_token == token)
        )).first()


async def unsubscribe(sessions, signature_id: str) -> None:
    """No more emails for this signature (a second time changes nothing)."""
    async with sessions.begin() as session:
        await session.execute(
            update(s).where(and_(s.c.id == signature_id, s.c.unsubscribed_at.is_(None)))
            .values(unsubscribed_at=datetime.now(timezone.utc))
        )


@dataclass(frozen=True)
class Erasure:
    signatures: int
    petitions: int  # petitions the mailbox organized


async def erase(write: UnitOfWork, key: str) -> Erasure:
    """Blank every contact stored under this mailbox key: the signer's name, email, postcode and
    comment on each signature, and the organizer's name and email on each petition they started
    (with an OrganizerErased each, in the same transaction). The key itself stays. Every link the
    mailbox was sent stops working: a pending signature's confirmation link (it never counts),
    the organizer's unused sign-in links and open dashboard sessions."""
    now = datetime.now(timezone.utc)
    async with write() as work:
        session = work.session
        ids = (await session.execute(
            select(s.c.id).where(and_(s.c.mailbox_key == key, s.c.erased_at.is_(None)))
        )).scalars().all()
        if ids:
            await session.execute(update(s).where(s.c.id.in_(ids)).values(
                name="", email="", postcode=None, comment=None, updates=False, unsubscribe_token=None, client_key=None,
                confirm_token=None, erased_at=now,
            ))
        organized = (await session.execute(
            select(p.c.id).where(and_(p.c.organizer_mailbox_key == key, p.c.organizer_erased_at.is_(None)))
        )).scalars().all()
        if organized:  # every replica renders their pages again on the OrganizerErased
            await session.execute(update(p).where(p.c.id.in_(organized)).values(
                organizer_name="", organizer_email="", organizer_erased_at=now))
            links = db.organizer_links
            await session.execute(update(links).where(links.c.petition_id.in_(organized), links.c.used_at.is_(None))
                                  .values(used_at=now))
            await session.execute(db.organizer_sessions.delete().where(
                db.organizer_sessions.c.petition_id.in_(organized)))
            work.add(*(OrganizerErased(petition_id=petition_id) for petition_id in organized))
    return Erasure(signatures=len(ids), petitions=len(organized))
