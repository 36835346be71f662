"""The group committer on real SQLite and PostgreSQL: batches, duplicates inside a batch, a bad unit
failing alone, and events handed over only after their commit."""

import asyncio
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from services.signing import db
from services.signing.signatures import NewSignature, SignatureWriter
from shared.db import create_sync_engine
from shared.unit_of_work import GroupCommitter, OutboxMarks, Written
from shared.migrations import migrate
from tests.databases import Database
from tests.harness import until

PETITION = "7c0d3f0e-5a4e-4c55-9a7e-0d6f3b2a1c00"


@pytest.fixture
async def database(tmp_path, backend):
    database = Database(backend, "signing", tmp_path)
    await migrate("signing", database.url)
    database.execute("INSERT INTO petitions (id, slug, title, target, story, organizer_name, organizer_email, "
                     f"created_at) VALUES ('{PETITION}', 'group-commit', 'Group commit', 'Tests', 'Story.', "
                     "'Patrick Leonard', 'patrick@example.org', CURRENT_TIMESTAMP)")
    yield database
    database.drop()


@pytest.fixture
def engine(database):
    engine = create_sync_engine(database.url)
    yield engine
    engine.dispose()


def signature(email: str) -> NewSignature:
    return NewSignature(petition_id=PETITION, mailbox_key=email, name="Ada Lovelace", email=email,
                        country="GB", postcode=None, comment=None, updates=True, correlation_id=None)


def scalar(engine, query):
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


async def test_concurrent_signatures_share_transactions_and_repeats_count_once(engine):
    handed_over: list[list[dict]] = []
    committer = GroupCommitter(engine, db.outbox, max_batch=64, on_commit=handed_over.append)
    writer = SignatureWriter(engine.dialect.name)
    runner = asyncio.create_task(committer.run())
    try:
        # 300 signers, 50 of them twice in the same burst (so often inside one batch).
        emails = [f"signer{i}@example.org" for i in range(300)] + [f"signer{i}@example.org" for i in range(50)]
        results = await asyncio.gather(*(committer.submit(writer, signature(e)) for e in emails))
    finally:
        runner.cancel()
    assert results.count("new") == 300 and results.count("repeat") == 50
    for i in range(50):  # exactly one of each pair was the first
        assert results[i] != results[300 + i]
    assert scalar(engine, select(func.count()).select_from(db.signatures)) == 300
    assert scalar(engine, select(func.count()).select_from(db.outbox)) == 300
    assert 1 < len(handed_over) < 300, "signatures were committed in batches, not one by one"
    assert sum(len(rows) for rows in handed_over) == 300  # one SignatureAdded per new signature
    assert len({row["event_id"] for rows in handed_over for row in rows}) == 300


@dataclass(frozen=True)
class Note:
    text: str


class Notes:
    """A writer that refuses one unit: it raises when the batch holds it."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def write(self, conn, units):
        self.batches.append(len(units))
        if any(unit.text == "bad" for unit in units):
            raise ValueError("this unit cannot be written")
        return [Written(unit.text.upper()) for unit in units]


async def test_a_bad_unit_fails_alone_and_the_rest_of_its_batch_is_written(engine):
    committer = GroupCommitter(engine, db.outbox)
    notes = Notes()
    texts = ["one", "two", "bad", "three"]
    # Queue all four before the committer runs, so they form one batch.
    futures = [asyncio.ensure_future(committer.submit(notes, Note(t))) for t in texts]
    await until(lambda: committer.queued == 4)
    runner = asyncio.create_task(committer.run())
    try:
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        runner.cancel()
    assert notes.batches[0] == 4  # tried together first, then one by one
    assert results[:2] == ["ONE", "TWO"] and results[3] == "THREE"
    assert isinstance(results[2], ValueError)


async def test_events_are_handed_over_only_once_committed_and_marks_ride_along(engine, database):
    visible: list[tuple[int, int]] = []

    def on_commit(rows):
        # Read with a connection of its own: the rows handed over must already be committed.
        ids = ", ".join(f"'{row['event_id']}'" for row in rows)
        visible.append((len(rows), database.query(f"SELECT count(*) FROM outbox WHERE event_id IN ({ids})")[0][0]))

    committer = GroupCommitter(engine, db.outbox, on_commit=on_commit)
    writer = SignatureWriter(engine.dialect.name)
    runner = asyncio.create_task(committer.run())
    try:
        await asyncio.gather(*(committer.submit(writer, signature(f"c{i}@example.org")) for i in range(20)))
        assert all(handed == committed for handed, committed in visible) and sum(h for h, _ in visible) == 20
        event_ids = [row[0] for row in database.query("SELECT event_id FROM outbox")]
        await committer.submit(OutboxMarks(db.outbox), event_ids[:15])
    finally:
        runner.cancel()
    assert database.query("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(5,)]


def test_rows_written_in_one_json_statement_read_back_as_sqlalchemy_writes_them(engine, backend):
    """SQLite's single-statement path (shared/bulk.py) against SQLAlchemy's own insert."""
    if backend != "sqlite":
        pytest.skip("the JSON path is SQLite's; PostgreSQL inserts through SQLAlchemy")
    from datetime import datetime, timezone

    from shared.bulk import insert_json
    from contract.events import SignatureAdded
    from shared.outbox import outbox_row

    def event() -> dict:
        row = outbox_row(SignatureAdded(petition_id=PETITION, signature_id="0b6f2a7e-8c1d-4f3a-b5e9-7d2c4a6e8f10",
                                        correlation_id="corr-é", country="GB"))
        row["created_at"] = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=timezone.utc)
        return row

    ours, theirs = event(), event()
    with engine.begin() as conn:
        insert_json(conn, db.outbox, [ours])
        conn.execute(db.outbox.insert(), [theirs])
    with engine.connect() as conn:
        rows = {row.event_id: row for row in conn.execute(select(db.outbox)).all()}
    read_ours, read_theirs = rows[ours["event_id"]], rows[theirs["event_id"]]
    for column in ("subject", "correlation_id", "created_at", "published_at"):
        assert getattr(read_ours, column) == getattr(read_theirs, column), column
    assert (read_ours.payload, read_theirs.payload) == (ours["payload"], theirs["payload"])
