"""Signing use cases: each writes its rows and its events in one transaction."""

import secrets
from datetime import datetime, timezone
from uuid import uuid4

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.signing import db
from services.signing.domain import derive_slug, mailbox_key
from services.signing.petitions import PetitionCache
from services.signing.schemas import PetitionIn, SignatureIn
from services.signing.signatures import NewSignature, SignatureWriter
from shared.events import PetitionCreated
from shared.groupcommit import GroupCommitter
from shared.metrics import SIGNATURES
from shared.outbox import OutboxRelay, outbox_row


class SlugTaken(Exception):
    """Another petition already uses this slug."""


class PetitionNotFound(Exception):
    """No petition has this id or slug."""


class Signing:
    """The signing use cases, bound to this service's database, group committer and outbox relay."""

    def __init__(self, sessions: async_sessionmaker, committer: GroupCommitter, petitions: PetitionCache,
                 relay: OutboxRelay, mailbox_secret: bytes) -> None:
        self.sessions = sessions
        self.mailbox_secret = mailbox_secret
        self.committer = committer
        self.petitions = petitions
        self.relay = relay
        self.signature_writer = SignatureWriter(committer.engine.dialect.name)

    async def create_petition(self, data: PetitionIn, correlation_id: str | None = None):
        async with self.sessions() as session:
            slug = data.slug or await _free_slug(session, derive_slug(data.title))
            if await db.slug_taken(session, slug):
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
            }
            event = PetitionCreated(
                petition_id=row["id"],
                correlation_id=correlation_id,
                title=data.title,
                slug=slug,
                target=data.target,
            )
            outbox = outbox_row(event)
            await session.execute(db.petitions.insert().values(**row))
            await session.execute(db.outbox.insert().values(**outbox))
            try:
                await session.commit()
            except IntegrityError:
                raise SlugTaken(slug) from None
        self.relay.publish_soon([outbox])
        return await self.get_petition(row["id"])

    async def get_petition(self, ref: str):
        petition = await self.petitions.get(ref)
        if petition is None:
            raise PetitionNotFound(ref)
        return petition

    async def sign(self, ref: str, data: SignatureIn, correlation_id: str | None = None) -> bool:
        """Record a signature; False when this person had already signed (nothing changes).
        Returns once the signature is committed, in a batch with whoever signed meanwhile."""
        petition = await self.get_petition(ref)
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
        )
        new = await self.committer.submit(self.signature_writer, signature)
        SIGNATURES.labels("new" if new else "repeat").inc()
        return new


async def _free_slug(session, base: str) -> str:
    """The derived slug, or with a short random suffix when another petition has it."""
    slug = base
    while await db.slug_taken(session, slug):
        slug = f"{base[: db.petitions.c.slug.type.length - 7]}-{secrets.token_hex(3)}"
    return slug
