"""Composition root of the counter service."""

from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from services.counter import db, queries
from services.counter.api import as_count, router
from services.counter.discovery import ListCache
from services.counter.discovery import router as discovery
from services.counter.listing import LISTING, SigningTexts, refresh_listing
from services.counter.live import CountHub
from services.counter.projection import COUNTING, count_signatures
from services.counter.publish import CountPublisher
from services.counter.settings import CounterSettings
from shared import nats as gs_nats
from shared.consumers import EventBroker, subscribe
from shared.count_bucket import counts_bucket
from shared.deadletters import DeadLetters
from shared.http import RequestIdMiddleware, add_cors, add_error_handlers, add_health_routes
from shared.lifecycle import Runtime
from shared.openapi import describe_answers
from shared.outbox import OutboxRelay
from contract.events import COUNTER_DURABLE, LISTING_DURABLE, STREAM


log = structlog.get_logger("counter")


async def warn_if_figures_missing(sessions) -> None:
    """Counts but no hour buckets: the database was upgraded from before the country and hour
    projections (counter migration 0003), and past signatures are missing from the organizers'
    charts and country tables until `groundswell counter rebuild` runs once."""
    try:
        missing = await queries.figures_missing(sessions)
    except Exception:  # a database away at start: the consumer rides it out; this check is only advice
        return
    if missing:
        log.warning("counter_figures_missing", counted=missing,
                    action="run `groundswell counter rebuild` once to fill signatures by country and hour")


def create_app(settings: CounterSettings) -> FastAPI:
    runtime = Runtime(settings, "counter")
    relay = OutboxRelay(runtime.sessions, db.outbox, sweep_interval_s=settings.relay_sweep_interval_s)
    runtime.flow.watch_outbox(relay)

    async def read_count(petition_id: str):
        row = await queries.petition_count(runtime.sessions, "id", petition_id)
        return as_count(row) if row else None

    hub = CountHub(read_count, poll_s=settings.live_poll_s, max_streams=settings.live_max_streams)
    publisher = CountPublisher(runtime.sessions, interval_s=settings.live_poll_s)

    async def provision(js) -> None:
        await gs_nats.ensure_stream(js, settings.stream_replicas)
        await gs_nats.ensure_consumer(
            js,
            COUNTER_DURABLE,
            COUNTING.subjects,
            ack_wait_s=settings.ack_wait_s,
            max_ack_pending=max(1000, settings.batch_size * 4),
        )
        await gs_nats.ensure_consumer(js, LISTING_DURABLE, LISTING.subjects, ack_wait_s=settings.ack_wait_s,
                                      max_ack_pending=1000)

    async def counted(counts) -> None:
        await publisher.put(counts)
        hub.wake({str(c.petition_id) for c in counts})

    dead_letters = DeadLetters(runtime.sessions, db.dead_letters, COUNTER_DURABLE)
    broker = EventBroker()
    subscribe(broker, COUNTING,
              count_signatures(runtime.sessions, relay, settings.retry_delay_s, dead_letters, on_counted=counted,
                               dead_letter_after=settings.dead_letter_after, thresholds=settings.threshold_list),
              batch_size=settings.batch_size, window_s=settings.batch_linger_s, provision=provision)
    texts = SigningTexts(settings.signing_url, settings.internal_token)
    subscribe(broker, LISTING,
              refresh_listing(runtime.engine, texts, DeadLetters(runtime.sessions, db.dead_letters, LISTING_DURABLE),
                              settings.retry_delay_s, settings.dead_letter_after),
              batch_size=50, window_s=settings.batch_linger_s, provision=provision)

    async def consume_and_relay() -> None:
        nc = await runtime.connect_nats()
        js = nc.jetstream()
        await gs_nats.provision(lambda: provision(js))
        runtime.flow.watch_consumer(lambda: js.consumer_info(STREAM, COUNTER_DURABLE), COUNTER_DURABLE)
        relay.attach(nc)
        relay.provision = lambda: provision(js)
        runtime.spawn(relay.run(), "outbox-relay")
        publisher.attach(await counts_bucket(js, settings.stream_replicas),
                         reopen=lambda: counts_bucket(js, settings.stream_replicas))
        runtime.keep(publisher.run, "count-publisher")
        await runtime.start_consuming(broker, nc)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.open_database()
        runtime.spawn(warn_if_figures_missing(runtime.sessions), "figures-check")
        runtime.spawn(consume_and_relay(), "counter")
        yield
        await hub.close()
        await runtime.close()
        await texts.close()

    app = FastAPI(title="Groundswell count API", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # no UI that loads assets from a CDN; docs/openapi/
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.hub = hub
    app.state.list_cache = ListCache(settings.list_cache_s)
    app.include_router(discovery)
    app.include_router(router)
    add_error_handlers(app)
    describe_answers(app)
    add_health_routes(app, runtime.readiness)
    app.add_middleware(RequestIdMiddleware)
    add_cors(app, settings.cors_origins)
    return app
