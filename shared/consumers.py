"""Durable JetStream consumers on FastStream: one registry per consumer, batches in, acks after.

A `Registry` names what a consumer reacts to: each event type and its handler. The consumer's
filter subjects, its dispatch and its part of the AsyncAPI document (services/asyncapi.py) all come
from it, so an event type is listed once.

`subscribe` declares the consumer as a FastStream batch subscriber (`PullSub(batch=True)`) on the
durable pull consumer the service provisions itself (shared/nats.py `ensure_consumer`). The handler
receives the batch as `Delivery` items: the event decoded and upcast by the registry's decoder
(or the reason it is unreadable) beside the message, which the handler acks after its effect is
committed, or naks with a delay (the ack policy is MANUAL: the outcome is per event, and an
unreadable event becomes a dead letter, not a failed batch). A handler that raises acks nothing:
the batch comes back after ack_wait.

`_Fetching` stands between FastStream's batch loop and nats-py's pull subscription:

- nats-py 2.15+ `fetch` can end a window with a plain `asyncio.TimeoutError` instead of
  `nats.errors.TimeoutError` (nats.py PR #1008, open). FastStream 0.7.8's batch loop catches only
  the latter and would abandon the messages it had gathered in that window until ack_wait. Here it
  is raised as `nats.errors.TimeoutError`, so the loop hands over what it gathered. Remove this
  when nats-py ships the fix (tests/integration/test_consumers.py forces the plain error).
- Any other fetch error (a broker away, a leader election, a consumer gone with a broker's store)
  is logged and waited out for half a second, as "no messages", instead of ending FastStream's
  task, which its supervisor restarts at once (a busy loop); while no one answers for the
  consumer, it is provisioned again (idempotent) every few seconds.
- FastStream gathers a batch for its whole window (`window_s`, tens of milliseconds) and then
  starts the next, so an idle consumer would ask the server twice a window, all day, on the CPU
  the other processes need (measured: the idle counter and notifier so cost the replay and the
  fan-out a tenth of their speed, docs/benchmarks.md). After a window that found nothing, the next
  window's first fetch asks for one message and waits up to IDLE_POLL_S for it; the server answers
  at the first message, so a quiet consumer reacts at once and asks about once a second.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

import nats.errors
import structlog
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError
from pydantic import SkipValidation

from shared.metrics import CONSUMER_BATCH, CONSUMER_PENDING
from contract.events import STREAM, STREAM_SUBJECTS, type_filter

log = structlog.get_logger("consumer")
_FASTSTREAM_LOG = logging.getLogger("faststream.groundswell")
_FASTSTREAM_LOG.setLevel(logging.WARNING)

REPROVISION_S = 5.0
FETCH_ERROR_PAUSE_S = 0.5
IDLE_POLL_S = 1.0

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Delivery(Generic[E]):
    """One message of a batch: its event as the registry decoded it, or why it could not."""

    msg: Msg
    event: E | None
    unreadable: ValueError | None = None

    @property
    def stream_seq(self) -> int:
        return self.msg.metadata.sequence.stream

    @property
    def deliveries(self) -> int:
        """How many times the stream has delivered it (1 the first time)."""
        return self.msg.metadata.num_delivered or 1

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay_s: float) -> None:
        await self.msg.nak(delay=delay_s)


@dataclass(frozen=True)
class Handler:
    """What a registry calls for an event of its types. `together`: with every event of those
    types in a batch at once (a list), instead of one at a time."""

    run: Callable[..., Awaitable[Any]]
    together: bool = False


def event_type(model: type) -> str:
    return model.model_fields["type"].default


class Registry:
    """The event types one durable consumer handles, each with its handler."""

    def __init__(self, durable: str, about: str, decode: Callable[[bytes], Any]) -> None:
        self.durable = durable
        self.about = about
        self.decode = decode  # bytes -> event; ValueError when unreadable
        self._handlers: dict[str, Handler] = {}
        self._models: dict[str, type] = {}

    def on(self, *models: type, together: bool = False):
        """Register the decorated function as the handler of these event models."""

        def register(run):
            handler = Handler(run, together)
            for model in models:
                name = event_type(model)
                if name in self._handlers:
                    raise ValueError(f"{self.durable} handles {name} twice")
                self._handlers[name] = handler
                self._models[name] = model
            return run

        return register

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    @property
    def models(self) -> tuple[type, ...]:
        return tuple(self._models.values())

    @property
    def subjects(self) -> list[str]:
        """The consumer's filter subjects: every petition's events of each handled type."""
        return [type_filter(name) for name in self._handlers]

    def handler(self, name: str) -> Handler:
        return self._handlers[name]

    def read(self, msg: Msg) -> Delivery:
        """The message with its event decoded, or with the reason it cannot be handled."""
        try:
            event = self.decode(msg.data)
        except ValueError as exc:
            return Delivery(msg, None, exc)
        if event.type not in self._handlers:
            return Delivery(msg, None, ValueError(f"{self.durable} does not handle {event.type}"))
        return Delivery(msg, event)


class EventBroker(NatsBroker):
    """FastStream's NATS broker on the service's own connection (shared/nats.py: reconnects
    forever, ends the process if it closes). The runtime closes that connection; the broker only
    stops its subscribers (close, not drain: see shared/lifecycle.py)."""

    def __init__(self, **options: Any) -> None:
        # FastStream's own lines ("Received"/"Processed" per batch, its task supervisor's notes) are
        # below warning; its warnings and errors go through the process's logging (shared/logging.py).
        options.setdefault("logger", _FASTSTREAM_LOG)
        options.setdefault("log_level", logging.DEBUG)
        super().__init__(**options)
        self._client: Client | None = None

    async def start_on(self, client: Client) -> None:
        self._client = client
        await self.start()

    async def _connect(self) -> Client:
        if self._client is None:
            raise RuntimeError("EventBroker.start_on(client) starts it on the service's connection")
        self.config.connect(self._client)
        return self._client

    async def stop(self, *exc_info: Any) -> None:
        self._connection = None  # not ours to drain
        await super().stop(*exc_info)


Provision = Callable[[JetStreamContext], Awaitable[None]]


def subscribe(broker: NatsBroker, registry: Registry, handle: Callable[[list[Delivery]], Awaitable[None]], *,
              batch_size: int, window_s: float, provision: Provision | None = None):
    """Declare `registry`'s durable as a batch subscriber of `broker` that calls `handle` with
    each batch: up to `batch_size` messages gathered for at most `window_s`."""
    stream = JStream(STREAM, subjects=STREAM_SUBJECTS, declare=False)  # provisioned by the service

    async def deliveries(message: Any, original_decoder: Any) -> list[Delivery]:
        return [registry.read(msg) for msg in message.raw_message]

    subscriber = broker.subscriber(
        "", config=ConsumerConfig(filter_subjects=registry.subjects), stream=stream, durable=registry.durable,
        pull_sub=PullSub(batch_size=batch_size, timeout=window_s, batch=True), ack_policy=AckPolicy.MANUAL,
        decoder=deliveries, title=registry.durable,
        description=f"Durable pull consumer `{registry.durable}`. {registry.about}",
    )
    # The annotation is the document: FastStream describes each message's payload from it (one of
    # the handled models; the handler is given a list of them). Validation is skipped because
    # `deliveries` has decoded each event already, the way its registry reads it (the counter reads
    # a narrow view, several times faster).
    one_of_them = SkipValidation[Union[registry.models]]  # type: ignore[valid-type]

    async def receive(batch: one_of_them) -> None:  # type: ignore[valid-type]
        CONSUMER_BATCH.labels(registry.durable).observe(len(batch))
        CONSUMER_PENDING.labels(registry.durable).set(batch[-1].msg.metadata.num_pending)
        await handle(batch)

    receive.__name__ = registry.durable
    subscriber(receive)
    _fetch_through_shim(subscriber, registry.durable, provision)
    return subscriber


def _fetch_through_shim(subscriber: Any, durable: str, provision: Provision | None) -> None:
    """Put `_Fetching` around the pull subscription FastStream makes when it starts, before its
    batch loop first runs (the loop reads `subscriber.subscription` on every fetch)."""
    create = subscriber._create_subscription

    async def create_subscription() -> None:
        fresh = subscriber.subscription is None
        await create()  # makes the subscription and schedules the loop, which has not run yet
        if fresh:
            subscriber.subscription = _Fetching(subscriber.subscription, subscriber, durable, provision)
            log.info("consuming", durable=durable)

    subscriber._create_subscription = create_subscription


class _Fetching:
    """A pull subscription whose fetch errors are FastStream's "nothing yet" (see the module)."""

    def __init__(self, subscription: Any, subscriber: Any, durable: str, provision: Provision | None) -> None:
        self._subscription = subscription
        self._subscriber = subscriber
        self._durable = durable
        self._provision = provision
        self._provisioned_at = time.monotonic()
        self._idle = False  # the last window found nothing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._subscription, name)

    async def fetch(self, batch: int = 1, timeout: float | None = 5, heartbeat: float | None = None) -> list[Msg]:
        window_opens = batch == self._subscriber.pull_sub.batch_size  # FastStream's first fetch of a window
        if window_opens and self._idle and timeout is not None:
            # A long poll for one message: the server answers it at the first one (a pull for a
            # whole batch would be held open, and the client wait, until the batch or its expiry).
            batch, timeout = 1, max(timeout, IDLE_POLL_S)
        try:
            messages = await self._subscription.fetch(batch=batch, timeout=timeout, heartbeat=heartbeat)
        except nats.errors.TimeoutError:
            self._idle = self._idle or window_opens
            raise
        except asyncio.TimeoutError as exc:  # the window ended (nats-py 2.15+): see the module
            self._idle = self._idle or window_opens
            raise nats.errors.TimeoutError from exc
        except (NotFoundError, ServiceUnavailableError) as exc:
            # No one answers for the consumer: a leader election (it passes), or the consumer and
            # its stream went with the broker's store: make them again.
            log.warning("fetch_unanswered", durable=self._durable, error=str(exc) or type(exc).__name__)
            await asyncio.sleep(FETCH_ERROR_PAUSE_S)
            await self._provision_again()
            raise nats.errors.TimeoutError from exc
        except (nats.errors.Error, OSError) as exc:
            # Disconnected: nothing was taken; the client reconnects by itself.
            log.warning("fetch_failed", durable=self._durable, error=str(exc) or type(exc).__name__)
            await asyncio.sleep(FETCH_ERROR_PAUSE_S)
            raise nats.errors.TimeoutError from exc
        self._idle = not messages
        return messages

    async def _provision_again(self) -> None:
        if self._provision is None or time.monotonic() - self._provisioned_at < REPROVISION_S:
            return
        self._provisioned_at = time.monotonic()
        js = self._subscriber.jetstream
        try:
            await self._provision(js)
            fresh = await js.pull_subscribe_bind(durable=self._durable, stream=STREAM)
        except (nats.errors.Error, OSError) as exc:
            log.warning("consumer_provision_failed", durable=self._durable, error=str(exc) or type(exc).__name__)
            return
        stale, self._subscription = self._subscription, fresh
        try:
            await stale.unsubscribe()
        except (nats.errors.Error, OSError):
            pass
