"""Prometheus metrics: one registry per process (a process is one service)."""

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter("groundswell_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("groundswell_http_request_duration_seconds", "HTTP request latency", ["method", "route"])
SIGNATURES = Counter("groundswell_signatures_accepted_total", "Signatures accepted (202): new, repeat, held",
                     ["kind"])
CONFIRMED = Counter("groundswell_signatures_confirmed_total", "Signatures confirmed by their emailed link")
OUTBOX_UNPUBLISHED = Gauge("groundswell_outbox_unpublished", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge("groundswell_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_PUBLISHED = Counter("groundswell_outbox_published_total", "Outbox rows published and acknowledged")
CONSUMER_PENDING = Gauge("groundswell_consumer_pending", "Stream messages not yet delivered to the consumer", ["durable"])
CONSUMER_BATCH = Histogram("groundswell_consumer_batch_size", "Messages per fetched batch", ["durable"],
                           buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
COMMIT_QUEUE = Gauge("groundswell_commit_queue", "Writes waiting for the next group commit")
COMMIT_BATCH = Histogram("groundswell_commit_batch_size", "Writes committed per transaction",
                         buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
LIVE_STREAMS = Gauge("groundswell_live_streams", "Live-count (SSE) connections open in this process")
LIVE_WATCHED = Gauge("groundswell_live_watched_petitions", "Petitions this process watches for live streams")
DEAD_LETTERS = Counter("groundswell_dead_letters_total",
                       "Events set aside because a retry cannot cure their failure (groundswell <service> dead-letters)",
                       ["durable"])
EVENTS_STALLED = Gauge("groundswell_events_stalled",
                       "1 while a part of the pipeline has stopped (outbox, broker, consumer, storage: shared/flow.py)",
                       ["part"])
MILESTONES = Counter("groundswell_milestones_detected_total", "Milestones newly reached")
EMAILS = Counter("groundswell_emails_total",
                 "Email attempts by outcome: sent, failed (temporary, retried), retried, rejected (permanent)",
                 ["outcome"])

# Every label value exists from the start, so a dashboard sees 0 rather than no series.
for _kind in ("new", "repeat", "held"):
    SIGNATURES.labels(_kind)
for _outcome in ("sent", "failed", "retried", "rejected"):
    EMAILS.labels(_outcome)


# Label values come from these sets only: a made-up method is "OTHER", never a new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


class MetricsMiddleware:
    """Counts and times every request by its route template (never the raw path) and a known
    method; a path that matches no route is "unmatched"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = method_label(scope["method"])
            HTTP_REQUESTS.labels(method, route, status_label(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


def add_metrics(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware)
