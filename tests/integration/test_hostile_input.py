"""Input an attacker or a broken client sends: every answer is a clear 4xx, never a 500, and nothing
it sends grows the metrics without bound. Both databases: PostgreSQL refuses text SQLite stores."""

import re

import pytest
from fastapi.testclient import TestClient

from services.counter.app import create_app as create_counter
from services.counter.settings import CounterSettings
from services.signing.app import create_app as create_signing
from services.signing.settings import SigningSettings
from tests.databases import Database

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INTERNAL = {"Authorization": "Bearer test-internal-token"}
SIGNATURE = {"name": "Ana Lima", "email": "ana@example.org"}
SITE = "https://petitions.example.org"
PARTNER = "https://partner.example.net"

# Paths whose variable part can name nothing: NUL, bytes that are not UTF-8, a slug too long.
UNNAMEABLE = ["%00", "%00%ff", "a%00b", "%ff%fe", "x" * 300, "%E2%80%A8", "..%2f..%2fetc"]


@pytest.fixture
def databases(tmp_path, backend):
    made = [Database(backend, name, tmp_path) for name in ("signing", "counter")]
    yield made
    for database in made:
        database.drop()


@pytest.fixture
def signing(databases, nats_url):
    settings = SigningSettings(
        _env_file=None, admin_token=TOKEN, internal_token="test-internal-token", DATABASE_URL=databases[0].url,
        NATS_URL=nats_url, public_url=SITE, cors_origins=PARTNER,
    )
    with TestClient(create_signing(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def counter(databases, nats_url):
    settings = CounterSettings(_env_file=None, DATABASE_URL=databases[1].url, NATS_URL=nats_url)
    with TestClient(create_counter(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def petition(signing) -> dict:
    response = signing.post("/petitions", headers=AUTH, json={
        "title": "Fix the bridge", "target": "The council", "story": "Story.",
        "organizer": {"name": "Organizer", "email": "organizer@example.org"}})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("ref", UNNAMEABLE)
def test_a_path_that_can_name_nothing_is_a_404_on_signing(signing, petition, ref):
    for method, path, kwargs in [
        ("GET", f"/petitions/{ref}", {}),
        ("POST", f"/petitions/{ref}/signatures", {"json": SIGNATURE}),
        ("GET", f"/p/{ref}", {}),
        ("GET", f"/p/{ref}/thanks", {}),
        ("POST", f"/p/{ref}", {"data": SIGNATURE}),
        ("GET", f"/u/{ref}", {}),
        ("POST", f"/u/{ref}", {}),
        ("GET", f"/w/{ref}", {}),
        ("GET", f"/p/{ref}/organizer", {}),
        ("POST", f"/p/{ref}/organizer", {}),
        ("GET", f"/dashboard/{ref}", {}),
        ("GET", f"/dashboard/{ref}/signatures.csv", {}),
        ("POST", f"/dashboard/{ref}/closure", {"data": {"outcome": "won"}}),
    ]:
        response = signing.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.status_code, response.text[:200])


@pytest.mark.parametrize("ref", UNNAMEABLE)
def test_a_path_that_can_name_nothing_is_a_404_on_the_counter(counter, ref):
    for path in (f"/petitions/{ref}/count", f"/petitions/{ref}/count/events"):
        response = counter.get(path)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert response.json()["detail"]


def test_internal_recipients_refuse_what_cannot_be_an_id(signing, petition):
    base = f"/internal/petitions/{petition['id']}/recipients?signed_before=2030-01-01T00:00:00Z"
    assert signing.get(base, headers=INTERNAL).status_code == 200
    for path in ("/internal/petitions/%00/recipients?signed_before=2030-01-01T00:00:00Z",
                 f"{base}&after=%00", f"{base}&after=%ff"):
        response = signing.get(path, headers=INTERNAL)
        assert response.status_code == 422, (path, response.status_code, response.text[:200])


def test_made_up_methods_do_not_make_new_metric_series(signing, petition):
    def series() -> set[str]:
        text = signing.get("/metrics").text
        return {line.split(" ")[0] for line in text.splitlines() if line.startswith("groundswell_http_")}

    for method in ("GET", "BREW", "PROPFIND", "X-" + "Y" * 50):
        signing.request(method, f"/petitions/{petition['id']}")
        signing.request(method, "/nowhere")
    series()
    before = series()
    for method in ("BREW2", "PROPFIND2", "X-" + "Z" * 50, "WHEN"):
        signing.request(method, f"/petitions/{petition['id']}")
        signing.request(method, f"/nowhere/{method}")
    assert series() == before
    methods = {m for line in before for m in re.findall(r'method="([^"]*)"', line)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"} and "OTHER" in methods


def test_a_post_from_another_site_is_refused(signing, petition):
    path = f"/petitions/{petition['id']}/signatures"
    form = f"/p/{petition['slug']}"
    evil = {"Origin": "https://evil.example.com"}
    for target, kwargs in ((path, {"json": SIGNATURE}), (form, {"data": SIGNATURE})):
        refused = signing.post(target, headers=evil, **kwargs)
        assert refused.status_code == 403, (target, refused.text)
        assert "evil.example.com" in refused.json()["detail"] and "GROUNDSWELL_CORS_ORIGINS" in refused.json()["detail"]
    by_referer = signing.post(path, json=SIGNATURE, headers={"Referer": "https://evil.example.com/page"})
    assert by_referer.status_code == 403
    assert signing.post(path, json=SIGNATURE, headers={"Origin": "null"}).status_code == 403
    # Creating petitions and erasure are refused the same way, even with the token.
    assert signing.post("/petitions", json={}, headers={**AUTH, **evil}).status_code == 403
    assert signing.post("/admin/erasure", json={"email": "a@example.org"}, headers={**AUTH, **evil}).status_code == 403
    # Nothing was stored: the petition still has no signature.
    recipients = signing.get(f"/internal/petitions/{petition['id']}/recipients?signed_before=2030-01-01T00:00:00Z",
                             headers=INTERNAL)
    assert recipients.json()["recipients"] == []


def test_posts_from_the_site_its_partners_and_non_browsers_are_accepted(signing, petition):
    path = f"/petitions/{petition['id']}/signatures"
    cases = [
        {"Origin": SITE},                       # the public URL
        {"Origin": "http://testserver"},        # the request's own host (the front door keeps Host)
        {"Origin": PARTNER},                    # listed in GROUNDSWELL_CORS_ORIGINS
        {"Referer": f"{SITE}/p/{petition['slug']}"},  # no Origin: the Referer decides
        {},                                     # curl, a server: no browser, no cross-site request
    ]
    for number, headers in enumerate(cases):
        response = signing.post(path, json={**SIGNATURE, "email": f"s{number}@example.org"}, headers=headers)
        assert response.status_code == 202, (headers, response.text)
    page = signing.post(f"/p/{petition['slug']}", data={**SIGNATURE, "email": "form@example.org", "country": "GB"},
                        headers={"Origin": SITE}, follow_redirects=False)
    assert page.status_code == 303, page.text[-500:]


def test_an_address_with_characters_before_the_at_that_need_smtputf8_is_a_clear_422(signing, petition):
    """Mail to such an address needs SMTPUTF8 end to end; the signer is told now rather than waiting
    for a link that cannot be sent. An internationalized domain is accepted (sent in IDNA form)."""
    refused = signing.post(f"/petitions/{petition['id']}/signatures", json={"name": "José", "email": "josé@example.org"})
    assert refused.status_code == 422, refused.text
    assert "before the @-sign" in refused.text
    accepted = signing.post(f"/petitions/{petition['id']}/signatures", json={"name": "Jo", "email": "jo@exämple.org"})
    assert accepted.status_code == 202, accepted.text
    organizer = signing.post("/petitions", headers=AUTH, json={
        "title": "Another", "target": "The council", "story": "Story.",
        "organizer": {"name": "Organizer", "email": "orgañizer@example.org"}})
    assert organizer.status_code == 422 and "before the @-sign" in organizer.text
    # Erasure still takes any address signing ever accepted.
    erased = signing.post("/admin/erasure", headers=AUTH, json={"email": "josé@example.org"})
    assert erased.status_code == 200 and erased.json()["erased"] == 0, erased.text


@pytest.mark.parametrize("token", UNNAMEABLE + ["00000000-0000-4000-8000-000000000000.abc"])
def test_a_sign_in_link_that_names_nothing_is_a_401(signing, token):
    response = signing.get(f"/o/{token}", follow_redirects=False)
    expected = 404 if "%2f" in token else 401  # "../.." leaves the route altogether
    assert response.status_code == expected and "set-cookie" not in response.headers


def test_a_form_field_sent_as_a_file_is_a_422_naming_it(signing, petition):
    """No form here has a file input: an upload where text belongs is refused, not stored as the
    text of its Python object (a petition titled "UploadFile(filename=...)")."""
    origin = {"Origin": SITE}
    start = {"target": "The council", "story": "Story.", "name": "Rosa Diaz", "email": "rosa@example.org"}
    started = signing.post("/start", data=start, files={"title": ("title.txt", b"Save the bridge")}, headers=origin)
    assert started.status_code == 422, started.text
    assert started.json()["errors"] == {"title": "must be text: this form takes no files"}
    signed = signing.post(f"/p/{petition['slug']}", data={"email": "ana@example.org", "country": "GB"},
                          files={"name": ("n.txt", b"Ana"), "comment": ("c.txt", b"Hi")}, headers=origin)
    assert signed.status_code == 422, signed.text
    assert set(signed.json()["errors"]) == {"name", "comment"}
    reviewed = signing.post(f"/admin/review/{petition['id']}", files={"decision": ("d.txt", b"approve")},
                            headers=origin, auth=("moderator", TOKEN))
    assert reviewed.status_code == 422, reviewed.text
    assert signing.get(f"/petitions/{petition['id']}").json()["title"] == petition["title"]
    # The same forms as text still work.
    assert signing.post("/start", data={**start, "title": "Save the bridge"}, headers=origin).status_code == 202
    assert signing.post(f"/p/{petition['slug']}", data={"name": "Ana", "email": "ana@example.org", "country": "GB"},
                        headers=origin, follow_redirects=False).status_code == 303
