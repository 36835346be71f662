"""`groundswell counter rebuild`: replay the stream from the start into fresh counts."""

import asyncio
import time
from collections.abc import AsyncIterator

import structlog
from nats.js import api

from services.counter import db
from services.counter.listing import SigningTexts, rebuild_listing
from services.counter.projection import CHUNK, COUNTING, Delivered, Rebuild, counted
from services.counter.settings import CounterSettings
from shared import nats as gs_nats
from shared.db import create_engine, sessionmaker
from shared.migrations import migrate
from shared.outbox import OutboxRelay
from contract.events import STREAM, STREAM_SUBJECTS

COUNTED_SUBJECT_ENDS = tuple(f".{event_type}" for event_type in COUNTING.types)

log = structlog.get_logger("counter.rebuild")


async def rebuild(settings: CounterSettings) -> dict[str, int]:
    await migrate("counter", settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = sessionmaker(engine)
    nc = await gs_nats.connect(settings.nats_servers, "counter-rebuild", settings.nats_connect_timeout_s)
    texts = SigningTexts(settings.signing_url, settings.internal_token)
    try:
        js = nc.jetstream()
        up_to_seq = (await js.stream_info(STREAM)).state.last_seq
        started = time.perf_counter()
        replayed = signatures = 0
        async with sessions.begin() as session:
            # Chunks are applied while the stream is still being read; none is kept afterwards.
            rebuild = Rebuild(session, up_to_seq, settings.threshold_list)
            await rebuild.start()
            async for chunk in _read_stream(js, up_to_seq):
                replayed += len(chunk)
                signatures += sum(item.event.type == "SignatureAdded" for item in chunk)
                await rebuild.track(chunk)
            read_s = time.perf_counter() - started
            reached = await rebuild.finish()
            # The list's texts, read from signing again in the same transaction: a signing that does
            # not answer leaves the projection as it was (the rebuild fails, and can run again).
            listed = await rebuild_listing(session, texts)
        replay_s = time.perf_counter() - started
        relay = OutboxRelay(sessions, db.outbox)
        relay.attach(nc)
        while await relay.publish_pending():
            pass
    finally:
        gs_nats.closing()
        await texts.close()
        await nc.drain()
        await engine.dispose()
    summary = {
        "stream_last_seq": up_to_seq,
        "events_replayed": replayed,
        "signatures": signatures,
        "new_milestones": sum(event.type == "MilestoneReached" for event in reached),
        "new_thresholds": sum(event.type == "ThresholdReached" for event in reached),
        "petitions_listed": listed,
        "replay_s": round(replay_s, 3),  # reading the stream and committing the projection
        "read_s": round(read_s, 3),  # until the last chunk was applied
        "events_per_s": round(replayed / replay_s) if replay_s else 0,
    }
    log.info("rebuild_done", **summary)
    return summary


def stream_seq(reply: str) -> int:
    """The stream sequence in a JetStream ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.<seq>...
    (9 tokens), or with a domain and an account hash after ACK (12 tokens). nats-py's Msg.metadata
    parses all of it into objects, a fifth of a replay's time."""
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


async def _read_stream(js, up_to_seq: int, chunk_size: int = CHUNK) -> AsyncIterator[list[Delivered]]:
    """Every PetitionCreated and SignatureAdded with stream sequence <= up_to_seq, in order, in
    chunks as they arrive.

    An ordered push consumer hands each message to a callback: no fetch round trips, no task per
    message (a pull fetch wraps every message in a timed wait)."""
    if up_to_seq == 0:
        return
    chunks: asyncio.Queue[list[Delivered] | None] = asyncio.Queue()
    pending: list[Delivered] = []
    finished = False

    async def take(message) -> None:
        nonlocal pending, finished
        seq = stream_seq(message.reply)
        if seq <= up_to_seq and message.subject.endswith(COUNTED_SUBJECT_ENDS):
            try:
                pending.append(Delivered(counted(message.data), seq))
            except ValueError:
                log.error("undecodable_event_skipped", subject=message.subject, stream_seq=seq)
        if len(pending) >= chunk_size:
            chunks.put_nowait(pending)
            pending = []
        if seq >= up_to_seq and not finished:
            finished = True
            chunks.put_nowait(pending)
            chunks.put_nowait(None)

    subscription = await js.subscribe(STREAM_SUBJECTS[0], stream=STREAM, cb=take, ordered_consumer=True,
                                      deliver_policy=api.DeliverPolicy.ALL)
    try:
        while (chunk := await chunks.get()) is not None:
            if chunk:
                yield chunk
    finally:
        await subscription.unsubscribe()
