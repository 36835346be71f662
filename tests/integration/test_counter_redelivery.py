"""The counter's handler against a real nats-server and a real SQLite database."""

import asyncio
import sqlite3
import uuid

import nats
import nats.errors
import pytest
from sqlalchemy import event as sa_event

from services.counter import db
from services.counter.projection import (COUNTING, Delivered, apply_events, count_signatures, counted,
                                         rebuild_projection)
from services.counter.settings import CounterSettings
from shared import nats as gs_nats
from shared.db import create_engine, sessionmaker
from shared.migrations import migrate
from contract.events import (COUNTER_DURABLE, PetitionCreated, STREAM, SignatureAdded, encode_event, event_subject,
                             type_filter)
from shared.outbox import OutboxRelay
from shared.deadletters import DeadLetters
from services.deadletters_cli import dead_letters_command
from tests.databases import Database


@pytest.fixture
async def js(nats_server):
    """A JetStream context with the petition stream and the counter's durable consumer."""
    nc = await nats.connect(nats_server.url)
    context = nc.jetstream()
    await gs_nats.ensure_stream(context)
    await gs_nats.ensure_consumer(context, COUNTER_DURABLE, [type_filter("PetitionCreated"), type_filter("SignatureAdded")])
    yield context
    await nc.close()


@pytest.fixture
async def counter_db(tmp_path, backend):
    database = Database(backend, "counter", tmp_path)
    await migrate("counter", database.url)
    engine = create_engine(database.url)
    yield engine, database
    await engine.dispose()
    database.drop()


def read(messages) -> list:
    """A fetched batch as FastStream hands it to the counter (shared/consumers.py)."""
    return [COUNTING.read(m) for m in messages]


def delivered(m) -> Delivered:
    return Delivered(counted(m.data), m.metadata.sequence.stream)


def dead_letters(sessions) -> DeadLetters:
    return DeadLetters(sessions, db.dead_letters, COUNTER_DURABLE)


async def publish_petition_with_signatures(js, n: int):
    """Publish a petition and n signatures; returns its id and a subscription on the counter's durable."""
    petition_id = uuid.uuid4()
    events = [PetitionCreated(petition_id=petition_id, title="T", slug=f"s-{petition_id.hex[:8]}", target="X")]
    events += [SignatureAdded(petition_id=petition_id, signature_id=uuid.uuid4()) for _ in range(n)]
    for event in events:
        await js.publish(event_subject(petition_id, event.type), encode_event(event),
                         headers={"Nats-Msg-Id": str(event.event_id)})
    return str(petition_id), await js.pull_subscribe_bind(durable=COUNTER_DURABLE, stream=STREAM)


async def fetch_exactly(subscription, n: int, timeout_s: float = 10) -> list:
    """Fetch until n messages came (naks reach the server one by one, so batches can be partial)."""
    messages = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(messages) < n and asyncio.get_running_loop().time() < deadline:
        try:
            messages += await subscription.fetch(batch=n - len(messages), timeout=1)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            pass
    return messages


def count_in(database, petition_id: str) -> int:
    return database.query(f"SELECT count FROM petition_counts WHERE petition_id = '{petition_id}'")[0][0]


async def test_events_redelivered_after_a_nak_count_once(js, counter_db):
    engine, path = counter_db
    sessions = sessionmaker(engine)
    petition_id, subscription = await publish_petition_with_signatures(js, 12)

    # Apply and commit, but the ack is lost: nak them instead, as a crash before the ack would.
    first = await fetch_exactly(subscription, 13)
    handle = count_signatures(sessions, OutboxRelay(sessions, db.outbox), 0.1, dead_letters(sessions))
    async with sessions.begin() as session:
        await apply_events(session, [delivered(m) for m in first])
    for message in first:
        await message.nak()
    assert count_in(path, petition_id) == 12

    again = await fetch_exactly(subscription, 13)
    assert [m.metadata.num_delivered for m in again] == [2] * 13
    await handle(read(again))
    assert count_in(path, petition_id) == 12
    assert path.query(f"SELECT milestone FROM milestones WHERE petition_id = '{petition_id}'") == [(10,)]
    assert path.query("SELECT count(*) FROM outbox") == [(1,)]


async def test_a_failed_batch_is_nakked_and_applied_once_when_redelivered(js, counter_db, backend):
    if backend != "sqlite":
        pytest.skip("the failure is made with SQLite's write lock; PostgreSQL runs the same handler in e2e")
    engine, path = counter_db
    sessions = sessionmaker(engine)
    petition_id, subscription = await publish_petition_with_signatures(js, 5)
    handle = count_signatures(sessions, OutboxRelay(sessions, db.outbox), 0.2, dead_letters(sessions))

    # Another connection holds the write lock and the handler's engine waits only 0.1 s for it,
    # so the handler's transaction really fails.
    impatient = create_engine(path.url)
    sa_event.listen(impatient.sync_engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=100"))
    failing = count_signatures(sessionmaker(impatient), OutboxRelay(sessions, db.outbox), 0.2,
                               dead_letters(sessions))
    blocker = sqlite3.connect(path.path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    await failing(read(await fetch_exactly(subscription, 6)))
    blocker.rollback()
    blocker.close()
    await impatient.dispose()

    again = await fetch_exactly(subscription, 6)
    assert [m.metadata.num_delivered for m in again] == [2] * 6
    await handle(read(again))
    assert count_in(path, petition_id) == 5


async def test_a_slug_created_again_goes_to_the_newer_petition_and_counting_goes_on(js, counter_db):
    """Signing never gives two petitions one slug, but its database restored from a backup older
    than the stream can: the counter must not fail every batch after that (a unique slug), and a
    rebuild must decide the same way."""
    engine, database = counter_db
    sessions = sessionmaker(engine)
    subscription = await js.pull_subscribe_bind(durable=COUNTER_DURABLE, stream=STREAM)
    handle = count_signatures(sessions, OutboxRelay(sessions, db.outbox), 0.1, dead_letters(sessions))
    first, second, third, fourth = (uuid.uuid4() for _ in range(4))
    published = []

    async def publish(*events) -> None:
        for event in events:
            await js.publish(event_subject(event.petition_id, event.type), encode_event(event),
                             headers={"Nats-Msg-Id": str(event.event_id)})
        messages = await fetch_exactly(subscription, len(events))
        published.extend(delivered(m) for m in messages)
        await handle(read(messages))  # one batch

    def signed(petition_id, n):
        return [SignatureAdded(petition_id=petition_id, signature_id=uuid.uuid4()) for _ in range(n)]

    await publish(PetitionCreated(petition_id=first, title="T", slug="bridge", target="X"), *signed(first, 3))
    # Later batches: the slug again for another petition; then two petitions with one slug in one batch.
    await publish(PetitionCreated(petition_id=second, title="T", slug="bridge", target="X"), *signed(second, 2),
                  *signed(first, 1))
    await publish(PetitionCreated(petition_id=third, title="T", slug="river", target="X"),
                  PetitionCreated(petition_id=fourth, title="T", slug="river", target="X"),
                  *signed(third, 1), *signed(fourth, 4))

    expected = [(str(first), None, 4), (str(second), "bridge", 2), (str(third), None, 1), (str(fourth), "river", 4)]
    rows = "SELECT petition_id, slug, count FROM petition_counts ORDER BY count DESC, petition_id"
    assert sorted(database.query(rows)) == sorted(expected)
    assert database.query("SELECT count(*) FROM processed_events") == [(len(published),)]
    assert database.query("SELECT count(*) FROM dead_letters") == [(0,)]

    async with sessions.begin() as session:
        await rebuild_projection(session, published, published[-1].stream_seq)
    assert sorted(database.query(rows)) == sorted(expected)


def refuse_events_of(database, petition_id: str) -> None:
    """Make the database itself refuse the petition's events, every time (a trigger: a constraint
    the counter's code knows nothing of), as a value it cannot store would."""
    if database.backend == "sqlite":
        database.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON processed_events WHEN NEW.petition_id = "
                         f"'{petition_id}' BEGIN SELECT RAISE(ABORT, 'refused for the test'); END")
        return
    database.execute(f"CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     f"IF NEW.petition_id = '{petition_id}' THEN RAISE EXCEPTION 'refused for the test' "
                     f"USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$")
    database.execute("CREATE TRIGGER refuse BEFORE INSERT ON processed_events FOR EACH ROW EXECUTE FUNCTION refuse()")


async def test_an_event_the_database_refuses_is_set_aside_and_the_rest_count(js, counter_db):
    """One event the database refuses every time cannot hold back the batch it came in, nor every
    batch after it: the batch is applied one event at a time, the refused events become dead letters
    after GROUNDSWELL_DEAD_LETTER_AFTER deliveries, and a retry once the cause is gone counts them."""
    engine, database = counter_db
    sessions = sessionmaker(engine)
    subscription = await js.pull_subscribe_bind(durable=COUNTER_DURABLE, stream=STREAM)
    handle = count_signatures(sessions, OutboxRelay(sessions, db.outbox), 0.05, dead_letters(sessions),
                              dead_letter_after=2)
    good, bad = uuid.uuid4(), uuid.uuid4()
    events = [PetitionCreated(petition_id=good, title="T", slug="good", target="X"),
              PetitionCreated(petition_id=bad, title="T", slug="bad", target="X")]
    events += [SignatureAdded(petition_id=petition_id, signature_id=uuid.uuid4()) for petition_id in [good, bad] * 6]
    for event in events:
        await js.publish(event_subject(event.petition_id, event.type), encode_event(event),
                         headers={"Nats-Msg-Id": str(event.event_id)})
    refuse_events_of(database, str(bad))

    deadline = asyncio.get_running_loop().time() + 20
    while database.query("SELECT count(*) FROM dead_letters") != [(7,)]:
        assert asyncio.get_running_loop().time() < deadline, database.query("SELECT count(*) FROM dead_letters")
        try:
            await handle(read(await subscription.fetch(batch=20, timeout=0.5)))
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            pass
    assert database.query("SELECT petition_id, count FROM petition_counts") == [(str(good), 6)]
    assert database.query("SELECT milestone FROM milestones") == []
    letters = database.query("SELECT error, deliveries FROM dead_letters")
    assert {(error.split(":")[0], deliveries) for error, deliveries in letters} == {("refused by the database", 2)}
    with pytest.raises((asyncio.TimeoutError, nats.errors.TimeoutError)):  # nothing left on the stream
        await subscription.fetch(batch=1, timeout=0.5)

    # The cause fixed, `groundswell counter dead-letters --retry all` counts them, once.
    database.execute("DROP TRIGGER refuse" if database.backend == "sqlite" else "DROP TRIGGER refuse ON processed_events")
    settings = CounterSettings(_env_file=None, DATABASE_URL=database.url)
    outcome = await dead_letters_command("counter", settings, "all", False)
    assert [entry["result"] for entry in outcome] == ["resolved"] * 7
    assert sorted(database.query("SELECT petition_id, count FROM petition_counts")) == sorted(
        [(str(good), 6), (str(bad), 6)])
    assert await dead_letters_command("counter", settings, "all", False) == []
