"""The signing API's contract with site developers: clear 4xx answers, never a 500."""

import json

import pytest
from fastapi.testclient import TestClient

from services.signing.app import create_app
from services.signing.settings import SigningSettings
from tests.databases import Database

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(tmp_path, nats_url, backend):
    database = Database(backend, "signing", tmp_path)
    settings = SigningSettings(
        _env_file=None, admin_token=TOKEN, DATABASE_URL=database.url, NATS_URL=nats_url, max_body_bytes=16384,
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            client.database = database  # to read what signing stored
            yield client
    finally:
        database.drop()


def petition_body(**overrides) -> dict:
    body = {
        "title": "Tell Denver's Mayor to Protect Citizens",
        "target": "Denver Mayor Michael Hancock",
        "story": "First paragraph.\n\nSecond paragraph.",
        "organizer": {"name": "Patrick Leonard", "email": "patrick@example.org"},
    }
    return {**body, **overrides}


@pytest.fixture
def petition(api) -> dict:
    response = api.post("/petitions", json=petition_body(slug="denver"), headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def test_creating_a_petition_needs_the_admin_token(api):
    assert api.post("/petitions", json=petition_body()).status_code == 401
    wrong = api.post("/petitions", json=petition_body(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "GROUNDSWELL_ADMIN_TOKEN" in wrong.json()["detail"]


def test_created_petition_is_public_without_the_organizer_email(api, petition):
    assert petition["slug"] == "denver" and petition["organizer"] == {"name": "Patrick Leonard"}
    for ref in (petition["id"], "denver", petition["id"].upper()):
        response = api.get(f"/petitions/{ref}")
        assert response.status_code == 200 and response.json()["id"] == petition["id"]
        assert "patrick@example.org" not in response.text
    assert api.get("/petitions/no-such-petition").status_code == 404


def test_slugs_are_unique(api, petition):
    taken = api.post("/petitions", json=petition_body(slug="denver"), headers=AUTH)
    assert taken.status_code == 409 and "denver" in taken.json()["detail"]
    first = api.post("/petitions", json=petition_body(), headers=AUTH).json()
    second = api.post("/petitions", json=petition_body(), headers=AUTH).json()
    assert first["slug"] == "tell-denvers-mayor-to-protect-citizens"
    assert second["slug"].startswith("tell-denvers-mayor-to-protect-citizens-") and second["slug"] != first["slug"]


def test_a_repeat_signature_answers_exactly_like_the_first(api, petition):
    first = api.post(f"/petitions/{petition['id']}/signatures", json={"name": "Ann Lee", "email": "ann.lee@gmail.com"})
    again = api.post("/petitions/denver/signatures", json={"name": "Ann", "email": "AnnLee+x@googlemail.com"})
    assert (first.status_code, first.json()) == (again.status_code, again.json()) == (202, {"status": "accepted"})


def test_unknown_petition_is_404(api):
    response = api.post("/petitions/nope/signatures", json={"name": "Ann", "email": "ann@example.org"})
    assert response.status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "a@example.org"}, "name"),
    ({"name": "Ann"}, "email"),
    ({"name": "Ann", "email": "nope"}, "email"),
    ({"name": "=cmd|' /C calc'!A0", "email": "a@example.org"}, "name"),
    ({"name": "Ann http://spam.example", "email": "a@example.org"}, "name"),
    ({"name": "Ann", "email": "a@example.org", "country": "ZZ"}, "country"),
    ({"name": "Ann", "email": "a@example.org", "postcode": "<script>"}, "postcode"),
    ({"name": "Ann", "email": "a@example.org", "comment": "c" * 501}, "comment"),
    ({"name": "Ann", "email": "a@example.org", "updates": "maybe"}, "updates"),
    ({"name": "Ann\u0000", "email": "a@example.org"}, "name"),
    ({"name": "Ann", "email": "a@example.org", "nmae": "typo"}, "nmae"),
])
def test_invalid_signatures_get_a_message_for_the_field(api, petition, body, field):
    response = api.post(f"/petitions/{petition['id']}/signatures", json=body)
    assert response.status_code == 422
    assert field in response.json()["errors"], response.json()


@pytest.mark.parametrize(("content", "content_type"), [
    (b"name=Ann&email=a@example.org", "application/x-www-form-urlencoded"),
    (b"{not json", "application/json"),
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b'{"name": "\\ud800", "email": "a@example.org"}', "application/json"),
    (b'{"name": 12, "email": ["a@example.org"]}', "application/json"),
    ("\u00ff".encode("latin-1"), "application/json"),
    (b"", "application/json"),
])
def test_malformed_bodies_are_4xx_never_500(api, petition, content, content_type):
    response = api.post(f"/petitions/{petition['id']}/signatures", content=content,
                        headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


def test_oversized_body_is_413(api, petition):
    huge = json.dumps({"name": "Ann", "email": "a@example.org", "comment": "x" * 20000})
    response = api.post(f"/petitions/{petition['id']}/signatures", content=huge,
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "16384" in response.json()["detail"]

    def chunks():
        yield b'{"name": "Ann", "comment": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}'

    streamed = api.post(f"/petitions/{petition['id']}/signatures", content=chunks(),
                        headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_request_id_is_echoed_or_made(api, petition):
    given = api.get("/petitions/denver", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    assert len(api.get("/petitions/denver").headers["X-Request-ID"]) == 32


def test_the_organizer_edits_the_story_and_the_page_shows_it(api, petition):
    ref = petition["id"]
    assert api.patch(f"/petitions/{ref}", json={"story": "New."}).status_code == 401
    assert api.patch(f"/petitions/{ref}", json={"story": ""}, headers=AUTH).status_code == 422
    assert api.patch(f"/petitions/{ref}", json={"title": "x"}, headers=AUTH).status_code == 422
    changed = api.patch(f"/petitions/{ref}", json={"story": "Now with news.\n\nAnd more."}, headers=AUTH)
    assert changed.status_code == 200 and changed.json()["story"] == "Now with news.\n\nAnd more."
    assert api.get(f"/petitions/{ref}").json()["story"] == "Now with news.\n\nAnd more."
    page = api.get("/p/denver")
    assert "Now with news." in page.text and "First paragraph." not in page.text
    again = api.patch(f"/petitions/{ref}", json={"story": "Now with news.\n\nAnd more."}, headers=AUTH)
    assert again.status_code == 200
    payloads = outbox_payloads(api)
    updated = [e for e in payloads if e["type"] == "PetitionUpdated"]
    assert [e["fields"] for e in updated] == [["story"]]  # once: the same text again changes nothing
    assert "Now with news" not in json.dumps(updated)  # the text stays in signing


def test_a_closed_petition_refuses_signatures_and_says_so(api, petition):
    ref = petition["id"]
    signer = {"name": "Ana Lima", "email": "ana@example.org"}
    assert api.post(f"/petitions/{ref}/signatures", json=signer).status_code == 202
    assert api.post(f"/petitions/{ref}/signatures", json={"name": "Di Oz", "email": "di@example.org"}).status_code == 202
    tokens = dict(api.database.query("SELECT email, confirm_token FROM signatures"))
    assert api.get(f"/c/{tokens['di@example.org']}", follow_redirects=False).status_code == 303  # counts
    assert api.post(f"/petitions/{ref}/closure", json={"outcome": "closed"}).status_code == 401
    assert api.post(f"/petitions/{ref}/closure", json={"outcome": "paused"}, headers=AUTH).status_code == 422
    closed = api.post(f"/petitions/{ref}/closure", json={"outcome": "closed"}, headers=AUTH)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    # A link followed after the close counts no more, and says why; one confirmed before still stands.
    late = api.get(f"/c/{tokens['ana@example.org']}", follow_redirects=False)
    assert late.status_code == 409 and "This petition closed before you confirmed" in late.text
    assert api.get(f"/c/{tokens['di@example.org']}", follow_redirects=False).status_code == 303
    assert sorted(api.database.query("SELECT email, state FROM signatures")) == [
        ("ana@example.org", "pending"), ("di@example.org", "confirmed")]
    refused = api.post(f"/petitions/{ref}/signatures", json={"name": "Bo Li", "email": "bo@example.org"})
    assert refused.status_code == 409 and refused.json() == {"detail": "This petition is closed: it takes no more signatures."}
    repeat = api.post(f"/petitions/{ref}/signatures", json=signer)  # even a repeat: nothing is taken now
    assert repeat.status_code == 409
    page = api.get("/p/denver")
    assert "This petition is closed" in page.text and "data-sign-form" not in page.text
    form = api.post("/p/denver", data={"name": "Cy Ro", "email": "cy@example.org", "country": "GB"})
    assert form.status_code == 409 and "This petition is closed" in form.text

    won = api.post(f"/petitions/{ref}/closure", json={"outcome": "won"}, headers=AUTH)
    assert won.status_code == 200 and won.json()["status"] == "won"
    assert api.post(f"/petitions/{ref}/closure", json={"outcome": "won"}, headers=AUTH).status_code == 200
    reopened = api.post(f"/petitions/{ref}/closure", json={"outcome": "closed"}, headers=AUTH)
    assert reopened.status_code == 409 and "stays won" in reopened.json()["detail"]
    assert "Victory!" in api.get("/p/denver").text
    assert api.post(f"/petitions/{ref}/signatures", json=signer).json()["detail"].startswith("This petition has won")
    payloads = outbox_payloads(api)
    assert [e["outcome"] for e in payloads if e["type"] == "PetitionClosed"] == ["closed", "won"]
    # The two signatures before the close (confirmation is on by default), the one confirmed before
    # it; nothing after.
    assert [e["type"] for e in payloads if "signature_id" in e] == [
        "ConfirmationRequested", "ConfirmationRequested", "SignatureAdded"]


def outbox_payloads(api) -> list[dict]:
    """The events signing queued (its outbox), oldest first."""
    rows = api.database.query("SELECT payload FROM outbox ORDER BY id")
    return [json.loads(bytes(payload)) for (payload,) in rows]


def test_without_moderation_a_started_petition_goes_live_when_its_organizer_confirms(tmp_path, nats_url, backend):
    from services.signing.organizers import link_token

    database = Database(backend, "signing", tmp_path)
    settings = SigningSettings(_env_file=None, admin_token=TOKEN, DATABASE_URL=database.url, NATS_URL=nats_url,
                               moderate_petitions=False)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as api:
            started = api.post("/start", data={"title": "Plant more trees", "target": "The council",
                                               "story": "Shade.", "name": "Ana Lima", "email": "ana@example.org"})
            assert started.status_code == 202 and "A moderator" not in started.text
            assert api.get("/p/plant-more-trees").status_code == 404
            (link_id,), = database.query("SELECT id FROM organizer_links")
            followed = api.get(f"/o/{link_token(settings.mailbox_secret(), link_id)}", follow_redirects=False)
            assert followed.status_code == 303 and followed.headers["location"] == "/dashboard/plant-more-trees"
            assert api.get("/p/plant-more-trees").status_code == 200
            assert api.get("/petitions/plant-more-trees").json()["status"] == "open"
            payloads = [json.loads(bytes(p)) for (p,) in database.query("SELECT payload FROM outbox ORDER BY id")]
            assert [(e["type"], e.get("status"), e.get("live"), e.get("purpose")) for e in payloads] == [
                ("PetitionCreated", "unconfirmed", None, None), ("SignInRequested", None, None, "confirm"),
                ("OrganizerConfirmed", None, True, None)]
    finally:
        database.drop()


def test_starting_petitions_is_limited_per_client_and_per_organizer_address(tmp_path, nats_url, backend):
    """Each start emails the address given: too many from one client, or to one address, get a 429
    with the form and a message, and no petition and no email."""
    database = Database(backend, "signing", tmp_path)
    settings = SigningSettings(_env_file=None, admin_token=TOKEN, DATABASE_URL=database.url, NATS_URL=nats_url,
                               start_rate_limit="2/hour", trusted_proxies="127.0.0.1")

    def start(api, title: str, email: str, client: str):
        return api.post("/start", headers={"X-Forwarded-For": client},
                        data={"title": title, "target": "The council", "story": "Why.", "name": "Ana Lima",
                              "email": email})

    try:
        with TestClient(create_app(settings), raise_server_exceptions=False, client=("127.0.0.1", 50000)) as api:
            assert start(api, "First", "ana@example.org", "203.0.113.1").status_code == 202
            assert start(api, "Second", "ben@example.org", "203.0.113.1").status_code == 202
            third = start(api, "Third", "cy@example.org", "203.0.113.1")  # the same client: over
            assert third.status_code == 429 and third.headers["retry-after"] == "3600"
            assert "Too many petitions were started from here" in third.text and 'value="Third"' in third.text
            assert start(api, "Fourth", "cy@example.org", "203.0.113.2").status_code == 202  # another client
            # One address from many clients: the third start for ana is refused too.
            assert start(api, "Fifth", "ana@example.org", "203.0.113.3").status_code == 202
            assert start(api, "Sixth", "ANA@example.org", "203.0.113.4").status_code == 429
            titles = sorted(title for (title,) in database.query("SELECT title FROM petitions"))
            assert titles == ["Fifth", "First", "Fourth", "Second"]
            assert len(database.query("SELECT id FROM organizer_links")) == 4
    finally:
        database.drop()


def test_wrong_tokens_are_limited_per_client(tmp_path, nats_url, backend):
    """Issue 21: the admin operations were guarded only by the token, with no bound on guesses.
    After GROUNDSWELL_TOKEN_FAILURE_LIMIT wrong tokens from one client, every attempt from it is a
    429 with Retry-After, the right token too (a guess learns nothing); another client is not
    affected. The moderators' page (HTTP Basic) and the internal API count the same way."""
    database = Database(backend, "signing", tmp_path)
    settings = SigningSettings(_env_file=None, admin_token=TOKEN, internal_token="internal-token",
                               DATABASE_URL=database.url, NATS_URL=nats_url, token_failure_limit="3/minute",
                               trusted_proxies="127.0.0.1")

    def erase(api, token: str, client: str):
        return api.post("/admin/erasure", json={"email": "nobody@example.org"},
                        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": client})

    try:
        with TestClient(create_app(settings), raise_server_exceptions=False, client=("127.0.0.1", 50000)) as api:
            assert erase(api, TOKEN, "203.0.113.1").status_code == 200  # right tokens never count
            assert [erase(api, f"guess-{i}", "203.0.113.1").status_code for i in range(3)] == [401, 401, 401]
            over = erase(api, "guess-4", "203.0.113.1")
            assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 61
            assert "Too many attempts with a wrong token" in over.json()["detail"]
            assert erase(api, TOKEN, "203.0.113.1").status_code == 429  # no oracle while over
            page = api.get("/admin/review", auth=("moderator", TOKEN), headers={"X-Forwarded-For": "203.0.113.1"})
            assert page.status_code == 429
            assert erase(api, TOKEN, "203.0.113.2").status_code == 200  # another client
            for i in range(3):
                assert api.get("/admin/review", auth=("m", f"guess-{i}"),
                               headers={"X-Forwarded-For": "203.0.113.3"}).status_code == 401
            assert api.get("/admin/review", auth=("m", TOKEN), headers={"X-Forwarded-For": "203.0.113.3"}).status_code == 429
            internal = api.post("/internal/confirmations", json={"signature_ids": []},
                                headers={"Authorization": "Bearer internal-token", "X-Forwarded-For": "203.0.113.3"})
            assert internal.status_code == 429
    finally:
        database.drop()
