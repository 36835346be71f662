"""organizers sign in by an emailed link to their petition's dashboard

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'organizer_links',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['petition_id'], ['petitions.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_organizer_links_petition_id'), 'organizer_links', ['petition_id'], unique=False)
    op.create_table(
        'organizer_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['petition_id'], ['petitions.id']),
        sa.PrimaryKeyConstraint('token_hash'),
    )


def downgrade() -> None:
    op.drop_table('organizer_sessions')
    op.drop_index(op.f('ix_organizer_links_petition_id'), table_name='organizer_links')
    op.drop_table('organizer_links')
