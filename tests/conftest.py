import pytest

from tests.system import System


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    """Each integration and end-to-end test runs on SQLite and on PostgreSQL."""
    return request.param


@pytest.fixture
def system(tmp_path, backend):
    """The whole system, started fresh for one test, on the given database backend."""
    running = System(tmp_path, backend)
    try:
        yield running.start()
    finally:
        running.stop()
