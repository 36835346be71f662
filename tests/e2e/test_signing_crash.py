"""kill -9 of signing while a batch is being committed: every 202 is counted, nothing twice.

Two kill points, each chosen by state, not by timing:
- under load, right after the N-th 202 (batches are committing back to back, so the kill lands
  in one: inside its transaction, between its commit and its answers, or before its publish);
- with a batch held inside its transaction: the test takes a lock the batch's writes need, waits
  until requests are queued behind it, and kills signing there.
Afterwards the count equals the rows, every signature that got a 202 is among them, each event is
counted once, and signing again whoever got no answer is recognised as a repeat or stored once.
"""

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pytest

from tests.harness import eventually, metrics

pytestmark = pytest.mark.e2e


def body(i: int) -> dict:
    return {"name": f"Signer {i}", "email": f"crash-{i}@example.org", "country": "GB", "updates": i % 2 == 0}


class Load:
    """Signers on 16 threads; each remembers whether it got a 202, another answer, or none."""

    def __init__(self, system, petition_id: str, indexes: range) -> None:
        self.url = f"{system.signing.url}/petitions/{petition_id}/signatures"
        self.indexes = indexes
        self.accepted: set[int] = set()
        self.unanswered: set[int] = set()
        self.other: dict[int, int] = {}
        self.lock = threading.Lock()

    def sign(self, client: httpx.Client, i: int) -> None:
        try:
            status = client.post(self.url, json=body(i), timeout=60).status_code
        except httpx.TransportError:
            with self.lock:
                self.unanswered.add(i)
            return
        with self.lock:
            if status == 202:
                self.accepted.add(i)
            else:
                self.other[i] = status

    def run(self) -> None:
        with httpx.Client(limits=httpx.Limits(max_connections=16)) as client, ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: self.sign(client, i), self.indexes))


def assert_exact(system, petition_id: str, accepted: set[int]) -> int:
    """Settled, the count equals the rows, every 202 is a row, and each event counted once."""
    system.wait_settled(timeout_s=120)
    rows = {email for (email,) in system.query(
        "signing", f"SELECT email FROM signatures WHERE petition_id = '{petition_id}'")}
    assert {body(i)["email"] for i in accepted} <= rows, "a signature that got a 202 is missing"
    system.wait_for_count(petition_id, len(rows), timeout_s=60)
    tracked = system.query("counter", f"SELECT count(*) FROM processed_events "
                                      f"WHERE petition_id = '{petition_id}' AND type = 'SignatureAdded'")
    assert tracked == [(len(rows),)]
    return len(rows)


def hold_batch_open(system, backend: str):
    """Take a lock the next batch's writes wait on; returns its release."""
    database = system.databases["signing"]
    if backend == "sqlite":
        blocker = sqlite3.connect(database.path, timeout=10, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the write lock: the batch's INSERT waits for it

        def release() -> None:
            blocker.execute("ROLLBACK")
            blocker.close()
        return release

    locked, released = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(database.plain_url)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")  # the batch inserts its signatures, then waits
                locked.set()
                await asyncio.get_running_loop().run_in_executor(None, released.wait)
                raise Rollback
        except Rollback:
            pass
        finally:
            await conn.close()

    holder = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    holder.start()
    assert locked.wait(30), "could not lock the outbox table"

    def release() -> None:
        released.set()
        holder.join(30)
    return release


class Rollback(Exception):
    """Leave the locking transaction without committing anything."""


def waiting_batch(system, backend: str) -> bool:
    """A batch's transaction is open and waiting on the lock, and more signatures queue behind it."""
    queued = metrics(system.signing)[("groundswell_commit_queue", ())]
    if backend == "sqlite":
        return queued >= 1  # one batch is inside its transaction, waiting for the write lock
    rows = system.query("signing", "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE 'INSERT INTO outbox%'")
    return rows[0][0] >= 1 and queued >= 1


def test_signing_killed_while_a_batch_commits_loses_no_202_and_counts_nothing_twice(system, backend):
    petition = system.create_petition("signing-crash")
    system.wait_for_count(petition["id"], 0)

    # 1. Under load: kill -9 right after the 300th 202.
    first = Load(system, petition["id"], range(0, 1500))
    with ThreadPoolExecutor(1) as runner:
        running = runner.submit(first.run)
        eventually(lambda: len(first.accepted) >= 300, timeout_s=120, message="300 signatures accepted")
        system.signing.kill()
        running.result()
    assert not first.other, first.other
    assert first.unanswered, "the kill should have cut some requests off"
    system.signing.start()
    counted = assert_exact(system, petition["id"], first.accepted)
    assert len(first.accepted) <= counted <= len(first.accepted) + len(first.unanswered)

    # 2. A batch held inside its transaction, requests queued behind it: kill -9 there.
    release = hold_batch_open(system, backend)
    second = Load(system, petition["id"], range(1500, 1600))
    try:
        with ThreadPoolExecutor(1) as runner:
            running = runner.submit(second.run)
            eventually(lambda: waiting_batch(system, backend), timeout_s=30, message="a batch waiting on the lock")
            system.signing.kill()
            running.result()
    finally:
        release()
    assert second.accepted == set() and not second.other  # nothing held behind the lock was answered
    assert len(second.unanswered) == 100
    system.signing.start()
    assert assert_exact(system, petition["id"], first.accepted) == counted  # the open batch left nothing

    # 3. Everyone without an answer signs again: stored once each, repeats recognised.
    retry = Load(system, petition["id"], sorted(first.unanswered | second.unanswered))
    retry.run()
    assert not retry.other and not retry.unanswered
    assert assert_exact(system, petition["id"], first.accepted | retry.accepted) == 1600
