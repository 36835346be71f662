"""Fixtures the integration tests share."""

import pytest

from tests.harness import NatsServer


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    """A real nats-server (from the wheel) on a free port, one per test module."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def nats_server(tmp_path):
    """A real nats-server of the test's own, with its own store (a test may stop or kill it)."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()
