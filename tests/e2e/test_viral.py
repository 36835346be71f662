"""A viral moment on the embedded default: `groundswell dev` (what `make run` starts), 20,000
signatures through the front door from wrk while a second wrk polls the count. The count ends
exact and the readers never see a 5xx. (How fast is `make bench`'s business, not this test's.)"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest

from bench import load
from tests.harness import ROOT, eventually, require_embedded_ports_free

pytestmark = pytest.mark.e2e

SIGNATURES = 20_000
WEB = "http://127.0.0.1:8080"
SEED = "tell-denvers-mayor-to-stop-obstructing-immigration-law"


@pytest.fixture
def embedded(tmp_path):
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is required in CI (.ci/run installs Debian's package)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    require_embedded_ports_free()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GROUNDSWELL_", "NATS_URL", "DATABASE_URL"))}
    env["GROUNDSWELL_LOG_LEVEL"] = "WARNING"
    # The counting pipeline under a burst from one address (wrk behind the front door): signatures
    # count on signing and no client is limited. The same burst with confirmation on is measured
    # by `make bench`; its correctness is tests/e2e/test_trust.py's.
    env["GROUNDSWELL_CONFIRM_SIGNATURES"] = "false"
    env["GROUNDSWELL_SIGN_RATE_LIMIT"] = ""
    log_path = tmp_path / "dev.log"
    process = subprocess.Popen([sys.executable, "-m", "services", "dev", "--data-dir", str(tmp_path / "data")],
                               cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        eventually(lambda: "Groundswell is running" in log_path.read_text() or process.poll() is not None,
                   timeout_s=120, message="groundswell dev up")
        assert process.poll() is None, log_path.read_text()[-3000:]
        yield tmp_path / "data"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def test_a_burst_of_20000_signatures_counts_exactly_while_readers_poll_the_count(embedded):
    petition = httpx.get(f"{WEB}/petitions/{SEED}", timeout=10).json()
    count_url = f"{WEB}/petitions/{petition['id']}/count"

    def count() -> int:
        response = httpx.get(count_url, timeout=10)
        return response.json()["count"] if response.status_code == 200 else -1

    eventually(lambda: count() == 0, message="the seed petition counted at 0")
    # 200 readers, each polling about every 100 ms, from their own wrk.
    readers = load.Background(count_url, "get.lua", [100], connections=200, duration_s=600, core=None)
    burst = load.Background(f"{WEB}/petitions/{SEED}/signatures", "sign.lua", ["viral", 0, "false", SIGNATURES],
                            connections=64, duration_s=600, core=None)
    try:
        eventually(lambda: count() == SIGNATURES, timeout_s=300, message=f"count {SIGNATURES}")
    finally:
        signed, polled = burst.stop(), readers.stop()
    assert signed.statuses == {202: SIGNATURES} and signed.socket_errors == 0
    assert polled.requests > 1000 and polled.statuses == {200: polled.requests}, polled  # no 5xx, nothing else
    assert polled.socket_errors == 0
    with sqlite3.connect(f"file:{embedded / 'signing.db'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM signatures").fetchone() == (SIGNATURES,)
    assert count() == SIGNATURES
