"""The petition page's numbers, its cache headers and CORS, through Caddy (one origin)."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.test_pipeline import distinct_signers
from tests.databases import sqlite_only
from tests.harness import eventually

pytestmark = [pytest.mark.e2e, sqlite_only]  # the page, caching, CORS, streams: not the database's


def numbers_on(html: str) -> dict:
    """Every count and goal the page shows, and the progress bar's values."""
    return {
        "counts": re.findall(r"data-count>([\d,]+)<", html),
        "goals": re.findall(r"data-goal>([\d,]+)<", html),
        "bar": re.search(r'<progress[^>]* max="(\d+)"\s+value="(\d+)"', html).groups(),
        "sentence": " ".join(re.sub(r"<[^>]+>", "", re.search(r'<p class="tally".*?</p>', html, re.S).group(0)).split()),
    }


def test_the_page_numbers_are_the_count_endpoint_and_the_goal_follows_the_ladder(system):
    petition = system.create_petition("ladder")
    system.wait_for_count(petition["id"], 0)
    page_url, count_url = f"{system.web.url}/p/ladder", f"{system.web.url}/petitions/ladder/count"
    signers = distinct_signers(239)
    signed = 0
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        for target, goal in ((0, 100), (150, 200), (239, 500)):
            statuses = list(pool.map(lambda body: system.sign(petition["id"], body, client).status_code,
                                     signers[signed:target]))
            assert statuses == [202] * (target - signed)
            signed = target
            system.wait_for_count(petition["id"], target)
            # The front door's files follow the count within a moment of it.
            count = eventually(lambda: (c := client.get(count_url).json())["count"] == target and c,
                               message=f"count document {target}")
            html = eventually(lambda: (h := client.get(page_url).text) and f"data-count>{target:,}<" in h and h,
                              message=f"page shows {target}")
            shown = numbers_on(html)
            assert (count["count"], count["goal"]) == (target, goal)
            assert shown["counts"] == [f"{target:,}"] * 2  # "N have signed" and "Join Patrick and N supporters"
            assert shown["goals"] == [f"{goal:,}"] * 2  # "Let's get to G" and the thank-you state's goal
            assert shown["bar"] == (str(goal), str(target))
            assert shown["sentence"] == f"{target:,} have signed. Let’s get to {goal:,}!"
            assert f"Join Patrick and <strong data-count>{target:,}</strong> supporters today." in html


def test_counts_are_cacheable_and_live_and_cors_is_off_unless_configured(system):
    petition = system.create_petition("cache")
    system.wait_for_count(petition["id"], 0)
    response = httpx.get(f"{system.counter.url}/petitions/cache/count")  # the counter's own answer
    assert response.headers["Cache-Control"] == "public, max-age=1, stale-while-revalidate=1"
    through = eventually(lambda: (r := httpx.get(f"{system.web.url}/petitions/cache/count")).headers.get("Via") is None
                         and r, message="the count document served as a file")
    assert through.headers["Cache-Control"] == response.headers["Cache-Control"]
    preflight = httpx.options(f"{system.web.url}/petitions/cache/signatures", headers={
        "Origin": "https://other.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers

    # The live stream: the current count at once, then each change.
    with httpx.Client(timeout=10) as client, client.stream(
            "GET", f"{system.web.url}/petitions/cache/count/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = stream.iter_lines()
        first = next(line for line in events if line.startswith("data:"))
        assert '"count": 0' in first or '"count":0' in first
        assert system.sign(petition["id"], distinct_signers(1)[0]).status_code == 202
        second = next(line for line in events if line.startswith("data:"))
        assert '"count": 1' in second or '"count":1' in second

    assert httpx.get(f"{system.web.url}/petitions/nope/count/events").status_code == 404
    # The recipient list is for the notifier only: not reachable through the public front door,
    # even with the right token.
    internal = f"/internal/petitions/{petition['id']}/recipients?signed_before=2030-01-01T00:00:00Z"
    token = {"Authorization": f"Bearer {system.signing.env['GROUNDSWELL_INTERNAL_TOKEN']}"}
    assert httpx.get(f"{system.signing.url}{internal}", headers=token).status_code == 200
    assert httpx.get(f"{system.web.url}{internal}", headers=token).status_code == 404
    assert httpx.get(f"{system.web.url}/p/nope").status_code == 404


def test_cors_allows_the_configured_origins(system):
    for service in (system.signing, system.counter):
        service.stop()
        service.env["GROUNDSWELL_CORS_ORIGINS"] = "https://campaign.example"
        service.start()
    petition = system.create_petition("cors")
    for path in (f"/petitions/{petition['id']}/signatures", f"/petitions/{petition['id']}/count"):
        allowed = httpx.options(f"{system.web.url}{path}", headers={
            "Origin": "https://campaign.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://campaign.example"
        other = httpx.options(f"{system.web.url}{path}", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert other.headers.get("access-control-allow-origin") is None
