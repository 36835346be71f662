"""Signing use cases: each writes its rows and its events in one transaction."""

import secrets
import time
from datetime import datetime, timezone
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from contract.events import (OrganizerConfirmed, PetitionApproved, PetitionClosed, PetitionCreated, PetitionRejected,
                             PetitionUpdated, UpdatePosted)
from services.signing import db
from services.signing.decisions import thresholds_and_responses
from services.signing.abuse import UNIX, ClientAddresses, Hit, MailBudget, RateLimits, client_key, is_disposable
from services.signing.domain import derive_slug, mailbox_key
from services.signing.schemas import PetitionIn, SignatureIn
from services.signing.settings import SigningSettings
from services.signing.signatures import ConfirmationWriter, Confirmed, NewSignature, SignatureWriter
from shared.i18n import DEFAULT as DEFAULT_LANGUAGE
from shared.metrics import CONFIRMED, SIGNATURES
from shared.refs import is_token, petition_ref
from shared.unit_of_work import UnitOfWork

class PetitionCache:
    """Petitions by id or slug, from memory: signing reads a petition on every signature and view.

    An entry is dropped when one of the petition's own lifecycle events passes on NATS (any signing
    replica may have changed it), and after `ttl_s` in any case, which bounds staleness if an event
    went by while this process was disconnected. Misses are read from the database and not cached."""

    def __init__(self, engine: AsyncEngine, ttl_s: float = 60.0, clock=time.monotonic) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_ref: dict[str, tuple[float, object]] = {}  # id or slug, as asked -> (read at, row)
        self._refs: dict[str, set[str]] = {}  # petition id -> the refs it was asked by

    async def get(self, ref: str):
        """The petition row with this id or slug, or None."""
        cached = self._by_ref.get(ref)
        if cached is not None and self.clock() - cached[0] < self.ttl_s:
            return cached[1]
        petition = await self._read(ref)
        if petition is not None:
            self._by_ref[ref] = (self.clock(), petition)
            self._refs.setdefault(petition.id, set()).add(ref)
        return petition

    async def fresh(self, ref: str):
        """The petition as the database has it now (for another service, which must not read a cached one)."""
        return await self._read(ref)

    def forget(self, petition_id: str) -> None:
        """Its next read comes from the database."""
        for ref in self._refs.pop(str(petition_id), ()):
            self._by_ref.pop(ref, None)

    async def _read(self, ref: str):
        if (parsed := petition_ref(ref)) is None:
            return None
        kind, value = parsed
        condition = (db.petitions.c.id if kind == "id" else db.petitions.c.slug) == value
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(db.petitions).where(condition))).first()
            if row is None:
                return None
            t = db.petition_translations
            translations = (await conn.execute(
                select(t.c.language, t.c.title, t.c.story).where(t.c.petition_id == row.id))).all()
            reached, responses = await thresholds_and_responses(conn, row.id)
        return Petition(row, {tr.language: tr for tr in translations}, reached, responses)


class Petition:
    """A petition's row, its translations by language (title, story), and by threshold the thresholds
    it reached (label, reached_at) and its decision makers' responses (responder, body, published_at)."""

    __slots__ = ("_row", "translations", "reached", "responses")

    def __init__(self, row, translations: dict | None = None, reached: dict | None = None,
                 responses: dict | None = None) -> None:
        self._row = row
        self.translations = translations or {}
        self.reached = reached or {}
        self.responses = responses or {}

    def __getattr__(self, name: str):
        return getattr(self._row, name)

    @property
    def shown_language(self) -> str:
        return self._row.language

    def in_language(self, language: str) -> "Petition":
        """The petition as a reader of `language` sees it: its translation's title and story, if it has one."""
        translation = self.translations.get(language)
        return self if translation is None or language == self._row.language else Translated(self, translation)


class Translated(Petition):
    __slots__ = ("_translation",)

    def __init__(self, petition: Petition, translation) -> None:
        super().__init__(petition._row, petition.translations, petition.reached, petition.responses)
        self._translation = translation

    @property
    def title(self) -> str:
        return self._translation.title

    @property
    def story(self) -> str:
        return self._translation.story

    @property
    def shown_language(self) -> str:
        return self._translation.language


class SlugTaken(Exception):
    """Another petition already uses this slug."""


class PetitionNotFound(Exception):
    """No petition has this id or slug."""


class PetitionNotOpen(Exception):
    """The petition takes no more signatures: its status (closed or won) says why."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status

    @property
    def message(self) -> str:
        if self.status == db.WON:
            return "This petition has won: it takes no more signatures."
        return "This petition is closed: it takes no more signatures."


class StatusConflict(Exception):
    """The petition cannot move to that status from the one it has (a won petition stays won)."""


class TooManyStarts(Exception):
    """GROUNDSWELL_START_RATE_LIMIT: this client, or this organizer address, started too many
    petitions lately (each sends a confirmation email to the address given)."""


class Signing:
    """The signing use cases, bound to this service's database, group committer and outbox relay."""

    def __init__(self, write: UnitOfWork, petitions: PetitionCache, settings: SigningSettings) -> None:
        self.write = write  # every change goes through it (shared/unit_of_work.py)
        self.sessions = write.sessions  # reads
        self.mailbox_secret = settings.mailbox_secret()
        self.petitions = petitions
        self.hold_disposable = settings.hold_disposable
        self.clients = ClientAddresses(settings.trusted_proxies)
        database = write.committer.engine  # picks the store adapter (services/signing/store.py)
        self.mail_budget = MailBudget(settings.mailbox_emails_per_hour, settings.mailbox_emails_per_day,
                                      db.mail_budget, database)
        self.signature_writer = SignatureWriter(
            database, confirm=settings.confirm_signatures, resend_after_s=settings.confirmation_resend_s,
            limits=RateLimits(settings.sign_rate_limit, db.rate_windows, database), mail_budget=self.mail_budget,
        )
        self.confirmation_writer = ConfirmationWriter(database)
        self.start_limits = RateLimits(settings.start_rate_limit, db.rate_windows, database)

    async def create_petition(self, data: PetitionIn, correlation_id: str | None = None, *, started: bool = False,
                              client: str | None = None):
        """A new petition: public at once (the admin API), or, `started` at /start by its organizer
        (from `client`), unconfirmed until they follow the emailed link (then live, or reviewed by a
        moderator). TooManyStarts over GROUNDSWELL_START_RATE_LIMIT."""
        if started:
            await self._count_start(client, mailbox_key(self.mailbox_secret, data.organizer.email))
        slug = data.slug
        try:
            async with self.write() as work:
                slug = slug or await _free_slug(work.session, derive_slug(data.title))
                if await db.slug_taken(work.session, slug):
                    raise SlugTaken(slug)
                row = {
                    "id": str(uuid4()),
                    "slug": slug,
                    "title": data.title,
                    "target": data.target,
                    "story": data.story,
                    "organizer_name": data.organizer.name,
                    "organizer_email": data.organizer.email,
                    "organizer_mailbox_key": mailbox_key(self.mailbox_secret, data.organizer.email),
                    "created_at": datetime.now(timezone.utc),
                    "status": db.UNCONFIRMED if started else db.OPEN,
                    "language": data.language or DEFAULT_LANGUAGE,
                    "decision_maker_email": data.decision_maker_email,
                }
                await work.session.execute(db.petitions.insert().values(**row))
                work.add(PetitionCreated(petition_id=row["id"], correlation_id=correlation_id, title=data.title,
                                         slug=slug, target=data.target, status=row["status"]))
        except IntegrityError:
            raise SlugTaken(slug) from None
        return await self.get_petition(row["id"], public=False)

    async def _count_start(self, client: str | None, organizer_key: str) -> None:
        """Count a start against the limits, per client address and per organizer address, and its
        confirmation email against the organizer mailbox's email budget (so no one can have
        Groundswell email an address over and over), in the database every replica shares."""
        hits = [Hit(client_key(self.mailbox_secret, client or UNIX), "start"), Hit(f"to-{organizer_key}", "start")]

        def count(sync) -> bool:
            over = self.start_limits.over(sync.connection(), hits)
            return any(over) or self.mail_budget.over(sync.connection(), [organizer_key])[0]

        async with self.write() as work:  # counted even when refused: a refused burst stays refused
            refused = await work.session.run_sync(count)
        if refused:
            raise TooManyStarts()

    async def update_petition(self, ref: str, story: str, correlation_id: str | None = None):
        """Change the story (a PetitionUpdated names the field, not the text); unchanged text
        changes nothing and publishes nothing."""
        petition = await self.get_petition(ref, public=False)
        if story == petition.story:
            return petition
        event = PetitionUpdated(petition_id=petition.id, correlation_id=correlation_id, fields=["story"])
        return await self._change(petition.id, {"story": story, "updated_at": datetime.now(timezone.utc)}, event)

    async def translate_petition(self, ref: str, language: str, title: str, story: str,
                                 correlation_id: str | None = None):
        """Add or replace the petition's title and story in another language (a PetitionUpdated names
        the translation's language, not its text); the same text again changes nothing."""
        petition = await self.get_petition(ref, public=False)
        if language == petition.language:
            raise StatusConflict("The petition is written in this language: edit its story instead.")
        current = petition.translations.get(language)
        if current is not None and (current.title, current.story) == (title, story):
            return petition
        t = db.petition_translations
        async with self.write() as work:
            values = {"title": title, "story": story, "updated_at": datetime.now(timezone.utc)}
            changed = await work.session.execute(
                t.update().where(t.c.petition_id == petition.id, t.c.language == language).values(**values))
            if changed.rowcount == 0:
                await work.session.execute(t.insert().values(petition_id=petition.id, language=language, **values))
            work.add(PetitionUpdated(petition_id=petition.id, correlation_id=correlation_id, fields=["translation"],
                                     language=language))
        self.petitions.forget(petition.id)
        return await self.get_petition(petition.id, public=False)

    async def set_milestone_emails(self, ref: str, wanted: bool) -> None:
        """The organizer's choice: milestone emails or none (read by the notifier when one is due)."""
        petition = await self.get_petition(ref, public=False)
        async with self.write() as work:
            await work.session.execute(db.petitions.update().where(db.petitions.c.id == petition.id)
                                       .values(milestone_emails=wanted))
        self.petitions.forget(petition.id)

    async def close_petition(self, ref: str, outcome: str, correlation_id: str | None = None):
        """Close the petition, or declare it won: it takes no more signatures (a PetitionClosed).
        Idempotent; a closed petition can still be declared won, a won one stays won."""
        petition = await self.get_petition(ref, public=False)
        if petition.status == outcome:
            return petition
        if petition.status == db.WON:
            raise StatusConflict("This petition has won; it stays won.")
        event = PetitionClosed(petition_id=petition.id, correlation_id=correlation_id, outcome=outcome)
        changed = await self._change(petition.id, {"status": outcome, "closed_at": datetime.now(timezone.utc)}, event,
                                     only_if=db.petitions.c.status.in_([db.OPEN, db.CLOSED]))
        if changed is None:  # another request won it meanwhile
            raise StatusConflict("This petition has won; it stays won.")
        return changed

    async def post_update(self, petition_id: str, subject: str, body: str, correlation_id: str | None = None) -> int:
        """Store an update for the supporters who opted in and queue its UpdatePosted (the
        notifier emails each of them once); returns its number."""
        updates = db.petition_updates
        for _ in range(3):  # two posts at once take the same number: the loser takes the next
            async with self.write() as work:
                number = 1 + ((await work.session.execute(
                    select(func.max(updates.c.number)).where(updates.c.petition_id == petition_id))).scalar() or 0)
                try:
                    async with work.session.begin_nested():
                        await work.session.execute(updates.insert().values(
                            petition_id=petition_id, number=number, subject=subject, body=body,
                            posted_at=datetime.now(timezone.utc)))
                except IntegrityError:
                    continue
                work.add(UpdatePosted(petition_id=petition_id, number=number, correlation_id=correlation_id))
            return number
        raise RuntimeError("could not number the update")

    async def _change(self, petition_id: str, values: dict, event, only_if=None):
        """Update the petition and queue its event in one transaction; None if `only_if` failed."""
        async with self.write() as work:
            statement = db.petitions.update().where(db.petitions.c.id == petition_id).values(**values)
            if only_if is not None:
                statement = statement.where(only_if)
            if (await work.session.execute(statement.returning(db.petitions.c.id))).first() is None:
                return None
            work.add(event)
        self.petitions.forget(petition_id)  # this replica at once; the others on the event
        return await self.get_petition(petition_id, public=False)

    async def get_petition(self, ref: str, *, public: bool = True):
        """The petition with this id or slug; one not public yet (unconfirmed, in review, rejected)
        only when `public` is False (its organizer's dashboard, moderators)."""
        petition = await self.petitions.get(ref)
        if petition is None or (public and petition.status not in db.PUBLIC):
            raise PetitionNotFound(ref)
        return petition

    async def confirm_organizer(self, petition_id: str, moderate: bool, correlation_id: str | None = None) -> None:
        """The organizer of a petition started at /start followed their link: it goes live, or to
        the moderators (nothing changes for a petition already past this)."""
        status = db.IN_REVIEW if moderate else db.OPEN
        event = OrganizerConfirmed(petition_id=petition_id, correlation_id=correlation_id, live=status == db.OPEN)
        await self._change(petition_id, {"status": status}, event, only_if=db.petitions.c.status == db.UNCONFIRMED)

    async def review(self, ref: str, approve: bool, note: str | None, correlation_id: str | None = None):
        """A moderator's decision on a petition in review: live, or rejected (with a note for the
        organizer). StatusConflict unless it is in review."""
        petition = await self.get_petition(ref, public=False)
        event = (PetitionApproved if approve else PetitionRejected)(petition_id=petition.id, correlation_id=correlation_id)
        values = {"status": db.OPEN if approve else db.REJECTED, "review_note": note,
                  "reviewed_at": datetime.now(timezone.utc)}
        changed = await self._change(petition.id, values, event, only_if=db.petitions.c.status == db.IN_REVIEW)
        if changed is None:
            raise StatusConflict(f"This petition is {petition.status.replace('_', ' ')}, not waiting for review.")
        return changed

    async def in_review(self) -> list:
        async with self.sessions() as session:
            return (await session.execute(
                select(db.petitions).where(db.petitions.c.status == db.IN_REVIEW).order_by(db.petitions.c.created_at)
            )).all()

    async def sign(self, ref: str, data: SignatureIn, correlation_id: str | None = None,
                   client: str | None = None) -> str:
        """Record a signature: "new", "repeat" (nothing changes, or its link is sent again) or
        "held" (services/signing/abuse.py); the caller answers all three the same. `client` is the
        request's client address (abuse.ClientAddresses), kept only as a keyed hash. Returns once
        the signature is committed, in a batch with whoever signed meanwhile."""
        petition = await self.get_petition(ref)
        if petition.status != db.OPEN:
            raise PetitionNotOpen(petition.status)
        signature = NewSignature(
            petition_id=petition.id,
            mailbox_key=mailbox_key(self.mailbox_secret, data.email),
            name=data.name,
            email=data.email,
            country=data.country,
            postcode=data.postcode,
            comment=data.comment,
            updates=data.updates,
            correlation_id=correlation_id,
            client_key=client_key(self.mailbox_secret, client) if client else None,
            held_reason="disposable" if self.hold_disposable and is_disposable(data.email) else None,
            language=data.language,
        )
        outcome = await self.write.grouped(self.signature_writer, signature)
        SIGNATURES.labels(outcome).inc()
        return outcome

    async def confirm(self, token: str) -> Confirmed | None:
        """Follow a confirmation link: the signature counts from now (once, however often the link
        is followed). None for a link no signature has (never issued, or expired and purged)."""
        if not is_token(token):
            return None
        confirmed = await self.write.grouped(self.confirmation_writer, token)
        if confirmed is not None and confirmed.confirmed_now:
            CONFIRMED.inc()
        return confirmed


async def _free_slug(session, base: str) -> str:
    """The derived slug, or with a short random suffix when another petition has it."""
    slug = base
    while await db.slug_taken(session, slug):
        slug = f"{base[: db.petitions.c.slug.type.length - 7]}-{secrets.token_hex(3)}"
    return slug
