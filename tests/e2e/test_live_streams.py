"""Live-count streams are bounded per counter process: beyond the cap a clear 503 with Retry-After,
idle streams carry keep-alive comments, and a closed stream gives its place and its watcher back."""

import contextlib

import httpx
import pytest

from tests.databases import sqlite_only
from tests.harness import eventually, metrics

pytestmark = [pytest.mark.e2e, sqlite_only]  # the page, caching, CORS, streams: not the database's


def open_streams(metric) -> float:
    return metric[("groundswell_live_streams", ())]


def test_live_streams_are_capped_kept_alive_and_released(system):
    counter = system.counter
    counter.stop()
    counter.env["GROUNDSWELL_LIVE_MAX_STREAMS"] = "3"
    counter.env["GROUNDSWELL_LIVE_HEARTBEAT_S"] = "0.3"
    counter.start()
    petition = system.create_petition("live-cap")
    system.wait_for_count(petition["id"], 0)
    url = f"{system.web.url}/petitions/{petition['id']}/count/events"  # through the front door
    timeout = httpx.Timeout(10, read=5)
    with httpx.Client(timeout=timeout) as client, contextlib.ExitStack() as streams:
        held = [streams.enter_context(client.stream("GET", url)) for _ in range(3)]
        for stream in held:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = held[0].iter_lines()
        assert next(lines) == "event: count"
        # Idle: keep-alive comments arrive, no further count events.
        seen = [next(lines) for _ in range(8)]
        assert ": keep-alive" in seen and seen.count("event: count") == 0, seen
        eventually(lambda: open_streams(metrics(counter)) == 3, message="three live streams counted")

        refused = client.get(url)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5" and "maximum of 3" in refused.json()["detail"]
        assert client.get(f"{system.web.url}/petitions/{petition['id']}/count").status_code == 200  # polling still works

        held.pop().close()
        eventually(lambda: open_streams(metrics(counter)) == 2, message="a closed stream gives its place back")
        with client.stream("GET", url) as again:
            assert again.status_code == 200
    eventually(lambda: open_streams(metrics(counter)) == 0, message="every place given back")
    # Nobody watches the petition any more: its watcher task is gone too (no live stream, no poll).
    eventually(lambda: metrics(counter)[("groundswell_live_watched_petitions", ())] == 0,
               message="no watcher left")
