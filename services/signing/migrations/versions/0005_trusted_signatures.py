"""signatures confirmed by email, held when abuse is suspected, invalidated by moderators

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Every signature gets a state (pending, held, confirmed, invalidated); the ones stored before this
revision counted, so they are confirmed. Rate-limit windows and the moderation record are new
tables.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=12), server_default='confirmed', nullable=False))
        batch_op.add_column(sa.Column('confirm_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('confirm_requests', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('confirm_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('held_reason', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('client_key', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('invalidated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('moderation_id', sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint('signatures_confirm_token_key', ['confirm_token'])
        batch_op.create_index('signatures_by_state', ['state', 'created_at'], unique=False)
    op.create_table(
        'rate_windows',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_rate_windows_expires_at', 'rate_windows', ['expires_at'], unique=False)
    op.create_table(
        'moderation_actions',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('filter', sa.Text(), nullable=False),
        sa.Column('dry_run', sa.Boolean(), nullable=False),
        sa.Column('matched', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['petition_id'], ['petitions.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_moderation_actions_petition_id', 'moderation_actions', ['petition_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_moderation_actions_petition_id', table_name='moderation_actions')
    op.drop_table('moderation_actions')
    op.drop_index('ix_rate_windows_expires_at', table_name='rate_windows')
    op.drop_table('rate_windows')
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index('signatures_by_state')
        batch_op.drop_constraint('signatures_confirm_token_key', type_='unique')
        for column in ('moderation_id', 'invalidated_at', 'client_key', 'held_reason', 'confirmed_at',
                       'confirm_requested_at', 'confirm_requests', 'confirm_token', 'state'):
            batch_op.drop_column(column)
