"""The notifier's own tables: petitions it has seen, the delivery ledger, supporter fan-outs.
No one's contact is stored here (services/notifier/contacts.py)."""

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table

from shared.deadletters import dead_letters_table

metadata = MetaData()

petitions = Table(
    "petitions",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("slug", String(80), nullable=False),
)

# One row per (petition, milestone, recipient): claimed before sending, marked once accepted.
deliveries = Table(
    "deliveries",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("milestone", Integer, primary_key=True),
    Column("recipient", String(64), primary_key=True),
    Column("message_id", String(255), nullable=False),
    Column("claim_token", String(32)),
    Column("claimed_until_s", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(300)),
    Column("sent_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),  # permanently rejected (5xx): never retried
)

# One row per goal milestone whose supporters are emailed: where the fan-out is, and who holds it.
# Recipients are read from signing page by page; no address is stored here.
fanouts = Table(
    "fanouts",
    metadata,
    Column("petition_id", String(36), primary_key=True),
    Column("milestone", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("next_goal", Integer, nullable=False),
    Column("signed_before", DateTime(timezone=True), nullable=False),
    Column("correlation_id", String(128)),
    Column("cursor", String(36), nullable=False, default=""),  # last signature id fully handled
    Column("claim_token", String(32)),
    Column("claimed_until_s", Float),
    Column("done_at", DateTime(timezone=True)),
)

dead_letters = dead_letters_table(metadata)
