"""languages: a petition's own language and its organizer's milestone-email choice; each signer's language (issue 24)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('petitions') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), server_default='en', nullable=False))
        batch.add_column(sa.Column('milestone_emails', sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table('signatures') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    op.create_table(
        'petition_translations',
        sa.Column('petition_id', sa.String(length=36), sa.ForeignKey('petitions.id'), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('story', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'language'),
    )


def downgrade() -> None:
    op.drop_table('petition_translations')
    with op.batch_alter_table('signatures') as batch:
        batch.drop_column('language')
    with op.batch_alter_table('petitions') as batch:
        batch.drop_column('milestone_emails')
        batch.drop_column('language')
