"""The counter's own tables: counts, processed events, milestones, outbox."""

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table

from shared.deadletters import dead_letters_table
from shared.outbox import outbox_table

metadata = MetaData()

petition_counts = Table(
    "petition_counts",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("slug", String(80), unique=True),
    Column("count", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per event applied: the tracking record that makes each event count once.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("petition_id", String(36), nullable=False, index=True),
    Column("type", String(40), nullable=False),
    Column("stream_seq", BigInteger, nullable=False, index=True),
)

milestones = Table(
    "milestones",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("milestone", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("reached_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
dead_letters = dead_letters_table(metadata)
