"""the notifier keeps no organizer contact: it reads it from signing when it writes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Dropping the columns removes every organizer name and address the notifier had stored.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.drop_column('organizer_email')
        batch_op.drop_column('organizer_name')


def downgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organizer_name', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('organizer_email', sa.String(length=254), nullable=False, server_default=''))
