"""Each service's migrations: from empty, again as a no-op, concurrently, and matching the models."""

import importlib
import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from shared.db import create_engine
from contract.events import CURRENT_VERSIONS
from shared.migrations import alembic_config, migrate
from tests.databases import Database
from tests.contract.test_golden_events import GOLDEN
from tests.harness import ROOT

SERVICES = ["signing", "counter", "notifier"]


@pytest.fixture
def database(tmp_path, backend, request):
    created = Database(backend, request.node.callspec.params["service"], tmp_path)
    yield created
    created.drop()


def head(service: str) -> str:
    return ScriptDirectory.from_config(alembic_config(service)).get_current_head()


async def schema_differences(service: str, url: str) -> list:
    metadata = importlib.import_module(f"services.{service}.db").metadata
    engine = create_engine(url)
    async with engine.connect() as conn:
        # The counter's search table is made per database by its migration, outside the metadata.
        options = {"include_name": lambda name, kind, parent: not (kind == "table" and name.startswith("petition_search"))}
        differences = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c, opts=options), metadata))
    await engine.dispose()
    return differences


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_from_empty_then_again_as_a_no_op(service, database):
    await migrate(service, database.url)
    assert database.query("SELECT version_num FROM alembic_version") == [(head(service),)]
    assert await schema_differences(service, database.url) == []
    await migrate(service, database.url)
    assert database.query("SELECT version_num FROM alembic_version") == [(head(service),)]


@pytest.mark.parametrize("service", SERVICES)
def test_two_concurrent_migrate_runs_both_succeed(service, database):
    env = {"DATABASE_URL": database.url, "PATH": "/usr/bin:/bin", "GROUNDSWELL_LOG_FORMAT": "json"}
    runs = [
        subprocess.Popen([sys.executable, "-m", "services", service, "migrate"], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    results = [(run.wait(timeout=120), run.stdout.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    assert database.query("SELECT version_num FROM alembic_version") == [(head(service),)]


async def test_signing_0004_keys_organizers_and_takes_them_out_of_the_outbox(backend, tmp_path):
    """Issue 9: outbox rows kept PetitionCreated v1 with the organizer's name and email, published
    or not. The migration rewrites them as version 2 and keys the organizer for erasure."""
    from alembic import command

    from services.signing.domain import mailbox_key
    from services.signing.settings import DEVELOPMENT_MAILBOX_KEY

    database = Database(backend, "signing", tmp_path)
    try:
        v1 = (GOLDEN / "PetitionCreated.v1.json").read_bytes()
        engine = create_engine(database.url)
        async with engine.connect() as conn:
            def to_0003(sync_conn):
                config = alembic_config("signing")
                config.attributes["connection"] = sync_conn
                command.upgrade(config, "0003")
            await conn.run_sync(to_0003)
            at = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
            await conn.execute(text(
                "INSERT INTO petitions (id, slug, title, target, story, organizer_name, organizer_email, created_at) "
                "VALUES (:id, 's', 'T', 'X', 'S', 'Patrick Leonard', 'patrick.leonard@example.org', :at)"),
                {"id": json.loads(v1)["petition_id"], "at": at})
            for published in (at, None):
                await conn.execute(text(
                    "INSERT INTO outbox (event_id, subject, payload, created_at, published_at) "
                    "VALUES (:event_id, :subject, :payload, :at, :published)"),
                    {"event_id": str(uuid.uuid4()), "subject": f"petitions.{json.loads(v1)['petition_id']}.events.PetitionCreated",
                     "payload": v1, "at": at, "published": published})
            await conn.commit()
        await engine.dispose()
        await migrate("signing", database.url, mailbox_secret=DEVELOPMENT_MAILBOX_KEY.encode())
        payloads = [bytes(p) for (p,) in database.query("SELECT payload FROM outbox")]
        assert len(payloads) == 2
        for payload in payloads:
            event = json.loads(payload)
            # Brought up to the current version (0004 reads with today's upcasters): no contact in it.
            assert event["schema_version"] == CURRENT_VERSIONS["PetitionCreated"]
            assert "organizer" not in event and b"Patrick" not in payload
            assert event["event_id"] == json.loads(v1)["event_id"]  # the same event, for dedupe downstream
        assert database.query("SELECT organizer_mailbox_key FROM petitions") == [
            (mailbox_key(DEVELOPMENT_MAILBOX_KEY.encode(), "patrick.leonard@example.org"),)]
    finally:
        database.drop()
