"""The signing service's own tables and the queries on them."""

from sqlalchemy import (
    Boolean, Column, DateTime, ForeignKey, Index, MetaData, String, Table, Text, UniqueConstraint, select,
)
from sqlalchemy.ext.asyncio import AsyncSession

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
    # Erasure finds an organizer by this keyed hash (domain.mailbox_key) and blanks name and email.
    Column("organizer_mailbox_key", String(80), index=True),
    Column("organizer_erased_at", DateTime(timezone=True)),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False),
    Column("mailbox_key", String(80), nullable=False),  # domain.mailbox_key: a keyed hash, never the address
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
    UniqueConstraint("petition_id", "mailbox_key", name="one_signature_per_mailbox"),
    Index("signatures_by_petition", "petition_id", "id"),
)

outbox = outbox_table(metadata)


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return (await session.execute(select(petitions.c.id).where(petitions.c.slug == slug))).first() is not None
