"""Writing signatures, many at once, in the group commit's transaction.

New signatures: one multi-row INSERT per batch, deduplicated on the mailbox (a keyed hash of the
canonical email) by the table's unique key (ON CONFLICT DO NOTHING). Each new row is

- **confirmed** when confirmation is off: one SignatureAdded (it counts);
- **pending** when confirmation is on: one ConfirmationRequested (the notifier emails the link);
  SignatureAdded follows when the link is followed (`Confirmations`);
- **held** when its client is over the rate limit or its mailbox is a throwaway one
  (services/signing/abuse.py): no event at all, until a moderator releases it.

A repeat of a pending signature asks for its link again, at most once per `resend_after_s`; any
other repeat changes nothing. Every link emailed counts against the mailbox's email budget
(GROUNDSWELL_MAILBOX_EMAILS_PER_HOUR and _PER_DAY, shared with /start and sign-in links): over it, the signature is
stored pending as usual but no email goes (signing again later sends the link, within budget).
Every request is answered the same 202 whatever happened.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

from sqlalchemy import Connection, and_, select, tuple_, update

from services.signing.abuse import Hit, MailBudget, RateLimits
from services.signing.db import CONFIRMED, HELD, OPEN, PENDING, petitions, signatures
from services.signing.store import signing_store
from contract.events import ConfirmationRequested, Event, SignatureAdded
from shared.unit_of_work import Written

NEW, REPEAT, HELD_BACK = "new", "repeat", "held"


@dataclass(frozen=True)
class NewSignature:
    """One person's signature as a request hands it over: validated, with its mailbox key."""

    petition_id: str
    mailbox_key: str
    name: str
    email: str
    country: str | None
    postcode: str | None
    comment: str | None
    updates: bool
    correlation_id: str | None
    client_key: str | None = None  # abuse.client_key of the request's client
    held_reason: str | None = None  # decided before the batch (a throwaway domain)
    language: str | None = None  # shared/i18n.py LANGUAGES: their emails speak it


def signature_added(signature_id: UUID | str, petition_id: str, country: str | None, updates: bool,
                    correlation_id: str | None = None, *, counted_at: datetime) -> SignatureAdded:
    """`counted_at` is the row's confirmed_at, to the microsecond: the event's time, which the
    counter's hourly buckets use, and which a later SignatureInvalidated repeats."""
    return SignatureAdded(petition_id=petition_id, correlation_id=correlation_id, signature_id=signature_id,
                          country=country, updates=updates, occurred_at=counted_at)


class SignatureWriter:
    """Units: NewSignature. Result: "new", "repeat" or "held" (for metrics; the answer is the same)."""

    def __init__(self, database: Any, *, confirm: bool = False, limits: RateLimits | None = None,
                 resend_after_s: float = 300.0, mail_budget: MailBudget | None = None) -> None:
        self.store = signing_store(database)
        self.confirm = confirm
        self.limits = limits
        self.mail_budget = mail_budget
        self.resend_after = timedelta(seconds=resend_after_s)

    def write(self, conn: Connection, units: Sequence[NewSignature]) -> list[Written[str]]:
        now = datetime.now(timezone.utc)
        ids = [uuid4() for _ in units]
        over = (self.limits.over(conn, [Hit(u.client_key, u.petition_id) if u.client_key else None for u in units])
                if self.limits else [False] * len(units))
        held = [unit.held_reason or ("rate" if limited else None) for unit, limited in zip(units, over)]
        rows = [
            {
                "id": str(signature_id),
                "petition_id": unit.petition_id,
                "mailbox_key": unit.mailbox_key,
                "email": unit.email,
                "name": unit.name,
                "country": unit.country,
                "postcode": unit.postcode,
                "comment": unit.comment,
                "updates": unit.updates,
                "language": unit.language,
                "created_at": now,
                "unsubscribe_token": secrets.token_urlsafe(32),
                "state": HELD if reason else PENDING if self.confirm else CONFIRMED,
                "held_reason": reason,
                "client_key": unit.client_key,
                "confirm_token": secrets.token_urlsafe(24) if self.confirm or reason else None,
                "confirm_requests": 1 if self.confirm and not reason else 0,
                "confirm_requested_at": now if self.confirm and not reason else None,
                "confirmed_at": None if self.confirm or reason else now,
            }
            for unit, signature_id, reason in zip(units, ids, held)
        ]
        inserted = self.store.inserted(conn, signatures, rows, key="id", conflict=["petition_id", "mailbox_key"])
        resent = self._resend(conn, [u for u, i in zip(units, ids) if str(i) not in inserted], now) if self.confirm else {}
        written = []
        for unit, row in zip(units, rows):
            if row["id"] in inserted:
                written.append(Written(HELD_BACK if row["held_reason"] else NEW, self._events(unit, row)))
            else:
                again = resent.get((unit.petition_id, unit.mailbox_key))
                written.append(Written(REPEAT, (again,) if again else ()))
        return self._within_budget(conn, units, written)

    def _within_budget(self, conn: Connection, units: Sequence[NewSignature],
                       written: list[Written[str]]) -> list[Written[str]]:
        """Drop the confirmation emails that would take a mailbox over its budget (the rows stay)."""
        if self.mail_budget is None or not self.confirm:
            return written
        mails = [unit.mailbox_key if any(isinstance(e, ConfirmationRequested) for e in w.events) else None
                 for unit, w in zip(units, written)]
        over = self.mail_budget.over(conn, mails)
        return [Written(w.result, ()) if too_many else w for w, too_many in zip(written, over)]

    def _events(self, unit: NewSignature, row: dict) -> tuple[Event, ...]:
        if row["state"] == CONFIRMED:
            return (signature_added(row["id"], unit.petition_id, unit.country, unit.updates, unit.correlation_id,
                                    counted_at=row["confirmed_at"]),)
        if row["state"] == PENDING:
            return (ConfirmationRequested(petition_id=unit.petition_id, correlation_id=unit.correlation_id,
                                          signature_id=row["id"], request=1),)
        return ()

    def _resend(self, conn: Connection, repeats: list[NewSignature], now: datetime) -> dict[tuple[str, str], ConfirmationRequested]:
        """Repeats of pending signatures whose last link is older than resend_after: one more link each."""
        if not repeats:
            return {}
        s = signatures
        keys = {(u.petition_id, u.mailbox_key): u for u in repeats}
        due = and_(tuple_(s.c.petition_id, s.c.mailbox_key).in_(list(keys)), s.c.state == PENDING,
                   s.c.confirm_requested_at < now - self.resend_after)
        rows = self.store.resend(conn, s, due, now)
        return {
            (petition_id, key): ConfirmationRequested(petition_id=petition_id, signature_id=signature_id,
                                                      correlation_id=keys[(petition_id, key)].correlation_id,
                                                      request=requests)
            for signature_id, petition_id, key, requests in rows
        }


@dataclass(frozen=True)
class Confirmed:
    """What following a confirmation link found: the petition, and whether this follow confirmed it."""

    petition_id: str
    confirmed_now: bool
    too_late: bool = False  # still pending, and its petition closed meanwhile: it will never count


class ConfirmationWriter:
    """Units: confirmation tokens. Result: Confirmed, or None for a token no signature has (never
    issued, or its pending signature expired and was purged).

    Idempotent, as links are prefetched by mail scanners and followed twice by people: only a
    pending signature becomes confirmed (and publishes SignatureAdded); a confirmed, held or
    invalidated one is left as it is and answered the same. A pending signature whose petition
    has closed since (closed or won) is not confirmed: the count a petition closed with stays
    (read in this transaction; a close committing during it is seen by the next follow)."""

    def __init__(self, database: Any) -> None:
        self.store = signing_store(database)

    def write(self, conn: Connection, tokens: Sequence[str]) -> list[Written[Confirmed | None]]:
        s = signatures
        now = datetime.now(timezone.utc)
        found = {row.confirm_token: row for row in conn.execute(
            select(s.c.id, s.c.petition_id, s.c.state, s.c.country, s.c.updates, s.c.confirm_token,
                   (petitions.c.status == OPEN).label("open"))
            .join(petitions, petitions.c.id == s.c.petition_id)
            .where(s.c.confirm_token.in_(set(tokens)))
        )}
        pending = [row.id for row in found.values() if row.state == PENDING and row.open]
        confirmed: set[str] = set()
        if pending:
            statement = update(s).where(s.c.id.in_(pending), s.c.state == PENDING).values(
                state=CONFIRMED, confirmed_at=now)
            confirmed = self.store.confirm(conn, s, statement, pending)
        written, done = [], set()
        for token in tokens:
            row = found.get(token)
            if row is None:
                written.append(Written(None))
                continue
            now_confirmed = row.id in confirmed and row.id not in done
            done.add(row.id)  # the same link twice in one batch confirms once
            events = ((signature_added(row.id, row.petition_id, row.country, row.updates, counted_at=now),)
                      if now_confirmed else ())
            too_late = row.state == PENDING and not row.open
            written.append(Written(Confirmed(row.petition_id, now_confirmed, too_late), events))
        return written
