"""Viewers' reads through Caddy are files: the count document and the page of a viewed petition are
answered without Python, with the current count, even while signing and the counter are down."""

import re

import httpx
import pytest

from tests.e2e.test_pipeline import distinct_signers
from tests.databases import sqlite_only
from tests.harness import eventually

pytestmark = pytest.mark.e2e

COUNT_CACHE = "public, max-age=1, stale-while-revalidate=1"


def shown_count(html: str) -> int | None:
    found = re.search(r"<strong data-count>([\d,]+)</strong> have signed", html)
    return int(found.group(1).replace(",", "")) if found else None


def sign(system, petition_id: str, bodies) -> None:
    with httpx.Client() as client:
        assert [system.sign(petition_id, b, client).status_code for b in bodies] == [202] * len(bodies)


@sqlite_only
def test_counts_and_pages_are_served_as_files_and_follow_the_count(system):
    petition = system.create_petition("front-door")
    system.wait_for_count(petition["id"], 0)
    assert (system.workdir / "signing.sock").is_socket()  # the front door's way to signing, as under make run
    signers = distinct_signers(6)
    sign(system, petition["id"], signers[:3])
    system.wait_for_count(petition["id"], 3)
    web = system.web.url
    page_url, thanks_url = f"{web}/p/front-door", f"{web}/p/front-door/thanks"

    # The first view renders in signing (and keeps the page as a file); later views are the file.
    # Pages follow the count through the COUNTS bucket, a moment behind the counter's own answer.
    eventually(lambda: shown_count(httpx.get(page_url).text) == 3, timeout_s=5, message="page shows 3")
    page = eventually(lambda: (r := httpx.get(page_url, headers={"Accept-Encoding": "gzip"}))
                      .headers.get("Via") is None and r, message="page served as a file")
    assert page.headers["Content-Encoding"] == "gzip" and page.headers["Cache-Control"] == "public, max-age=1"
    assert shown_count(page.text) == 3

    for ref in (petition["id"], "front-door"):
        count = eventually(lambda: (r := httpx.get(f"{web}/petitions/{ref}/count")).headers.get("Via") is None and r,
                           message=f"count document for {ref} served as a file")
        assert count.json()["count"] == 3 and count.json()["goal"] == 100
        assert count.headers["Cache-Control"] == COUNT_CACHE
        assert count.headers["Content-Type"] == "application/json"
    asset = httpx.get(f"{web}/static/page.js")
    assert asset.status_code == 200 and "Via" not in asset.headers

    # New signatures reach the files with no view passing through Python.
    sign(system, petition["id"], signers[3:5])
    eventually(lambda: shown_count(httpx.get(page_url).text) == 5, message="page file shows 5")
    eventually(lambda: httpx.get(f"{web}/petitions/front-door/count").json()["count"] == 5, message="count 5")

    # Signing and the counter down: viewers still get the page and the count.
    httpx.get(thanks_url)
    eventually(lambda: "Via" not in httpx.get(thanks_url).headers, message="thank-you page as a file")
    system.signing.stop()
    system.counter.stop()
    try:
        for url in (page_url, thanks_url):
            response = httpx.get(url)
            assert response.status_code == 200 and shown_count(response.text) == 5
        assert httpx.get(f"{web}/petitions/{petition['id']}/count").json()["count"] == 5
        assert httpx.get(f"{web}/petitions/front-door/signatures").status_code == 502  # signing itself is down
    finally:
        system.signing.start()
        system.counter.start()

    # After a restart the page is a file again once viewed, and still follows the count.
    sign(system, petition["id"], signers[5:])
    eventually(lambda: shown_count(httpx.get(page_url).text) == 6, message="page shows 6 after the restart")
    eventually(lambda: "Via" not in httpx.get(page_url).headers, message="page a file again")


@sqlite_only
def test_a_petition_nobody_viewed_is_rendered_by_signing_and_an_unknown_one_is_404(system):
    petition = system.create_petition("cold")
    system.wait_for_count(petition["id"], 0)
    first = httpx.get(f"{system.web.url}/p/cold")
    assert first.status_code == 200 and first.headers["Via"].endswith("Caddy") and shown_count(first.text) == 0
    assert httpx.get(f"{system.web.url}/p/no-such-petition").status_code == 404
    assert httpx.get(f"{system.web.url}/petitions/no-such-petition/count").status_code == 404


@sqlite_only
def test_the_front_door_shows_only_what_it_should(system):
    """Metrics and API UIs are not public; every answer carries the security headers, and a page's
    CSP allows nothing inline and no other origin (the page works under it: test_browser.py)."""
    from shared.http import CONTENT_SECURITY_POLICY

    petition = system.create_petition("headers")
    system.wait_for_count(petition["id"], 0)
    web = system.web.url
    for path in ("/metrics", "/docs", "/redoc", "/docs/oauth2-redirect", f"/internal/petitions/{petition['id']}/recipients"):
        assert httpx.get(f"{web}{path}").status_code == 404, path
    assert httpx.get(f"{system.signing.url}/docs").status_code == 404  # no CDN-loading UI on the service either
    rendered = httpx.get(f"{web}/p/headers")  # the first view: rendered by signing, through the proxy
    as_file = eventually(lambda: (r := httpx.get(f"{web}/p/headers")).headers.get("Via") is None and r,
                         message="page served as a file")
    count = httpx.get(f"{web}/petitions/{petition['id']}/count")
    for response in (rendered, as_file, count, httpx.get(f"{web}/static/page.css"), httpx.get(f"{web}/p/nope")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert response.headers.get_list("Content-Security-Policy") == [CONTENT_SECURITY_POLICY]
        assert "Strict-Transport-Security" not in response.headers  # plain http here
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    for page in (rendered.text, as_file.text):
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", page)


def test_an_erased_organizer_leaves_the_page_files(system):
    """Issue 9: erasure covers organizers. A viewed petition's page is a file at the front door, so
    erasing its organizer must reach that file (OrganizerErased makes signing render it again), not
    only the database."""
    petition = system.create_petition("erased-page")
    system.wait_for_count(petition["id"], 0)
    web = system.web.url
    page_url, thanks_url = f"{web}/p/erased-page", f"{web}/p/erased-page/thanks"
    for url in (page_url, thanks_url):
        httpx.get(url)
        eventually(lambda: "Via" not in (r := httpx.get(url)).headers and "Patrick" in r.text,
                   message=f"{url} a file naming Patrick")
    erased = httpx.post(f"{system.signing.url}/admin/erasure", json={"email": "organizer-erased-page@example.org"},
                        headers={"Authorization": f"Bearer {system.token}"}, timeout=10)
    assert erased.json() == {"erased": 1, "signatures": 0, "petitions": 1}
    for url in (page_url, thanks_url):
        eventually(lambda: "Patrick" not in (r := httpx.get(url)).text and "Via" not in r.headers,
                   timeout_s=10, message=f"{url} rendered again without the organizer")
    files = "".join(path.read_text(errors="replace") for path in (system.workdir / "public").rglob("*.html"))
    assert "erased-page" in files and "Patrick" not in files
