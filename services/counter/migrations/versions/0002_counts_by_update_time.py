"""counts by update time: the count publisher looks for the counts changed lately

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""
from typing import Sequence, Union

from alembic import op

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('petition_counts_by_update', 'petition_counts', ['updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('petition_counts_by_update', table_name='petition_counts')
