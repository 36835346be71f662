"""The signing service's own tables and the queries on them."""

from datetime import datetime, timezone
from uuid import UUID, uuid4

import secrets

from sqlalchemy import (
    Boolean, Column, DateTime, ForeignKey, Index, MetaData, String, Table, Text, UniqueConstraint, select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import insert
from shared.outbox import outbox_table

metadata = MetaData()

petitions = Table(
    "petitions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("slug", String(80), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("target", String(200), nullable=False),
    Column("story", Text, nullable=False),
    Column("organizer_name", String(100), nullable=False),
    Column("organizer_email", String(254), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False),
    Column("canonical_email", String(254), nullable=False),
    Column("email", String(254), nullable=False),
    Column("name", String(100), nullable=False),
    Column("country", String(2)),
    Column("postcode", String(16)),
    Column("comment", String(500)),
    Column("updates", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The secret in this signer's unsubscribe link; unsubscribed or erased signers get no email.
    Column("unsubscribe_token", String(64), unique=True),
    Column("unsubscribed_at", DateTime(timezone=True)),
    Column("erased_at", DateTime(timezone=True)),
    UniqueConstraint("petition_id", "canonical_email", name="one_signature_per_email"),
    Index("signatures_by_petition", "petition_id", "id"),
)

outbox = outbox_table(metadata)


async def find_petition(session: AsyncSession, ref: str):
    """A petition by id or slug, or None."""
    if (petition_id := _as_uuid(ref)) is not None:
        condition = petitions.c.id == str(petition_id)
    else:
        condition = petitions.c.slug == ref.lower()
    return (await session.execute(select(petitions).where(condition))).first()


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return (await session.execute(select(petitions.c.id).where(petitions.c.slug == slug))).first() is not None


async def insert_signature(session: AsyncSession, petition_id: str, canonical: str, fields: dict) -> UUID | None:
    """Insert a first signature; None when this canonical email already signed."""
    signature_id = uuid4()
    statement = (
        insert(session.bind.dialect.name, signatures)
        .values(
            id=str(signature_id),
            petition_id=petition_id,
            canonical_email=canonical,
            created_at=datetime.now(timezone.utc),
            unsubscribe_token=secrets.token_urlsafe(32),
            **fields,
        )
        .on_conflict_do_nothing(index_elements=["petition_id", "canonical_email"])
        .returning(signatures.c.id)
    )
    inserted = (await session.execute(statement)).first()
    return signature_id if inserted else None


def _as_uuid(ref: str) -> UUID | None:
    try:
        return UUID(ref)
    except ValueError:
        return None
