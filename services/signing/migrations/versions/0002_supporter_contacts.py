"""supporter contacts: unsubscribe tokens, unsubscribe and erasure times

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsubscribe_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint('signatures_unsubscribe_token_key', ['unsubscribe_token'])
        batch_op.create_index('signatures_by_petition', ['petition_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index('signatures_by_petition')
        batch_op.drop_constraint('signatures_unsubscribe_token_key', type_='unique')
        batch_op.drop_column('erased_at')
        batch_op.drop_column('unsubscribed_at')
        batch_op.drop_column('unsubscribe_token')
