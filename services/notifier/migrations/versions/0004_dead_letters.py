"""dead letters: events set aside because a retry cannot cure their failure

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'dead_letters',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('durable', sa.String(length=64), nullable=False),
        sa.Column('stream_seq', sa.BigInteger(), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('error', sa.String(length=500), nullable=False),
        sa.Column('deliveries', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retried_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('stream_seq'),
    )


def downgrade() -> None:
    op.drop_table('dead_letters')
