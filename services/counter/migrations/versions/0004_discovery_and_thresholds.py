"""the discovery list (petition_listing, petition_search), thresholds reached, decision makers'
responses

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

`petition_search` is made per database and stays out of the metadata: an FTS5 table on SQLite, a
tsvector with a GIN index on PostgreSQL (services/counter/store.py reads and writes it). The list
fills as petition events pass; `groundswell counter rebuild` fills it for petitions created before.
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
        'thresholds',
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=80), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('reached_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'threshold'),
    )
    op.create_table(
        'petition_listing',
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('excerpt', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('translations', sa.Text(), server_default='{}', nullable=False),
        sa.PrimaryKeyConstraint('petition_id'),
    )
    op.create_index('ix_petition_listing_created_at', 'petition_listing', ['created_at'])
    op.create_index('ix_petition_hours_hour', 'petition_hours', ['hour'])  # trending: the last 24 hours of every petition
    op.create_table(
        'petition_responses',
        sa.Column('petition_id', sa.String(length=36), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('responder', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('petition_id', 'threshold'),
    )
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("CREATE VIRTUAL TABLE petition_search USING fts5("
                   "petition_id UNINDEXED, body, tokenize='unicode61 remove_diacritics 2')")
    else:
        op.execute("CREATE TABLE petition_search (petition_id varchar(36) PRIMARY KEY, body tsvector NOT NULL)")
        op.execute("CREATE INDEX petition_search_body ON petition_search USING gin (body)")


def downgrade() -> None:
    op.execute("DROP TABLE petition_search")
    op.drop_table('petition_responses')
    op.drop_index('ix_petition_listing_created_at', 'petition_listing')
    op.drop_index('ix_petition_hours_hour', 'petition_hours')
    op.drop_table('petition_listing')
    op.drop_table('thresholds')
