"""one email budget per mailbox: its current hour's and day's emails (issue 21)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'mail_budget',
        sa.Column('key', sa.String(length=16), nullable=False),
        sa.Column('hour', sa.Integer(), nullable=False),
        sa.Column('hour_hits', sa.Integer(), nullable=False),
        sa.Column('day', sa.Integer(), nullable=False),
        sa.Column('day_hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table('mail_budget')
