"""Signing's contacts: the notifier's recipient list and organizer contact, unsubscribe, erasure.

Real SQLite and PostgreSQL, real nats-server; the app runs in-process."""

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from services.signing.app import create_app
from services.signing.domain import mailbox_key
from services.signing.settings import DEVELOPMENT_MAILBOX_KEY, SigningSettings
from tests.databases import Database
from tests.integration.test_signing_api import AUTH, TOKEN, petition_body

INTERNAL = {"Authorization": "Bearer internal-token"}


def signing_api(tmp_path, nats_url, backend, **settings):
    """Signing in-process on a real database and nats-server; no client limited."""
    database = Database(backend, "signing", tmp_path)
    settings = SigningSettings(_env_file=None, admin_token=TOKEN, internal_token="internal-token",
                               DATABASE_URL=database.url, NATS_URL=nats_url, sign_rate_limit="", **settings)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            client.database = database
            yield client
    finally:
        database.drop()


@pytest.fixture
def api(tmp_path, nats_url, backend):
    """Signatures count on signing (no confirmation)."""
    yield from signing_api(tmp_path, nats_url, backend, public_url="https://petitions.example.org",
                           confirm_signatures=False)


def recipients(api, petition_id: str, **params) -> dict:
    params.setdefault("signed_before", (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat())
    response = api.get(f"/internal/petitions/{petition_id}/recipients", params=params, headers=INTERNAL)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def signed(api) -> str:
    petition = api.post("/petitions", json=petition_body(slug="contacts"), headers=AUTH).json()
    for i in range(7):
        body = {"name": f"Signer {i}", "email": f"signer{i}@example.org", "updates": i != 3}
        assert api.post(f"/petitions/{petition['id']}/signatures", json=body).status_code == 202
    return petition["id"]


def test_the_recipient_list_needs_the_internal_token(api, signed):
    url = f"/internal/petitions/{signed}/recipients?signed_before=2030-01-01T00:00:00Z"
    assert api.get(url).status_code == 401
    wrong = api.get(url, headers={"Authorization": f"Bearer {TOKEN}"})  # the admin token is not it
    assert wrong.status_code == 401 and "GROUNDSWELL_INTERNAL_TOKEN" in wrong.json()["detail"]
    assert api.get(f"/internal/petitions/{signed}/recipients", headers=INTERNAL).status_code == 422


def test_recipients_are_the_opted_in_pages_in_order(api, signed):
    first = recipients(api, signed, limit=4)
    assert len(first["recipients"]) == 4 and first["next"] == first["recipients"][-1]["signature_id"]
    rest = recipients(api, signed, limit=4, after=first["next"])
    assert rest["next"] is None
    everyone = first["recipients"] + rest["recipients"]
    assert sorted(r["email"] for r in everyone) == sorted(f"signer{i}@example.org" for i in range(7) if i != 3)
    assert [r["signature_id"] for r in everyone] == sorted(r["signature_id"] for r in everyone)
    assert all(r["unsubscribe_url"].startswith("https://petitions.example.org/u/") for r in everyone)
    before_anyone = recipients(api, signed, signed_before="2020-01-01T00:00:00+00:00")
    assert before_anyone == {"recipients": [], "next": None}


def test_get_asks_and_post_unsubscribes_at_once(api, signed):
    target = recipients(api, signed)["recipients"][0]
    path = target["unsubscribe_url"].removeprefix("https://petitions.example.org")
    page = api.get(path)
    assert page.status_code == 200 and "Unsubscribe from updates?" in page.text
    assert target["email"] in {r["email"] for r in recipients(api, signed)["recipients"]}  # a GET changes nothing
    done = api.post(path, content="List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert target["email"] not in {r["email"] for r in recipients(api, signed)["recipients"]}
    assert api.post(path).status_code == 200  # again: still unsubscribed, no error
    assert api.get("/u/not-a-token").status_code == 404
    assert api.post("/u/not-a-token").status_code == 404


def test_erasure_removes_the_contact_and_keeps_the_signature(api, signed):
    assert api.post("/admin/erasure", json={"email": "signer2@example.org"}).status_code == 401
    bad = api.post("/admin/erasure", json={"email": "not-an-email"}, headers=AUTH)
    assert bad.status_code == 422 and "email" in bad.json()["errors"]
    erased = api.post("/admin/erasure", json={"email": "Signer2@Example.org"}, headers=AUTH)
    assert erased.status_code == 200 and erased.json() == {"erased": 1, "signatures": 1, "petitions": 0}
    assert "signer2@example.org" not in {r["email"] for r in recipients(api, signed)["recipients"]}
    assert len(recipients(api, signed)["recipients"]) == 5
    again = api.post("/admin/erasure", json={"email": "signer2@example.org"}, headers=AUTH)
    assert again.json() == {"erased": 0, "signatures": 0, "petitions": 0}
    rows = api.database.query("SELECT name, email, mailbox_key, postcode, comment, unsubscribe_token "
                              "FROM signatures WHERE erased_at IS NOT NULL")
    assert len(rows) == 1
    name, email, key, postcode, comment, token = rows[0]
    assert (name, email, postcode, comment, token) == ("", "", None, None, None)
    assert key == mailbox_key(DEVELOPMENT_MAILBOX_KEY.encode(), "signer2@example.org")  # a keyed hash stays
    dump = repr(api.database.query("SELECT * FROM signatures"))
    assert "signer2" not in dump.lower()
    assert not [k for (k,) in api.database.query("SELECT mailbox_key FROM signatures") if "@" in k]
    assert api.database.query("SELECT count(*) FROM signatures")[0][0] == 7  # it still counts

    # The same mailbox signing again, in any spelling, is a repeat: counted once, nothing stored.
    for again in ("signer2@example.org", "SIGNER2+again@example.org"):
        response = api.post(f"/petitions/{signed}/signatures", json={"name": "Signer Two", "email": again})
        assert response.status_code == 202
    assert api.database.query("SELECT count(*) FROM signatures")[0][0] == 7
    assert api.database.query("SELECT count(*) FROM outbox WHERE subject LIKE '%.SignatureAdded'")[0][0] == 7


def test_the_organizers_contact_is_for_the_notifier_and_never_in_an_event(api):
    petition = api.post("/petitions", json=petition_body(slug="organized"), headers=AUTH).json()
    url = f"/internal/petitions/{petition['id']}/organizer"
    assert api.get(url).status_code == 401
    assert api.get(url, headers=INTERNAL).json() == {"name": "Patrick Leonard", "email": "patrick@example.org",
                                                     "review_note": None, "language": "en", "milestone_emails": True}
    assert api.get("/internal/petitions/6d44301b-d7d2-4417-aba7-2cc1407387e3/organizer",
                   headers=INTERNAL).status_code == 404
    payloads = [bytes(p).decode() for (p,) in api.database.query("SELECT payload FROM outbox")]
    assert len(payloads) == 1 and '"PetitionCreated"' in payloads[0]
    assert "patrick" not in payloads[0].lower()  # issue 9: v1 carried name and email


def test_erasure_covers_organizers(api):
    """Issue 9: erasing an organizer answered {"erased": 0}. Now their name and address go, their
    petition stays up without them, the notifier is told there is no one to write to, and every
    signing replica hears (OrganizerErased) that the pages must be rendered again."""
    first = api.post("/petitions", json=petition_body(slug="first"), headers=AUTH).json()
    second = api.post("/petitions", json=petition_body(
        slug="second", organizer={"name": "Patrick Leonard", "email": "Patrick+two@Example.org"}), headers=AUTH).json()
    other = api.post("/petitions", json=petition_body(
        slug="other", organizer={"name": "Someone Else", "email": "else@example.org"}), headers=AUTH).json()
    assert api.post(f"/petitions/{first['id']}/signatures",
                    json={"name": "Patrick Leonard", "email": "patrick@example.org"}).status_code == 202

    erased = api.post("/admin/erasure", json={"email": "patrick@example.org"}, headers=AUTH)
    assert erased.status_code == 200 and erased.json() == {"erased": 3, "signatures": 1, "petitions": 2}
    for petition in (first, second):
        assert api.get(f"/internal/petitions/{petition['id']}/organizer", headers=INTERNAL).status_code == 410
        assert api.get(f"/petitions/{petition['id']}").json()["organizer"] == {"name": "The organizer"}
    assert api.get(f"/internal/petitions/{other['id']}/organizer", headers=INTERNAL).json()["name"] == "Someone Else"
    page = api.get("/p/first")
    assert page.status_code == 200 and "Patrick" not in page.text and "Started by <strong><bdi>The organizer" in page.text
    dump = repr(api.database.query("SELECT * FROM petitions")) + repr(api.database.query("SELECT * FROM outbox"))
    assert "patrick" not in dump.lower()
    events = sorted(s for (s,) in api.database.query("SELECT subject FROM outbox WHERE subject LIKE '%.OrganizerErased'"))
    assert events == sorted(f"petitions.{p['id']}.events.OrganizerErased" for p in (first, second))
    assert api.post("/admin/erasure", json={"email": "patrick@example.org"}, headers=AUTH).json()["erased"] == 0


@pytest.fixture
def confirming(tmp_path, nats_url, backend):
    """Signing with confirmation by email on, as the product's default is."""
    yield from signing_api(tmp_path, nats_url, backend, public_url="http://testserver", confirm_signatures=True)


def test_erasure_voids_every_link_the_mailbox_was_sent(confirming):
    """Issue 21: an erased signer's pending confirmation link still counted (303, the count from 1
    to 2 for a row with no name or email). Now the link is void, and so are the erased organizer's
    sign-in links and dashboard sessions."""
    from services.signing.organizers import link_token

    api = confirming
    petition = api.post("/petitions", json=petition_body(slug="voided"), headers=AUTH).json()
    for who in ("ada", "grace"):
        body = {"name": who.title(), "email": f"{who}@example.org"}
        assert api.post(f"/petitions/{petition['id']}/signatures", json=body).status_code == 202
    tokens = dict(api.database.query("SELECT email, confirm_token FROM signatures"))
    assert set(tokens) == {"ada@example.org", "grace@example.org"}
    assert api.get(f"/c/{tokens['grace@example.org']}", follow_redirects=False).status_code == 303  # grace counts

    # The organizer asks for a sign-in link and signs in with another one.
    assert api.post("/p/voided/organizer").status_code == 202
    link_ids = [link for (link,) in api.database.query("SELECT id FROM organizer_links")]
    secret = f"{DEVELOPMENT_MAILBOX_KEY}".encode()
    signed_in = api.get(f"/o/{link_token(secret, link_ids[0])}", follow_redirects=False)
    assert signed_in.status_code == 303 and api.get("/dashboard/voided").status_code == 200
    api.database.execute(f"UPDATE organizer_links SET used_at = NULL WHERE id = '{link_ids[0]}'")  # usable again

    erased = api.post("/admin/erasure", json={"email": "ada@example.org"}, headers=AUTH)
    assert erased.json() == {"erased": 1, "signatures": 1, "petitions": 0}
    assert api.post("/admin/erasure", json={"email": "patrick@example.org"}, headers=AUTH).json()["petitions"] == 1

    followed = api.get(f"/c/{tokens['ada@example.org']}", follow_redirects=False)
    assert followed.status_code == 404  # void: it never counts
    assert api.database.query("SELECT state, count(*) FROM signatures GROUP BY state ORDER BY state") == [
        ("confirmed", 1), ("pending", 1)]
    added = api.database.query("SELECT count(*) FROM outbox WHERE subject LIKE '%.SignatureAdded'")[0][0]
    assert added == 1  # grace's only
    assert api.get(f"/o/{link_token(secret, link_ids[0])}", follow_redirects=False).status_code == 401
    assert api.get("/dashboard/voided").status_code == 401  # the open session is gone too
