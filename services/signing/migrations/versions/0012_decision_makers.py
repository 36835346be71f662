"""decision makers: a petition's decision maker's address, the thresholds it reached, the
single-use links to respond, and the responses (issue 25)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('petitions') as batch:
        batch.add_column(sa.Column('decision_maker_email', sa.String(length=254), nullable=True))
    op.create_table(
        'petition_thresholds',
        sa.Column('petition_id', sa.String(length=36), sa.ForeignKey('petitions.id'), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=80), nullable=False),
        sa.Column('reached_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'threshold'),
    )
    op.create_table(
        'decision_maker_links',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('petition_id', sa.String(length=36), sa.ForeignKey('petitions.id'), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('petition_id', 'threshold', name='one_link_per_threshold'),
    )
    op.create_table(
        'petition_responses',
        sa.Column('petition_id', sa.String(length=36), sa.ForeignKey('petitions.id'), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('responder', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'threshold'),
    )


def downgrade() -> None:
    op.drop_table('petition_responses')
    op.drop_table('decision_maker_links')
    op.drop_table('petition_thresholds')
    with op.batch_alter_table('petitions') as batch:
        batch.drop_column('decision_maker_email')
