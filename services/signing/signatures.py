"""Writing new signatures, many at once: one multi-row INSERT per batch, deduplicated on the
mailbox (a keyed hash of the canonical email) by the table's unique key (ON CONFLICT DO NOTHING), one SignatureAdded per row
that was new."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from uuid import UUID, uuid4

from sqlalchemy import Connection

from services.signing.db import signatures
from shared.bulk import insert_json, present
from shared.db import insert
from shared.events import SignatureAdded
from shared.groupcommit import Written


@dataclass(frozen=True)
class NewSignature:
    """One person's signature as a request hands it over: validated, with its mailbox key."""

    petition_id: str
    mailbox_key: str
    name: str
    email: str
    country: str | None
    postcode: str | None
    comment: str | None
    updates: bool
    correlation_id: str | None


class SignatureWriter:
    """Units: NewSignature. Result: True for a first signature, False for a repeat (nothing written)."""

    def __init__(self, dialect_name: str) -> None:
        self.sqlite = dialect_name == "sqlite"
        self.statement = (
            insert(dialect_name, signatures)
            .on_conflict_do_nothing(index_elements=["petition_id", "mailbox_key"])
            .returning(signatures.c.id)
        )

    def write(self, conn: Connection, units: Sequence[NewSignature]) -> list[Written[bool]]:
        now = datetime.now(timezone.utc)
        ids = [uuid4() for _ in units]
        rows = [
            {
                "id": str(signature_id),
                "petition_id": unit.petition_id,
                "mailbox_key": unit.mailbox_key,
                "email": unit.email,
                "name": unit.name,
                "country": unit.country,
                "postcode": unit.postcode,
                "comment": unit.comment,
                "updates": unit.updates,
                "created_at": now,
                "unsubscribe_token": secrets.token_urlsafe(32),
            }
            for unit, signature_id in zip(units, ids)
        ]
        if self.sqlite:  # one statement in, one row back: see shared/bulk.py
            insert_json(conn, signatures, rows, conflict=["petition_id", "mailbox_key"])
            inserted = present(conn, signatures, "id", [row["id"] for row in rows])
        else:
            inserted = set(conn.execute(self.statement, rows).scalars().all())
        return [_written(unit, signature_id, str(signature_id) in inserted) for unit, signature_id in zip(units, ids)]


def _written(unit: NewSignature, signature_id: UUID, new: bool) -> Written[bool]:
    if not new:
        return Written(False)
    return Written(True, (SignatureAdded(
        petition_id=unit.petition_id,
        correlation_id=unit.correlation_id,
        signature_id=signature_id,
        country=unit.country,
        updates=unit.updates,
    ),))
