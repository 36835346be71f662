"""What signing's own tables say about one petition, for its organizer and the notifier: the
updates posted, signatures by state, and the rows of the delivery export."""

from sqlalchemy import Row, Select, func, select

from services.signing import db

s, u = db.signatures, db.petition_updates
STATES = (db.CONFIRMED, db.PENDING, db.HELD, db.INVALIDATED)


async def updates(sessions, petition_id: str) -> list[Row]:
    """The organizer's updates, newest first: (number, subject, posted_at)."""
    async with sessions() as session:
        return (await session.execute(
            select(u.c.number, u.c.subject, u.c.posted_at).where(u.c.petition_id == petition_id).order_by(u.c.number.desc())
        )).all()


async def update(sessions, petition_id: str, number: int) -> Row | None:
    """One update, as its emails carry it: (number, subject, body, posted_at), or None."""
    async with sessions() as session:
        return (await session.execute(
            select(u.c.number, u.c.subject, u.c.body, u.c.posted_at)
            .where(u.c.petition_id == petition_id, u.c.number == number))).first()


async def states(sessions, petition_id: str) -> dict[str, int]:
    """How many signatures are confirmed, pending, held and invalidated."""
    async with sessions() as session:
        found = dict((await session.execute(
            select(s.c.state, func.count()).where(s.c.petition_id == petition_id).group_by(s.c.state)
        )).all())
    return {state: found.get(state, 0) for state in STATES}


def export_rows(petition_id: str) -> Select:
    """The confirmed signatures of people not erased, oldest first: (name, postcode, country,
    signed_at, comment). A statement, for a server-side cursor to stream."""
    signed_at = func.coalesce(s.c.confirmed_at, s.c.created_at)
    return (select(s.c.name, s.c.postcode, s.c.country, signed_at.label("signed_at"), s.c.comment)
            .where(s.c.petition_id == petition_id, s.c.state == db.CONFIRMED, s.c.erased_at.is_(None))
            .order_by(signed_at, s.c.id))
