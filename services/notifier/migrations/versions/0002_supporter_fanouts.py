"""supporter fan-outs and permanent delivery failures

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
    op.create_table(
        'fanouts',
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('milestone', sa.Integer(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('next_goal', sa.Integer(), nullable=False),
        sa.Column('signed_before', sa.DateTime(timezone=True), nullable=False),
        sa.Column('correlation_id', sa.String(length=128), nullable=True),
        sa.Column('cursor', sa.String(length=36), nullable=False),
        sa.Column('claim_token', sa.String(length=32), nullable=True),
        sa.Column('claimed_until_s', sa.Float(), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('petition_id', 'milestone'),
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('failed_at')
    op.drop_table('fanouts')
