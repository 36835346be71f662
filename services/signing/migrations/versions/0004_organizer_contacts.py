"""organizers erasable like signers; no contact left in the outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Petitions get the organizer's mailbox key (erasure finds them by it) and an erased-at time.
PetitionCreated version 1 named the organizer: every such outbox row is rewritten as version 2,
which does not (contract/events.py), so no contact stays in the outbox, published or not.
"""
import json
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from services.signing.domain import mailbox_key
from contract.events import decode_event, encode_event

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organizer_mailbox_key', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('organizer_erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_petitions_organizer_mailbox_key', ['organizer_mailbox_key'], unique=False)
    bind = op.get_bind()
    secret = op.get_context().config.attributes.get("mailbox_secret")
    petitions = sa.table("petitions", sa.column("id", sa.String), sa.column("organizer_email", sa.String),
                         sa.column("organizer_mailbox_key", sa.String))
    rows = bind.execute(sa.select(petitions.c.id, petitions.c.organizer_email)).all()
    if rows and secret is None:
        raise RuntimeError("migration 0004 needs GROUNDSWELL_MAILBOX_KEY to key existing organizers")
    for row in rows:
        bind.execute(sa.update(petitions).where(petitions.c.id == row.id)
                     .values(organizer_mailbox_key=mailbox_key(secret, row.organizer_email)))
    outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("subject", sa.String),
                      sa.column("payload", sa.LargeBinary))
    for row in bind.execute(sa.select(outbox.c.id, outbox.c.payload)
                            .where(outbox.c.subject.like("%.events.PetitionCreated"))).all():
        if "organizer" in json.loads(row.payload):
            bind.execute(sa.update(outbox).where(outbox.c.id == row.id)
                         .values(payload=encode_event(decode_event(bytes(row.payload)))))


def downgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.drop_index('ix_petitions_organizer_mailbox_key')
        batch_op.drop_column('organizer_erased_at')
        batch_op.drop_column('organizer_mailbox_key')
