"""FastStream's cost per event: the same durable pull consumer read two ways from the same backlog.

    python -m bench.consumers [--events 50000] [--rounds 3]

A nats-server from the wheel (its own store, a free port) holds `--events` SignatureAdded events.
Each round reads all of them twice, alternately, acking each:
- `nats-py`: a plain loop, `fetch(500)` then ack each message (what shared/consumer.py was);
- `faststream`: shared/consumers.py `subscribe`, a FastStream batch subscriber (batch of 500), with
  the counter's own decoding (`COUNTING.read`) and a handler that acks each message.
Both decode the payload the counter's way, so the difference is FastStream's batch loop, its
per-batch middleware and the `Delivery` items. Printed: events/s of each, and the cost per event
in microseconds (the difference of the two times over the events).
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nats

from bench.stack import free_port, wait_until
from contract.events import SignatureAdded, encode_event, event_subject
from services.counter.projection import COUNTING, counted
from shared import nats as gs_nats
from shared.consumers import EventBroker, subscribe

BATCH = 500


async def publish(js, events: int) -> None:
    petition = uuid.uuid4()
    pending = []
    for _ in range(events):
        event = SignatureAdded(petition_id=petition, signature_id=uuid.uuid4(), country="GB")
        pending.append(js.publish(event_subject(petition, event.type), encode_event(event)))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def fresh_durable(js, name: str) -> None:
    await gs_nats.ensure_consumer(js, name, COUNTING.subjects, max_ack_pending=BATCH * 4)


async def read_plain(js, name: str, events: int) -> float:
    await fresh_durable(js, name)
    subscription = await js.pull_subscribe_bind(durable=name, stream="PETITIONS")
    started, seen = time.perf_counter(), 0
    while seen < events:
        try:
            messages = await subscription.fetch(batch=BATCH, timeout=1.0)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in messages:
            counted(msg.data)
            await msg.ack()
        seen += len(messages)
    elapsed = time.perf_counter() - started
    await subscription.unsubscribe()
    return elapsed


async def read_faststream(nc, js, name: str, events: int) -> float:
    await fresh_durable(js, name)
    registry = type(COUNTING)(name, COUNTING.about, COUNTING.decode)
    for event_type, model in zip(COUNTING.types, COUNTING.models):
        registry.on(model)(COUNTING.handler(event_type).run)
    done = asyncio.Event()
    seen = 0

    async def handle(batch) -> None:
        nonlocal seen
        for item in batch:
            await item.ack()
        seen += len(batch)
        if seen >= events:
            done.set()

    broker = EventBroker()
    subscribe(broker, registry, handle, batch_size=BATCH, window_s=0.02)
    started = time.perf_counter()
    await broker.start_on(nc)
    await done.wait()
    elapsed = time.perf_counter() - started
    await broker.stop()
    return elapsed


async def main(events: int, rounds: int) -> dict:
    port, store = free_port(), tempfile.mkdtemp(prefix="gs-consumers-")
    server = subprocess.Popen([str(Path(sys.executable).parent / "nats-server"), "-js", "-sd", store, "-a", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), 10, "nats-server up")
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream()
        await gs_nats.ensure_stream(js)
        await publish(js, events)
        times = {"nats-py": [], "faststream": []}
        for round_ in range(rounds):
            times["nats-py"].append(await read_plain(js, f"plain{round_}", events))
            times["faststream"].append(await read_faststream(nc, js, f"fast{round_}", events))
        await nc.close()
    finally:
        server.terminate()
        server.wait(10)
    plain, fast = statistics.median(times["nats-py"]), statistics.median(times["faststream"])
    return {"events": events, "rounds": rounds,
            "nats_py_eps": round(events / plain), "faststream_eps": round(events / fast),
            "faststream_cost_us_per_event": round(1e6 * (fast - plain) / events, 2),
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()}}


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.rounds))))
