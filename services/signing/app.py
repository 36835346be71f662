"""Composition root of the signing service."""

from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from services.signing import db
from services.signing.api import router
from services.signing.pages import WEB
from services.signing.pages import router as pages
from services.signing.supporters import router as supporters
from services.signing.service import Signing
from services.signing.settings import SigningSettings
from shared import nats as gs_nats
from shared.http import BodyLimitMiddleware, RequestIdMiddleware, add_cors, add_health_routes, validation_error
from shared.lifecycle import Runtime
from shared.outbox import OutboxRelay


def create_app(settings: SigningSettings) -> FastAPI:
    runtime = Runtime(settings, "signing")
    relay = OutboxRelay(
        runtime.sessions,
        db.outbox,
        batch_size=settings.relay_batch_size,
        sweep_interval_s=settings.relay_sweep_interval_s,
    )

    async def relay_events() -> None:
        # Signing answers while NATS is away: connecting happens beside the HTTP server.
        nc = await runtime.connect_nats()
        js = nc.jetstream()
        await gs_nats.provision(lambda: gs_nats.ensure_stream(js, settings.stream_replicas))
        relay.attach(nc)
        await relay.run()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.open_database()
        runtime.spawn(relay_events(), "outbox-relay")
        app.state.http = httpx.AsyncClient(timeout=1.5)
        yield
        await app.state.http.aclose()
        await runtime.close()

    app = FastAPI(
        title="Groundswell signing API",
        version="1",
        description="Create petitions, read them, and sign them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.relay = relay
    app.state.signing = Signing(runtime.sessions, relay)
    app.include_router(router)
    app.include_router(pages)
    app.include_router(supporters)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    app.add_exception_handler(RequestValidationError, validation_error)
    add_health_routes(app, runtime.readiness)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    add_cors(app, settings.cors_origins)
    return app
