"""The FastStream batch consumers (shared/consumers.py) against a real nats-server.

nats-py 2.15+ can end a fetch window with a plain `asyncio.TimeoutError`; FastStream 0.7.8's batch
loop catches only `nats.errors.TimeoutError` and then abandons the messages it had gathered in
that window until ack_wait. The tests force that error on every fetch that follows one which
returned messages (as nats-py does at the end of a window) and show that through `subscribe` no
message is delayed or delivered twice, while the same subscriber without the shim delays them."""

import asyncio
import time
import uuid

import nats
import pytest
from nats.js.client import JetStreamContext

from shared import consumers, nats as gs_nats
from shared.consumers import EventBroker, Registry, subscribe
from contract.events import SignatureAdded, decode_event, encode_event, event_subject
from tests.harness import NatsServer, until

EVENTS = 60
BATCH = 25


@pytest.fixture
def plain_timeouts(monkeypatch):
    """nats-py's fetch, raising a plain asyncio.TimeoutError on the fetch after one that
    returned messages (what nats-py 2.15+ does when a window ends at the wrong moment)."""
    fetch = JetStreamContext.PullSubscription.fetch
    forced = {"count": 0}
    last_returned = {}

    async def fetch_then_time_out(self, batch=1, timeout=5, heartbeat=None):
        if last_returned.pop(id(self), False):
            forced["count"] += 1
            raise asyncio.TimeoutError()
        messages = await fetch(self, batch=batch, timeout=timeout, heartbeat=heartbeat)
        last_returned[id(self)] = bool(messages)
        return messages

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch_then_time_out)
    return forced


async def run_consumer(server: NatsServer, *, shim: bool, ack_wait_s: float, deadline_s: float):
    """Publish EVENTS signatures, consume them in batches; the deliveries seen by the handler
    (event id -> each num_delivered) once every event was handled, or at the deadline."""
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    registry = Registry("probe", "A consumer under test.", decode_event)
    registry.on(SignatureAdded)(lambda event: None)

    async def provision(context) -> None:
        await gs_nats.ensure_stream(context)
        await gs_nats.ensure_consumer(context, registry.durable, registry.subjects, ack_wait_s=ack_wait_s)

    await provision(js)
    petition = uuid.uuid4()
    sent = []
    for _ in range(EVENTS):
        event = SignatureAdded(petition_id=petition, signature_id=uuid.uuid4())
        await js.publish(event_subject(petition, event.type), encode_event(event),
                         headers={"Nats-Msg-Id": str(event.event_id)})
        sent.append(str(event.event_id))

    seen: dict[str, list[int]] = {}

    async def handle(batch) -> None:
        for item in batch:
            seen.setdefault(str(item.event.event_id), []).append(item.deliveries)
            await item.ack()

    broker = EventBroker()
    if shim:
        subscribe(broker, registry, handle, batch_size=BATCH, window_s=0.5, provision=provision)
    else:  # the same subscriber, without shared.consumers' fetch shim
        original = consumers._fetch_through_shim
        consumers._fetch_through_shim = lambda *args: None
        try:
            subscribe(broker, registry, handle, batch_size=BATCH, window_s=0.5, provision=provision)
        finally:
            consumers._fetch_through_shim = original
    started = time.monotonic()
    await broker.start_on(nc)
    try:
        try:
            await until(lambda: set(seen) == set(sent), timeout_s=deadline_s)
        except AssertionError:
            pass  # the caller asserts what was seen
        elapsed = time.monotonic() - started
    finally:
        await broker.stop()
        await nc.close()
    return sent, seen, elapsed


async def test_a_plain_timeout_from_fetch_delays_no_message(nats_server, plain_timeouts):
    sent, seen, elapsed = await run_consumer(nats_server, shim=True, ack_wait_s=30, deadline_s=10)
    assert plain_timeouts["count"] >= EVENTS // BATCH  # the error came, after every batch fetched
    assert sorted(seen) == sorted(sent)
    assert all(deliveries == [1] for deliveries in seen.values())  # none redelivered, none twice
    assert elapsed < 10


async def test_without_the_shim_the_same_timeouts_delay_messages(nats_server, plain_timeouts):
    """The control: FastStream's own loop under the same errors leaves messages to ack_wait."""
    sent, seen, _ = await run_consumer(nats_server, shim=False, ack_wait_s=2, deadline_s=6)
    assert plain_timeouts["count"] >= 1
    assert any(deliveries[0] > 1 for deliveries in seen.values()) or set(seen) != set(sent)
