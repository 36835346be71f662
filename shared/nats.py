"""NATS connections and explicit, idempotent JetStream provisioning."""

import asyncio
import os
from collections.abc import Sequence

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from contract.events import STREAM, STREAM_SUBJECTS

log = structlog.get_logger("nats")

DUPLICATE_WINDOW_S = 120.0


class JetStream(JetStreamContext):
    """nats-py's JetStream context, with a publish_async whose future fails when the server refuses
    the message. In nats-py 2.16, `_handle_async_reply` calls `APIError.from_error`, which raises
    rather than returns: the error escapes to the connection's error callback and the future stays
    pending until the caller gives up (nats-io/nats.py#985, fix proposed in #994). The outbox
    relay needs the refusal itself: a full disk answers err_code 10077 at once, and a round that
    waits out its timeout instead is 5 s of nothing published. Once nats-py sets the exception
    itself, the `except` below no longer runs."""

    async def _handle_async_reply(self, msg) -> None:
        try:
            await super()._handle_async_reply(msg)
        except APIError as refused:
            future = self._publish_async_futures.get(msg.subject[len(self._nc._inbox_prefix) + 22 + 2:])
            if future is not None and not future.done():
                future.set_exception(refused)


def connection_options(name: str, connect_timeout_s: float = 5.0) -> dict:
    """Options that survive long outages: reconnect forever, exit if the client ever closes."""
    return {
        "name": name,
        "connect_timeout": connect_timeout_s,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "disconnected_cb": _log_event("nats_disconnected"),
        "reconnected_cb": _log_event("nats_reconnected"),
        "error_cb": _log_error,
    }


async def connect(servers: Sequence[str], name: str, connect_timeout_s: float = 5.0) -> Client:
    """Connect, retrying until the server answers; each attempt is bounded."""
    delay_s = 0.2
    while True:
        try:
            return await asyncio.wait_for(
                nats.connect(
                    servers=list(servers),
                    closed_cb=_exit_if_unexpected,
                    **connection_options(name, connect_timeout_s),
                ),
                timeout=connect_timeout_s * 2,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            log.warning("nats_connect_failed", error=str(exc) or type(exc).__name__, retry_in_s=delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


_closing = False


def closing() -> None:
    """Mark an orderly shutdown so the closed callback does not end the process."""
    global _closing
    _closing = True


async def _exit_if_unexpected() -> None:
    if not _closing:
        # nats-py gave up on this connection: let the supervisor restart a clean process.
        log.error("nats_connection_closed_exiting")
        os._exit(3)


def _log_event(name: str):
    async def callback() -> None:
        log.warning(name)

    return callback


async def _log_error(exc: Exception) -> None:
    log.warning("nats_error", error=str(exc) or type(exc).__name__)


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the petition event stream, or bring an existing one to this config."""
    config = api.StreamConfig(
        name=STREAM,
        subjects=STREAM_SUBJECTS,
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=0,
        discard=api.DiscardPolicy.NEW,
        deny_delete=True,
        deny_purge=True,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream_created", stream=STREAM, replicas=replicas)
        return
    await js.update_stream(config)


async def ensure_consumer(
    js: JetStreamContext,
    durable: str,
    filter_subjects: Sequence[str],
    *,
    ack_wait_s: float = 30.0,
    max_ack_pending: int = 1000,
) -> None:
    """A durable pull consumer with explicit acks, shared by every replica of a service."""
    config = api.ConsumerConfig(
        durable_name=durable,
        name=durable,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
        filter_subjects=list(filter_subjects),
    )
    # CONSUMER.CREATE with a name is create-or-update, so a changed config (ack wait,
    # filters) reaches an existing durable; nats-py's subscribe alone would ignore it.
    await js.add_consumer(STREAM, config)


async def provision(step) -> None:
    """Run a provisioning step until the server accepts it (it may be electing a leader)."""
    delay_s = 0.2
    while True:
        try:
            await step()
            return
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("nats_provision_failed", error=str(exc) or type(exc).__name__, retry_in_s=delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)
