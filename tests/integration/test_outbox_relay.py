"""The outbox relay against a real nats-server: a broker that stores some of what it is sent and
refuses the rest for want of storage is a broker that stopped storing (shared/flow.py's `broker`
part), though it acknowledges a message now and then; a message refused for itself is not. Here a
stream's message limit refuses as a full disk does (JSStreamStoreFailedF, err_code 10077, a 503);
nats-py 2.16 would leave such a refusal's future pending until the round's timeout
(shared/nats.py JetStream)."""

import time
import uuid
from datetime import datetime, timezone

import nats
from nats.js import api

from contract.events import STREAM, SignatureAdded
from services.counter import db
from shared import nats as gs_nats
from shared.db import create_engine, sessionmaker
from shared.migrations import migrate
from shared.outbox import OutboxRelay, outbox_row
from tests.databases import Database


async def test_a_broker_refusing_part_of_every_round_for_storage_is_seen_not_storing(nats_server, tmp_path, backend):
    database = Database(backend, "counter", tmp_path)
    await migrate("counter", database.url)
    engine = create_engine(database.url)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await gs_nats.ensure_stream(js)
        config = (await js.stream_info(STREAM)).config
        config.max_msgs = 3  # with the stream's DiscardPolicy.NEW: the 4th message is refused
        await js.update_stream(config)
        assert (await js.stream_info(STREAM)).config.discard == api.DiscardPolicy.NEW

        sessions = sessionmaker(engine)
        petition_id = uuid.uuid4()
        rows = [outbox_row(SignatureAdded(petition_id=petition_id, signature_id=uuid.uuid4())) for _ in range(5)]
        async with sessions.begin() as session:
            await session.execute(db.outbox.insert(), [{**row, "created_at": datetime.now(timezone.utc)}
                                                      for row in rows])
        relay = OutboxRelay(sessions, db.outbox)
        relay.attach(nc)

        # A round of 5: 3 stored and acknowledged, 2 refused. Some acknowledged, and still the
        # broker is not storing what it is sent.
        started = time.monotonic()
        assert await relay.publish_pending() == 3
        assert time.monotonic() - started < relay.publish_timeout_s  # refused at once, not timed out
        first = relay.unacknowledged_for_s()
        assert first > 0
        assert await relay.publish_pending() == 0  # the 2 left, refused again
        assert relay.unacknowledged_for_s() > first
        assert database.query("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(2,)]

        # Room again (the stream's own config back): the rest is stored, and the broker is well.
        await gs_nats.ensure_stream(js)
        assert await relay.publish_pending() == 2
        assert relay.unacknowledged_for_s() == 0
        assert database.query("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
        assert (await js.stream_info(STREAM)).state.messages == 5

        # A message refused for itself (over the stream's size limit: a 400) leaves the broker well.
        config = (await js.stream_info(STREAM)).config
        config.max_msg_size = 64
        await js.update_stream(config)
        async with sessions.begin() as session:
            await session.execute(db.outbox.insert(), [{**outbox_row(SignatureAdded(petition_id=petition_id,
                                                                                   signature_id=uuid.uuid4())),
                                                       "created_at": datetime.now(timezone.utc)}])
        assert await relay.publish_pending() == 0
        assert relay.unacknowledged_for_s() == 0
    finally:
        await nc.close()
        await engine.dispose()
        database.drop()
