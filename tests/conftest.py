import pytest

from tests.system import System


@pytest.fixture
def system(tmp_path):
    """The whole system, started fresh for one test."""
    running = System(tmp_path).start()
    yield running
    running.stop()
