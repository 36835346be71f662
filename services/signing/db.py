"""The signing service's own tables and the queries on them."""

from sqlalchemy import (
    Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint, select,
)
from sqlalchemy import true as sa_true
from sqlalchemy.ext.asyncio import AsyncSession

from services.signing.abuse import mail_budget_table, rate_windows_table
from shared.outbox import outbox_table

metadata = MetaData()

# A petition's status. Public: open (takes signatures), closed, won. Not public: unconfirmed (started
# at /start, its organizer has not followed the emailed link yet), in_review (waiting for a
# moderator: GROUNDSWELL_MODERATE_PETITIONS), rejected.
OPEN, CLOSED, WON = "open", "closed", "won"
UNCONFIRMED, IN_REVIEW, REJECTED = "unconfirmed", "in_review", "rejected"
PUBLIC = (OPEN, CLOSED, WON)

petitions = Table(
    "petitions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("slug", String(80), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("target", String(200), nullable=False),
    Column("story", Text, nullable=False),
    Column("organizer_name", String(100), nullable=False),
    Column("organizer_email", String(254), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Erasure finds an organizer by this keyed hash (domain.mailbox_key) and blanks name and email.
    Column("organizer_mailbox_key", String(80), index=True),
    Column("organizer_erased_at", DateTime(timezone=True)),
    # open: takes signatures; closed or won (the organizer declared victory): takes none.
    Column("status", String(16), nullable=False, server_default=OPEN),
    Column("closed_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),  # the story's last change
    Column("review_note", Text),  # a moderator's reason, told to the organizer
    Column("reviewed_at", DateTime(timezone=True)),
    # The language the organizer wrote in (shared/i18n.py LANGUAGES): the page's language for a reader
    # who asks for none Groundswell has, and the language of every email to the organizer.
    Column("language", String(8), nullable=False, server_default="en"),
    Column("milestone_emails", Boolean, nullable=False, server_default=sa_true()),  # the organizer's choice
    # Who the petition goes to at each threshold (GROUNDSWELL_THRESHOLDS): never public, never in an event.
    Column("decision_maker_email", String(254)),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False),
    Column("mailbox_key", String(80), nullable=False),  # domain.mailbox_key: a keyed hash, never the address
    Column("email", String(254), nullable=False),
    Column("name", String(100), nullable=False),
    Column("country", String(2)),
    Column("postcode", String(16)),
    Column("comment", String(500)),
    Column("updates", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The secret in this signer's unsubscribe link; unsubscribed or erased signers get no email.
    Column("unsubscribe_token", String(64), unique=True),
    Column("unsubscribed_at", DateTime(timezone=True)),
    Column("erased_at", DateTime(timezone=True)),
    # pending (waiting for its emailed link), held (abuse suspected: services/signing/abuse.py),
    # confirmed (counts), invalidated (by a moderator). Only confirmed signatures are in the count.
    Column("state", String(12), nullable=False, server_default="confirmed"),
    Column("confirm_token", String(64), unique=True),  # the secret in the confirmation link
    Column("confirm_requests", Integer, nullable=False, server_default="0"),  # links asked for
    Column("confirm_requested_at", DateTime(timezone=True)),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("held_reason", String(16)),  # rate, disposable
    Column("client_key", String(40)),  # abuse.client_key; blanked after the retention period
    Column("invalidated_at", DateTime(timezone=True)),
    Column("moderation_id", String(36)),  # the moderation action that last changed its state
    Column("language", String(8)),  # the page's language when they signed: their emails speak it
    UniqueConstraint("petition_id", "mailbox_key", name="one_signature_per_mailbox"),
    Index("signatures_by_petition", "petition_id", "id"),
    Index("signatures_by_state", "state", "created_at"),
)

PENDING, HELD, CONFIRMED, INVALIDATED = "pending", "held", "confirmed", "invalidated"
STATES = (PENDING, HELD, CONFIRMED, INVALIDATED)

rate_windows = rate_windows_table(metadata)
mail_budget = mail_budget_table(metadata)

# Every moderation action, dry runs included: what, on which petition, the filter, how many, when.
moderation_actions = Table(
    "moderation_actions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False, index=True),
    Column("action", String(16), nullable=False),  # invalidate, release
    Column("filter", Text, nullable=False),  # JSON
    Column("dry_run", Boolean, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return (await session.execute(select(petitions.c.id).where(petitions.c.slug == slug))).first() is not None


# An organizer's sign-in link: the emailed token is "<id>.<keyed MAC of id>" (services/signing/
# organizers.py), so nothing secret is stored and the notifier can ask for the same link again.
organizer_links = Table(
    "organizer_links",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),  # a link works once
)

# A signed-in organizer: the cookie holds a random token, this table only its SHA-256.
organizer_sessions = Table(
    "organizer_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# The petition in other languages, as its organizer translated it (title and story; the target and
# the organizer's name stay as written).
petition_translations = Table(
    "petition_translations",
    metadata,
    Column("petition_id", String(36), ForeignKey("petitions.id"), primary_key=True),
    Column("language", String(8), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("story", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What organizers posted to their supporters (the notifier reads the text when it writes the emails).
petition_updates = Table(
    "petition_updates",
    metadata,
    Column("petition_id", String(36), ForeignKey("petitions.id"), primary_key=True),
    Column("number", Integer, primary_key=True),  # 1, 2, ... per petition
    Column("subject", String(150), nullable=False),
    Column("body", Text, nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
)


# Decision makers (services/signing/decisions.py): each threshold the counter said a petition reached
# (ThresholdReached), the single-use link its decision maker was sent to respond, and the responses.
petition_thresholds = Table(
    "petition_thresholds",
    metadata,
    Column("petition_id", String(36), ForeignKey("petitions.id"), primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("label", String(80), nullable=False),
    Column("reached_at", DateTime(timezone=True), nullable=False),
)

# The emailed token is "<link id>.<keyed MAC of the link id>", as organizers' sign-in links.
decision_maker_links = Table(
    "decision_maker_links",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("petition_id", String(36), ForeignKey("petitions.id"), nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),  # a response was published with it: it works no more
    UniqueConstraint("petition_id", "threshold", name="one_link_per_threshold"),
)

petition_responses = Table(
    "petition_responses",
    metadata,
    Column("petition_id", String(36), ForeignKey("petitions.id"), primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("responder", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)
