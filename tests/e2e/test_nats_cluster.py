"""A three-node NATS cluster loses its stream leader to kill -9 in the middle of signing.

The stream (and the COUNTS bucket) are at R3; the services are given all three servers. While 16
clients sign, the node leading the PETITIONS stream is killed with SIGKILL once a third of the
signatures are in. Signing never answers 5xx (it answers after its database commit; the outbox
carries events over the election), the remaining two nodes elect a new leader, and the count
becomes exactly the number of 202s: nothing lost, nothing counted twice."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import nats
import pytest

from contract.events import STREAM
from tests.harness import eventually
from tests.system import System

pytestmark = pytest.mark.e2e

SIGNERS = 1500
KILL_AFTER = 500


async def stream_leader(url: str) -> str | None:
    nc = await nats.connect(url.split(","), connect_timeout=2, max_reconnect_attempts=1)
    try:
        info = await nc.jetstream(timeout=3).stream_info(STREAM)
        assert info.config.num_replicas == 3
        return info.cluster.leader if info.cluster else None
    finally:
        await nc.close()


def leader(system: System) -> str | None:
    try:
        return asyncio.run(stream_leader(",".join(node.url for node in system.nats.alive())))
    except AssertionError:
        raise
    except Exception:  # noqa: BLE001 - an election is under way: ask again
        return None


@pytest.fixture
def system(tmp_path):
    running = System(tmp_path, "sqlite", nats_cluster=True)
    try:
        yield running.start()
    finally:
        running.stop()


def test_killing_the_stream_leader_mid_load_loses_and_doubles_nothing(system):
    petition = system.create_petition("cluster")
    eventually(lambda: leader(system) is not None, timeout_s=60, message="the stream has a leader")
    system.wait_for_count(petition["id"], 0)
    first_leader = leader(system)

    statuses: dict[int, int] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def sign(client: httpx.Client, i: int) -> None:
        response = client.post(f"{system.signing.url}/petitions/{petition['id']}/signatures",
                               json={"name": f"Signer {i}", "email": f"cluster-{i}@example.org"}, timeout=60)
        with lock:
            statuses[i] = response.status_code
            if len(statuses) == KILL_AFTER and not killed.is_set():
                killed.set()
                system.nats.node(first_leader).kill()  # SIGKILL: no goodbye to the cluster

    with httpx.Client(limits=httpx.Limits(max_connections=16)) as client, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: sign(client, i), range(SIGNERS)))

    assert killed.is_set()
    assert sorted(set(statuses.values())) == [202], {s for s in statuses.values() if s != 202}
    eventually(lambda: leader(system) not in (None, first_leader), timeout_s=60, message="a new stream leader")
    system.wait_for_count(petition["id"], SIGNERS, timeout_s=120)
    assert system.query("signing", "SELECT count(*) FROM signatures") == [(SIGNERS,)]
    eventually(lambda: system.query("signing", "SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)],
               timeout_s=60, message="every event published")
    assert system.query("counter", "SELECT count(*) FROM processed_events WHERE type = 'SignatureAdded'") == [(SIGNERS,)]
    assert system.count(petition["id"]) == SIGNERS  # still exact once everything has settled
    for service in system.services.values():  # readiness is checked every 2 s beside the work
        try:
            eventually(service.ready, timeout_s=30, message=f"{service.name} ready again")
        except AssertionError:
            raise AssertionError(f"{service.name} did not recover by itself: {service.readiness()}") from None
