"""signatures deduplicated by a keyed hash of the mailbox, not the canonical email itself

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

The canonical email column becomes `mailbox_key` (services/signing/domain.py mailbox_key), which
stays after an erasure. Existing rows are converted with GROUNDSWELL_MAILBOX_KEY, which
shared/migrations.py hands over; rows erased before this revision keep their placeholder.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from services.signing.domain import mailbox_key

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHUNK = 5000


def upgrade() -> None:
    bind = op.get_bind()
    secret = op.get_context().config.attributes.get("mailbox_secret")
    signatures = sa.table("signatures", sa.column("id", sa.String), sa.column("canonical_email", sa.String))
    rows = bind.execute(sa.select(signatures.c.id, signatures.c.canonical_email)
                        .where(~signatures.c.canonical_email.startswith("erased:"))).all()
    if rows and secret is None:
        raise RuntimeError("migration 0003 needs GROUNDSWELL_MAILBOX_KEY to convert existing signatures")
    update = sa.update(signatures).where(signatures.c.id == sa.bindparam("row_id")).values(
        canonical_email=sa.bindparam("key"))
    for start in range(0, len(rows), CHUNK):
        bind.execute(update, [{"row_id": row.id, "key": mailbox_key(secret, row.canonical_email)}
                              for row in rows[start:start + CHUNK]])
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_constraint('one_signature_per_email', type_='unique')
        batch_op.alter_column('canonical_email', new_column_name='mailbox_key', existing_type=sa.String(length=254),
                              type_=sa.String(length=80), existing_nullable=False)
    with op.batch_alter_table('signatures', schema=None) as batch_op:  # after the rename (SQLite's copy)
        batch_op.create_unique_constraint('one_signature_per_mailbox', ['petition_id', 'mailbox_key'])


def downgrade() -> None:
    raise NotImplementedError("mailbox keys cannot be turned back into email addresses")
