"""PostgreSQL stopped under signing and the counter: 503 with Retry-After and a body naming what is
down (never a 500), /readyz says 503, and both recover by themselves when it is back. The server
is the test's own (tests/pgserver.py), so it can be stopped."""

import uuid

import pytest
from fastapi.testclient import TestClient

from services.counter.app import create_app as create_counter
from services.counter.settings import CounterSettings
from services.signing.app import create_app as create_signing
from services.signing.settings import SigningSettings
from tests.databases import Database
from tests.harness import eventually
from tests.pgserver import PostgresServer

TOKEN = "test-admin-token"


@pytest.fixture
def postgres():
    server = PostgresServer().start()
    yield server
    server.destroy()


def check_unavailable(response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["unavailable"] == "database" and "Retry after 5 seconds" in body["detail"]


def test_signing_answers_503_while_postgres_is_down_and_recovers(tmp_path, nats_url, postgres):
    database = Database("postgres", "signing", tmp_path, server=postgres.url)
    settings = SigningSettings(_env_file=None, admin_token=TOKEN, DATABASE_URL=database.url, NATS_URL=nats_url)
    with TestClient(create_signing(settings), raise_server_exceptions=False) as api:
        created = api.post("/petitions", headers={"Authorization": f"Bearer {TOKEN}"}, json={
            "title": "Fix the bridge", "target": "The council", "story": "Story.",
            "organizer": {"name": "Organizer", "email": "organizer@example.org"}})
        assert created.status_code == 201, created.text
        petition = created.json()
        sign = f"/petitions/{petition['id']}/signatures"
        accepted = []
        for n in range(5):
            assert api.post(sign, json={"name": "Ana Lima", "email": f"before{n}@example.org"}).status_code == 202
            accepted.append(f"before{n}@example.org")

        postgres.stop("fast")
        for n in range(3):  # the fast path (JSON) and the FastAPI routes alike
            check_unavailable(api.post(sign, json={"name": "Ana Lima", "email": f"down{n}@example.org"}))
        check_unavailable(api.post(f"/p/{petition['slug']}", data={"name": "Ana Lima", "email": "form@example.org"}))
        check_unavailable(api.get(f"/petitions/{uuid.uuid4()}"))  # not cached: a read that needs the database
        assert api.get("/readyz").status_code == 503 and api.get("/readyz").json()["checks"]["database"] is False
        assert api.get("/livez").status_code == 200  # alive: a restart would not cure this

        postgres.start()
        eventually(lambda: api.get("/readyz").status_code == 200, message="signing ready again")
        for n in range(5):
            response = api.post(sign, json={"name": "Ana Lima", "email": f"after{n}@example.org"})
            assert response.status_code == 202, response.text
            accepted.append(f"after{n}@example.org")
    stored = {row[0] for row in database.query(f"SELECT email FROM signatures WHERE petition_id = '{petition['id']}'")}
    assert stored == set(accepted)  # every 202 stored; nothing answered 503 was
    database.drop()


def test_the_counter_answers_503_while_postgres_is_down_and_recovers(tmp_path, nats_url, postgres):
    database = Database("postgres", "counter", tmp_path, server=postgres.url)
    settings = CounterSettings(_env_file=None, DATABASE_URL=database.url, NATS_URL=nats_url)
    with TestClient(create_counter(settings), raise_server_exceptions=False) as api:
        missing = f"/petitions/{uuid.uuid4()}/count"
        assert api.get(missing).status_code == 404
        postgres.stop("fast")
        check_unavailable(api.get(missing))
        check_unavailable(api.get(f"{missing}/events"))
        assert api.get("/readyz").status_code == 503
        postgres.start()
        eventually(lambda: api.get("/readyz").status_code == 200, message="counter ready again")
        assert api.get(missing).status_code == 404
    database.drop()
