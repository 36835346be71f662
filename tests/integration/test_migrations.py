"""Each service's migrations: from empty, again as a no-op, concurrently, and matching the models."""

import importlib
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from shared.db import create_engine
from shared.migrations import alembic_config, migrate
from tests.databases import Database
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
        differences = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
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
