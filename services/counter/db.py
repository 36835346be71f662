"""The counter's own tables: counts, processed events, milestones, signatures by country and by
hour, outbox."""

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text

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
    Column("hour", Integer, primary_key=True, index=True),  # hours since 1970-01-01 UTC (indexed: trending)
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

# Each threshold (GROUNDSWELL_THRESHOLDS) a petition reached, once: like a milestone, never again
# after a dip, so its decision maker is written to once.
thresholds = Table(
    "thresholds",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("label", String(80), nullable=False),
    Column("count", Integer, nullable=False),
    Column("reached_at", DateTime(timezone=True), nullable=False),
)

# The discovery list's projection (services/counter/listing.py): what a petition says, read from
# signing when one of its PetitionCreated or PetitionUpdated events passes. Its count, status and
# hours are the tables above; full-text search is the table `petition_search`, made by migration
# 0004 per database (SQLite FTS5, PostgreSQL tsvector), outside this metadata.
petition_listing = Table(
    "petition_listing",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("language", String(8), nullable=False),
    Column("excerpt", String(300), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("translations", Text, nullable=False, server_default="{}"),  # JSON: language -> title
)

# The decision makers' responses, as the petition's JSON carries them (read from signing on ResponsePublished).
petition_responses = Table(
    "petition_responses",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("responder", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
dead_letters = dead_letters_table(metadata)
