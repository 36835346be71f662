"""A durable pull consumer loop on nats-py: fetch what is there, hand it over, repeat.

The handler acks or naks each message itself, after its effect is committed. (FastStream 0.7.8's
batch loop drops a partial batch when nats-py raises a plain asyncio.TimeoutError, leaving it to
come back only after ack_wait, so the loop is written here.)
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError, ServiceUnavailableError

from shared.metrics import CONSUMER_BATCH, CONSUMER_PENDING
from shared.subjects import STREAM

log = structlog.get_logger("consumer")

BatchHandler = Callable[[list[Msg]], Awaitable[None]]
REPROVISION_S = 5.0


async def consume(
    js: JetStreamContext,
    durable: str,
    handle: BatchHandler,
    *,
    batch_size: int,
    fetch_timeout_s: float = 1.0,
    linger_s: float = 0.0,
    in_flight: int = 1,
    provision: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run forever: fetch up to batch_size messages (returning as soon as any arrive), handle them.

    After a batch smaller than batch_size, wait `linger_s` before the next fetch: under a steady
    stream, messages gather meanwhile and the per-batch costs (a transaction, a fetch round trip)
    are shared by more of them, for at most that much more latency.

    With `in_flight` > 1, up to that many batches are handled at once (the next is fetched while
    the others wait on a database, a server or SMTP): the handler must then keep whatever order
    it needs itself.

    `provision` makes the stream and the durable again (idempotent): a broker restarted on an empty
    store has neither, and the loop would otherwise fail every fetch until the process restarts."""
    subscription = await js.pull_subscribe_bind(durable=durable, stream=STREAM)
    provisioned_at = time.monotonic()
    log.info("consuming", durable=durable, in_flight=in_flight)
    slots = asyncio.Semaphore(in_flight)
    running: set[asyncio.Task] = set()

    async def run(messages: list[Msg]) -> None:
        try:
            await handle(messages)
        except Exception:  # noqa: BLE001 - keep consuming; unacked messages come back after ack_wait
            log.exception("batch_failed", durable=durable, messages=len(messages))
            await asyncio.sleep(1.0)
        finally:
            slots.release()

    try:
        while True:
            await slots.acquire()
            try:
                messages = await subscription.fetch(batch=batch_size, timeout=fetch_timeout_s)
            except (asyncio.TimeoutError, nats.errors.TimeoutError):
                messages = []  # nothing to do yet (fetch can also stall until its timeout: nats.py #986)
            except (NotFoundError, ServiceUnavailableError) as exc:
                # No one answers for the consumer: a leader election (it passes), or the consumer
                # and its stream are gone with the broker's store: make them again (idempotent).
                log.warning("fetch_unanswered", durable=durable, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
                if provision is not None and time.monotonic() - provisioned_at >= REPROVISION_S:
                    provisioned_at = time.monotonic()
                    try:
                        await provision()
                        subscription = await js.pull_subscribe_bind(durable=durable, stream=STREAM)
                    except (nats.errors.Error, OSError) as again:
                        log.warning("consumer_provision_failed", durable=durable, error=str(again) or type(again).__name__)
                messages = []
            except (nats.errors.Error, OSError) as exc:
                # Disconnected or a leader election: nothing was taken; the client reconnects by itself.
                log.warning("fetch_failed", durable=durable, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
                messages = []
            except BaseException:
                slots.release()
                raise
            if not messages:
                slots.release()
                continue
            CONSUMER_BATCH.labels(durable).observe(len(messages))
            CONSUMER_PENDING.labels(durable).set(messages[-1].metadata.num_pending)
            if in_flight == 1:
                await run(messages)
            else:
                task = asyncio.create_task(run(messages))
                running.add(task)
                task.add_done_callback(running.discard)
            if linger_s and len(messages) < batch_size:
                await asyncio.sleep(linger_s)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
