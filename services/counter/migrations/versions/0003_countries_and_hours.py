"""signatures by country and by hour: where and when each counted event counted, and the two
projections; each petition's status (open, closed, won)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Rows tracked before this revision have no country or hour: `groundswell counter rebuild` fills
them (and both tables) from the stream.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('processed_events', sa.Column('country', sa.String(length=2), nullable=True))
    op.add_column('processed_events', sa.Column('hour', sa.Integer(), nullable=True))
    op.add_column('petition_counts', sa.Column('status', sa.String(length=16), server_default='open', nullable=False))
    op.create_table(
        'petition_countries',
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'country'),
    )
    op.create_table(
        'petition_hours',
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('hour', sa.Integer(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'hour'),
    )


def downgrade() -> None:
    op.drop_table('petition_hours')
    op.drop_table('petition_countries')
    with op.batch_alter_table('petition_counts') as batch:
        batch.drop_column('status')
    with op.batch_alter_table('processed_events') as batch:
        batch.drop_column('hour')
        batch.drop_column('country')
