"""PostgreSQL restarted under load: signing answers 202 or 503 (never a 500), every 202 is counted
exactly once, and every service carries on by itself (no restart from outside), the notifier's
supporter fan-out included. The server is the test's own (tests/pgserver.py)."""

import threading
from collections import Counter

import httpx
import pytest

from services.notifier.fanout import is_goal
from contract.counts import milestones_up_to
from tests.e2e.test_failures import milestones_emailed
from tests.e2e.test_pipeline import distinct_signers
from tests.harness import eventually
from tests.pgserver import PostgresServer
from tests.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture
def restartable(tmp_path):
    postgres = PostgresServer().start()
    system = System(tmp_path, "postgres", postgres_server=postgres.url)
    try:
        yield system.start(), postgres
    finally:
        system.stop()
        postgres.destroy()


def test_postgres_restarted_mid_load(restartable):
    system, postgres = restartable
    petition = system.create_petition("restart")
    system.wait_for_count(petition["id"], 0)
    signers = distinct_signers(400)
    statuses: Counter = Counter()
    accepted: list[str] = []
    outage_seen = threading.Event()
    stop = threading.Event()

    def sign_all() -> None:
        # Through the front door, as the public site does; each signer is tried until a 202 (a
        # 503 says to retry), so after the outage every signer has signed exactly once.
        with httpx.Client(timeout=30) as client:
            for signer in signers:
                while not stop.is_set():
                    response = client.post(f"{system.web.url}/petitions/{petition['id']}/signatures", json=signer)
                    statuses[response.status_code] += 1
                    if response.status_code == 202:
                        accepted.append(signer["email"])
                        break
                    if response.status_code == 503:
                        assert response.headers["Retry-After"] == "5"
                        outage_seen.set()
                        stop.wait(0.05)  # a client backing off (shorter than Retry-After, to keep the test short)
                        continue
                    return

    worker = threading.Thread(target=sign_all)
    worker.start()
    try:
        eventually(lambda: len(accepted) >= 100, message="100 signatures before the restart")
        postgres.stop("fast")
        eventually(outage_seen.is_set, message="signing saw the database go")
        eventually(lambda: not system.signing.ready(), message="signing's /readyz says 503")
        postgres.start()
        worker.join(timeout=120)
        assert not worker.is_alive()
    finally:
        stop.set()
        worker.join(timeout=30)

    assert set(statuses) <= {202, 503}, statuses
    assert statuses[202] == len(signers) and len(set(accepted)) == len(signers)
    system.wait_for_count(petition["id"], len(signers), timeout_s=90)
    system.wait_settled(timeout_s=90)
    stored = system.query("signing", f"SELECT count(*) FROM signatures WHERE petition_id = '{petition['id']}'")[0][0]
    assert stored == len(signers)
    for service in system.services.values():
        assert service.process.poll() is None, f"{service.name} exited; see {service.log_path}"
        eventually(service.ready, message=f"{service.name} ready again")
    # The notifier rode it out: each milestone once to the organizer, and each supporter fan-out finished.
    expected = milestones_up_to(len(signers))
    eventually(lambda: milestones_emailed(system, "restart") == expected, timeout_s=90,
               message=f"organizer emails for {expected}")
    supporters = {s["email"] for s in signers if s["updates"]}
    eventually(lambda: system.query("notifier", "SELECT count(*) FROM fanouts WHERE done_at IS NULL")[0][0] == 0
               and system.query("notifier", "SELECT count(*) FROM fanouts")[0][0] == len([m for m in expected if is_goal(m)]),
               timeout_s=90, message="every supporter fan-out done")
    to_supporters = [m for m in system.smtp.messages if m["To"].addresses[0].addr_spec in supporters]
    ledger = system.query("notifier", "SELECT count(*) FROM deliveries WHERE sent_at IS NOT NULL "
                                      "AND recipient <> 'organizer'")[0][0]
    assert to_supporters and len(to_supporters) == ledger  # each email recorded as sent arrived once
    assert len({m["Message-ID"] for m in to_supporters}) == len(to_supporters)  # none twice
    assert "background_task_crashed" not in "".join(s.logs() for s in system.services.values())
