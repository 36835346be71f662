"""Moderation: what a moderator can do with the admin token: see held and suspect signatures, invalidate them in bulk by a
filter (with a dry run that says how many), release held ones. Every action, dry runs included,
is recorded in `moderation_actions`.

Invalidating a signature that counted publishes SignatureInvalidated, and the counter subtracts
it; a pending or held one simply never counts. Releasing a held signature sends its confirmation
email (or, with confirmation off, counts it). Milestones already reached are never emailed again
when the count dips below them and rises past them (the counter records each milestone once).

The routes are in services/signing/moderation.py; the changes go through signing's unit of work
(shared/unit_of_work.py), which publishes their events after the commit.
"""

import json
from datetime import datetime, timezone
from typing import Annotated, Literal
from uuid import uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import and_, func, select, update

from services.signing import db
from services.signing.schemas import CountryCode, UtcDatetime
from services.signing.signatures import signature_added
from shared.db import as_utc
from contract.events import ConfirmationRequested, SignatureInvalidated
from shared.unit_of_work import UnitOfWork

Domain = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=253,
                                          pattern=r"^[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")]
ClientKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
ModeratedState = Literal["pending", "held", "confirmed"]


def _as_utc(moment: datetime) -> datetime:
    """Any zone in, UTC out (stored times are UTC); a time without a zone is taken as UTC."""
    try:
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except OverflowError:
        raise ValueError("is out of range once taken to UTC") from None


Instant = Annotated[datetime, AfterValidator(_as_utc)]


class SignatureFilter(BaseModel):
    """Which of a petition's signatures an action applies to: all criteria given must hold."""

    model_config = ConfigDict(extra="forbid")

    email_domain: Domain | None = Field(None, description="Addresses at exactly this domain.")
    client_key: ClientKey | None = Field(None, description="Signed from the client address with this keyed hash.")
    country: CountryCode | None = None
    signed_after: Instant | None = Field(None, description="Signed at or after this time.")
    signed_before: Instant | None = Field(None, description="Signed before this time.")
    state: list[ModeratedState] | None = Field(None, min_length=1,
                                               description="Only signatures in these states (default: all three).")

    @model_validator(mode="after")
    def _narrow(self) -> "SignatureFilter":
        if not any(v is not None for k, v in self if k != "state"):
            raise ValueError("give at least one of email_domain, client_key, country, signed_after, signed_before "
                             "(an action on every signature of a petition is not offered)")
        return self

    def where(self, petition_id: str, states: tuple[str, ...]):
        s = db.signatures
        chosen = [state for state in (self.state or ("pending", "held", "confirmed")) if state in states]
        conditions = [s.c.petition_id == petition_id, s.c.state.in_(chosen)]
        if self.email_domain:
            conditions.append(func.lower(s.c.email).like(f"%@{self.email_domain}"))
        if self.client_key:
            conditions.append(s.c.client_key == self.client_key)
        if self.country:
            conditions.append(s.c.country == self.country)
        if self.signed_after:
            conditions.append(s.c.created_at >= self.signed_after)
        if self.signed_before:
            conditions.append(s.c.created_at < self.signed_before)
        return and_(*conditions)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: SignatureFilter
    dry_run: bool = Field(False, description="Only say how many signatures the action would change.")


class ActionOut(BaseModel):
    id: str
    action: Literal["invalidate", "release"]
    dry_run: bool
    matched: int = Field(description="Signatures the filter selects (that the action would change).")
    changed: int = Field(description="Signatures changed: 0 for a dry run.")
    filter: dict
    created_at: UtcDatetime


class HeldSignature(BaseModel):
    id: str
    state: str
    held_reason: str | None
    email_domain: str
    country: str | None
    client_key: str | None
    created_at: UtcDatetime


class SignaturesOut(BaseModel):
    signatures: list[HeldSignature]
    next: str | None = None


async def _record(session, petition_id: str, action: str, body: ActionIn, matched: int, changed: int,
                  action_id: str | None = None) -> ActionOut:
    out = ActionOut(id=action_id or str(uuid4()), action=action, dry_run=body.dry_run, matched=matched, changed=changed,
                    filter=body.filter.model_dump(mode="json", exclude_none=True),
                    created_at=datetime.now(timezone.utc))
    await session.execute(db.moderation_actions.insert().values(
        id=out.id, petition_id=petition_id, action=action, filter=json.dumps(out.filter), dry_run=out.dry_run,
        matched=matched, created_at=out.created_at))
    return out


async def invalidate(write: UnitOfWork, petition_id: str, body: ActionIn, correlation_id: str | None) -> ActionOut:
    """Invalidate the petition's signatures that the filter selects (`dry_run`: only count them).
    Those that counted are subtracted from the count (a SignatureInvalidated each)."""
    s = db.signatures
    now = datetime.now(timezone.utc)
    async with write() as work:
        session = work.session
        where = body.filter.where(petition_id, (db.PENDING, db.HELD, db.CONFIRMED))
        if body.dry_run:
            matched = (await session.execute(select(func.count()).select_from(s).where(where))).scalar_one()
            return await _record(session, petition_id, "invalidate", body, matched, 0)
        moderation_id = str(uuid4())
        values = {"state": db.INVALIDATED, "invalidated_at": now, "moderation_id": moderation_id}
        # Those that counted first, read back by the UPDATE itself: a signature confirmed by a
        # concurrent request is either counted here (and subtracted) or finds itself invalidated.
        counted = (await session.execute(
            update(s).where(body.filter.where(petition_id, (db.CONFIRMED,))).values(**values)
            .returning(s.c.id, s.c.country, func.coalesce(s.c.confirmed_at, s.c.created_at))
        )).all()
        others = (await session.execute(
            update(s).where(body.filter.where(petition_id, (db.PENDING, db.HELD))).values(**values).returning(s.c.id)
        )).scalars().all()
        # Where and when each had counted: the counter takes it out of that country and hour.
        work.add(*(SignatureInvalidated(petition_id=petition_id, signature_id=signature_id, moderation_id=moderation_id,
                                        correlation_id=correlation_id, country=country, counted_at=as_utc(counted_at))
                   for signature_id, country, counted_at in counted))
        changed = len(counted) + len(others)
        return await _record(session, petition_id, "invalidate", body, changed, changed, moderation_id)


async def release(write: UnitOfWork, petition_id: str, body: ActionIn, correlation_id: str | None, *,
                  confirm: bool) -> ActionOut:
    """Release the petition's held signatures that the filter selects (`dry_run`: only count them):
    each gets its confirmation email (with confirmation off, `confirm` False, it counts at once)."""
    s = db.signatures
    now = datetime.now(timezone.utc)
    async with write() as work:
        session = work.session
        where = body.filter.where(petition_id, (db.HELD,))
        if body.dry_run:
            matched = (await session.execute(select(func.count()).select_from(s).where(where))).scalar_one()
            return await _record(session, petition_id, "release", body, matched, 0)
        moderation_id = str(uuid4())
        values = ({"state": db.PENDING, "confirm_requests": s.c.confirm_requests + 1, "confirm_requested_at": now}
                  if confirm else {"state": db.CONFIRMED, "confirmed_at": now})
        released = (await session.execute(
            update(s).where(where).values(moderation_id=moderation_id, **values)
            .returning(s.c.id, s.c.country, s.c.updates, s.c.confirm_requests)
        )).all()
        work.add(*(
            ConfirmationRequested(petition_id=petition_id, signature_id=row.id, request=row.confirm_requests,
                                  correlation_id=correlation_id)
            if confirm else signature_added(row.id, petition_id, row.country, row.updates, correlation_id, counted_at=now)
            for row in released))
        return await _record(session, petition_id, "release", body, len(released), len(released), moderation_id)


async def actions(sessions, petition_id: str) -> list[ActionOut]:
    """Every moderation action on this petition, dry runs included, oldest first."""
    m = db.moderation_actions
    async with sessions() as session:
        found = (await session.execute(select(m).where(m.c.petition_id == petition_id)
                                       .order_by(m.c.created_at, m.c.id))).all()
    return [ActionOut(id=row.id, action=row.action, dry_run=row.dry_run, matched=row.matched,
                      changed=0 if row.dry_run else row.matched, filter=json.loads(row.filter),
                      created_at=row.created_at) for row in found]


async def signatures(sessions, petition_id: str, state: str, after: str, limit: int) -> SignaturesOut:
    """The petition's signatures in one state, for moderators, in id order, by pages."""
    s = db.signatures
    async with sessions() as session:
        found = (await session.execute(
            select(s.c.id, s.c.state, s.c.held_reason, s.c.email, s.c.country, s.c.client_key, s.c.created_at)
            .where(s.c.petition_id == petition_id, s.c.state == state, s.c.id > after)
            .order_by(s.c.id).limit(limit)
        )).all()
    page = [HeldSignature(id=row.id, state=row.state, held_reason=row.held_reason,
                          email_domain=row.email.rpartition("@")[2], country=row.country, client_key=row.client_key,
                          created_at=row.created_at) for row in found]
    return SignaturesOut(signatures=page, next=found[-1].id if len(found) == limit else None)
