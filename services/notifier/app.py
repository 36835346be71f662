"""Composition root of the notifier service."""

from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from fastapi import FastAPI

from services.notifier import db
from services.notifier.api import router
from services.notifier.contacts import Contacts
from services.notifier.delivery import Pipeline
from services.notifier.emails import mail_problems
from services.notifier.fanout import FanOut
from services.notifier.service import REACTIONS, Notifier, notify
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import SmtpReachable
from shared import nats as gs_nats
from shared.consumers import EventBroker, subscribe
from shared.deadletters import DeadLetters
from shared.http import RequestIdMiddleware, TokenFailures, add_error_handlers, add_health_routes
from shared.lifecycle import Runtime
from shared.openapi import describe_answers
from contract.events import NOTIFIER_DURABLE, STREAM

log = structlog.get_logger("notifier")


@dataclass
class Parts:
    """The notifier's use cases and what they hold open: the service and its command-line tools
    (`groundswell notifier dead-letters --retry`) are made of the same parts."""

    contacts: Contacts
    pipeline: Pipeline
    fanout: FanOut
    notifier: Notifier

    async def close(self) -> None:
        await self.pipeline.close()
        await self.contacts.close()


def compose(settings: NotifierSettings, sessions) -> Parts:
    contacts = Contacts(settings)
    pipeline = Pipeline(sessions, settings)
    fanout = FanOut(sessions, settings, contacts, pipeline)
    return Parts(contacts, pipeline, fanout, Notifier(sessions, settings, contacts, pipeline, fanout))


def create_app(settings: NotifierSettings) -> FastAPI:
    runtime = Runtime(settings, "notifier")
    parts = compose(settings, runtime.sessions)
    notifier, fanout = parts.notifier, parts.fanout
    dead_letters = DeadLetters(runtime.sessions, db.dead_letters, NOTIFIER_DURABLE)
    runtime.flow.watch("smtp", SmtpReachable(settings))

    async def provision(js) -> None:
        await gs_nats.ensure_stream(js, settings.stream_replicas)
        await gs_nats.ensure_consumer(
            js,
            NOTIFIER_DURABLE,
            REACTIONS.subjects,
            ack_wait_s=settings.ack_wait_s,
        )

    broker = EventBroker()
    subscribe(broker, REACTIONS, notify(notifier, dead_letters, settings.event_batches_in_flight),
              batch_size=settings.event_batch, window_s=settings.event_window_s, provision=provision)

    async def consume_events() -> None:
        nc = await runtime.connect_nats()
        js = nc.jetstream()
        await gs_nats.provision(lambda: provision(js))
        runtime.flow.watch_consumer(lambda: js.consumer_info(STREAM, NOTIFIER_DURABLE), NOTIFIER_DURABLE)
        await runtime.start_consuming(broker, nc)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for problem in mail_problems(settings):  # mail that arrives: said at every start, loudly in production
            (log.warning if settings.mode == "production" else log.info)("mail_setup", problem=problem)
        await runtime.open_database()
        runtime.spawn(consume_events(), "notifier")
        runtime.keep(fanout.run, "supporter-fanout")
        yield
        await runtime.close()
        await parts.close()

    app = FastAPI(title="Groundswell notifier", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # no UI that loads assets from a CDN; docs/openapi/
    app.state.settings = settings
    app.state.token_failures = TokenFailures(settings.token_failure_limit)
    app.state.runtime = runtime
    app.include_router(router)
    add_error_handlers(app)
    describe_answers(app)
    add_health_routes(app, runtime.readiness)
    app.add_middleware(RequestIdMiddleware)
    return app
