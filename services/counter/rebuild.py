"""`groundswell counter rebuild`: replay the stream from the start into fresh counts."""

import asyncio
import time

import structlog
from nats.js import api
from nats.errors import TimeoutError as NatsTimeoutError

from services.counter import db
from services.counter.projection import Delivered, rebuild_projection
from services.counter.settings import CounterSettings
from shared import nats as gs_nats
from shared.db import create_engine, sessionmaker
from shared.migrations import migrate
from shared.events import PetitionCreated, SignatureAdded, decode_event
from shared.outbox import OutboxRelay
from shared.subjects import STREAM, type_filter

log = structlog.get_logger("counter.rebuild")


async def rebuild(settings: CounterSettings) -> dict[str, int]:
    await migrate("counter", settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = sessionmaker(engine)
    nc = await gs_nats.connect(settings.nats_servers, "counter-rebuild", settings.nats_connect_timeout_s)
    try:
        js = nc.jetstream()
        up_to_seq = (await js.stream_info(STREAM)).state.last_seq
        started = time.perf_counter()
        replay = await _read_stream(js, up_to_seq)
        async with sessions.begin() as session:
            reached = await rebuild_projection(session, replay, up_to_seq)
        replay_s = time.perf_counter() - started
        relay = OutboxRelay(sessions, db.outbox)
        relay.attach(nc)
        while await relay.publish_pending():
            pass
    finally:
        gs_nats.closing()
        await nc.drain()
        await engine.dispose()
    summary = {
        "stream_last_seq": up_to_seq,
        "events_replayed": len(replay),
        "signatures": sum(isinstance(item.event, SignatureAdded) for item in replay),
        "new_milestones": len(reached),
        "replay_s": round(replay_s, 3),  # reading the stream and committing the projection
        "events_per_s": round(len(replay) / replay_s) if replay_s else 0,
    }
    log.info("rebuild_done", **summary)
    return summary


async def _read_stream(js, up_to_seq: int) -> list[Delivered]:
    """Every PetitionCreated and SignatureAdded with stream sequence <= up_to_seq."""
    if up_to_seq == 0:
        return []
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.NONE,
        filter_subjects=[type_filter("PetitionCreated"), type_filter("SignatureAdded")],
        inactive_threshold=60.0,
        mem_storage=True,
    )
    subscription = await js.pull_subscribe("", stream=STREAM, config=config)
    replay: list[Delivered] = []
    try:
        while True:
            try:
                messages = await subscription.fetch(batch=1000, timeout=2)
            except (NatsTimeoutError, asyncio.TimeoutError):
                if (await subscription.consumer_info()).num_pending == 0:
                    return replay
                continue
            for message in messages:
                seq = message.metadata.sequence.stream
                if seq > up_to_seq:
                    return replay
                event = decode_event(message.data)
                if isinstance(event, (PetitionCreated, SignatureAdded)):
                    replay.append(Delivered(event, seq))
                if seq == up_to_seq or message.metadata.num_pending == 0:
                    return replay
    finally:
        await subscription.unsubscribe()
