"""Composition root of the signing service."""

from contextlib import asynccontextmanager

import httpx

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.signing import db, purge
from services.signing.api import router
from services.signing.dashboard import router as dashboard
from services.signing.discovery import PageCache
from services.signing.discovery import router as discovery
from services.signing.export import router as export
from services.signing.internal import internal
from services.signing.fastpath import SigningApp
from services.signing.frontdoor import FrontDoor
from services.signing.pages import WEB, client_of, page_files
from services.signing.pages import router as pages
from services.signing.share import router as share
from services.signing.service import PetitionCache
from services.signing.moderation import router as moderation
from services.signing.respond import router as respond
from services.signing.review import api as review_api
from services.signing.review import page as review_page
from services.signing.organizers import Organizers
from services.signing.supporters import router as supporters
from services.signing.service import Signing
from services.signing.settings import SigningSettings
from shared import nats as gs_nats
from shared.count_bucket import follow_counts
from shared.db import create_sync_engine
from shared.http import (BodyLimitMiddleware, RequestIdMiddleware, TokenFailures, add_cors, add_error_handlers,
                         add_health_routes)
from shared.lifecycle import Runtime
from shared.openapi import describe_answers
from shared.outbox import OutboxRelay
from contract.events import PETITION_EVENT_TYPES, SIGNING_DURABLE, petition_of, type_filter
from services.signing.decisions import Decisions
from services.signing.reactions import ACK_WAIT_S, REACTIONS, react
from shared.consumers import EventBroker, subscribe
from shared.unit_of_work import GroupCommitter, UnitOfWork


def create_app(settings: SigningSettings) -> FastAPI:
    runtime = Runtime(settings, "signing")
    relay = OutboxRelay(
        runtime.sessions,
        db.outbox,
        batch_size=settings.relay_batch_size,
        sweep_interval_s=settings.relay_sweep_interval_s,
    )
    committer = GroupCommitter(create_sync_engine(settings.database_url), db.outbox, max_batch=settings.commit_max_batch)
    write = UnitOfWork(runtime.sessions, db.outbox, relay, committer)  # every write of signing goes through it
    runtime.flow.watch_outbox(relay)
    petitions = PetitionCache(runtime.engine)
    frontdoor = FrontDoor(petitions, page_files(settings.public_url, settings.confirm_signatures, settings.threshold_list), settings.public_dir,
                          refresh_s=settings.page_refresh_s, static_dir=WEB / "static")

    decisions = Decisions(write, settings)

    async def provision(js) -> None:
        await gs_nats.ensure_stream(js, settings.stream_replicas)
        await gs_nats.ensure_consumer(js, SIGNING_DURABLE, REACTIONS.subjects, ack_wait_s=ACK_WAIT_S)

    broker = EventBroker()
    subscribe(broker, REACTIONS, react(decisions, frontdoor.petition_changed), batch_size=20, window_s=0.05,
              provision=provision)

    async def follow_nats() -> None:
        # Signing answers while NATS is away: connecting happens beside the HTTP server.
        nc = await runtime.connect_nats()
        js = nc.jetstream()
        await gs_nats.provision(lambda: provision(js))

        async def petition_event(msg) -> None:
            frontdoor.petition_changed(petition_of(msg.subject))

        for event_type in PETITION_EVENT_TYPES:
            await nc.subscribe(type_filter(event_type), cb=petition_event)
        runtime.spawn(follow_counts(js, frontdoor.on_count, frontdoor.on_loaded, settings.stream_replicas,
                                    frontdoor.on_removed), "count-follower")
        relay.attach(nc)
        relay.provision = lambda: gs_nats.ensure_stream(js, settings.stream_replicas)
        await runtime.start_consuming(broker, nc)
        await relay.run()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.open_database()
        clients = app.state.signing.clients
        if clients.hostnames:  # the front door by name (compose): resolved now and again
            runtime.keep(clients.keep_resolved, "trusted-proxies")
        frontdoor.prepare()
        runtime.spawn(committer.run(), "group-commit")
        runtime.keep(frontdoor.run, "front-door")
        runtime.spawn(follow_nats(), "outbox-relay")
        runtime.keep(lambda: purge.run(runtime.sessions, settings), "purge")
        yield
        await runtime.close()
        await app.state.counter.aclose()
        await app.state.notifier.aclose()
        committer.close()

    app = SigningApp(
        title="Groundswell signing API",
        version="1",
        description="Create petitions, read them, and sign them.",
        lifespan=lifespan,
        docs_url=None,  # no UI that loads assets from a CDN: the document is /openapi.json and docs/openapi/
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.token_failures = TokenFailures(settings.token_failure_limit)
    app.state.client_of = client_of  # the front door's X-Forwarded-For, when it comes from the front door
    app.state.runtime = runtime
    app.state.frontdoor = frontdoor
    app.state.signing = Signing(write, petitions, settings)
    app.state.organizers = Organizers(write, settings, app.state.signing.mail_budget)
    app.state.decisions = decisions
    app.state.list_pages = PageCache(settings.list_cache_s)
    app.state.counter = httpx.AsyncClient(base_url=settings.counter_url.rstrip("/"), timeout=5)
    app.state.notifier = httpx.AsyncClient(base_url=settings.notifier_url.rstrip("/"), timeout=5,
                                           headers={"Authorization": f"Bearer {settings.internal_token or ''}"})
    app.include_router(router)
    app.include_router(discovery)
    app.include_router(dashboard)
    app.include_router(export)
    app.include_router(internal)
    app.include_router(pages)
    app.include_router(share)
    app.include_router(supporters)
    app.include_router(respond)
    app.include_router(moderation)
    app.include_router(review_api)
    app.include_router(review_page)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    add_error_handlers(app)
    describe_answers(app)
    add_health_routes(app, runtime.readiness)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    add_cors(app, settings.cors_origins)
    # In front of everything: the cross-site guard, then signatures skip the rest (services/signing/fastpath.py).
    app.install_fast_path(app.state.signing, max_body_bytes=settings.max_body_bytes,
                          public_url=settings.public_url, cors_origins=settings.cors_origins)
    return app
