"""The counter's own tables: counts, processed events, milestones, signatures by country and by
hour, outbox."""

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table

from shared.deadletters import dead_letters_table
from shared.outbox import outbox_table

metadata = MetaData()

PUBLIC_STATUSES = ("open", "closed", "won")  # the others wait for the organizer's email or a moderator, or were rejected

petition_counts = Table(
    "petition_counts",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("slug", String(80), unique=True),
    Column("count", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # open, closed, won; unconfirmed, in_review, rejected (a petition started at /start, not public yet)
    Column("status", String(16), nullable=False, server_default="open"),
)

# One row per event applied: the tracking record that makes each event count once.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("petition_id", String(36), nullable=False, index=True),
    Column("type", String(40), nullable=False),
    Column("stream_seq", BigInteger, nullable=False, index=True),
    # Where and when a counted signature (SignatureAdded, SignatureInvalidated) counted, so a replay
    # rebuilds the country and hour tables below by adding these rows up: the country code, or ''
    # when none was given; the hour as hours since 1970-01-01 UTC. Both NULL for other events and
    # for a SignatureInvalidated of version 1, which did not say (it comes off the count only).
    Column("country", String(2)),
    Column("hour", Integer),
)

# The dashboard's and the public JSON's projections: signatures that count, by country and by hour.
petition_countries = Table(
    "petition_countries",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("country", String(2), primary_key=True),  # '' when the signer gave none
    Column("count", Integer, nullable=False),
)

petition_hours = Table(
    "petition_hours",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("hour", Integer, primary_key=True),  # hours since 1970-01-01 UTC
    Column("count", Integer, nullable=False),
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
