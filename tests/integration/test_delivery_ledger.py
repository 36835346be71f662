"""The supporter delivery ledger on real SQLite and PostgreSQL: a worker whose claim ran out and
was taken over cannot mark (and so never finishes sending) what the other worker now holds."""

from services.notifier.delivery import BatchLedger
from shared.db import create_engine, sessionmaker
from shared.migrations import migrate
from tests.databases import Database


async def test_an_expired_claim_taken_over_marks_nothing(tmp_path, backend):
    database = Database(backend, "notifier", tmp_path)
    try:
        await migrate("notifier", database.url)
        engine = create_engine(database.url)
        sessions = sessionmaker(engine)
        slow = BatchLedger(sessions, lease_s=-1)  # a worker whose lease has already run out mid-send
        ids = {"sig-a": "<a@x>", "sig-b": "<b@x>"}
        token, claimed, done, held = await slow.claim("p1", 100, ids)
        assert (set(claimed), done, held) == ({"sig-a", "sig-b"}, set(), set())

        other = BatchLedger(sessions, lease_s=30)
        other_token, taken, _, _ = await other.claim("p1", 100, {"sig-a": "<a@x>"})
        assert taken == {"sig-a": 2}  # its second attempt

        assert await slow.mark_sent("p1", 100, token, ids) == {"sig-b"}  # not sig-a: no longer ours
        assert await other.mark_sent("p1", 100, other_token, ["sig-a"]) == {"sig-a"}
        assert await other.mark_sent("p1", 100, other_token, ["sig-a"]) == set()  # sent rows stay sent
        _, claimed_again, done_now, _ = await other.claim("p1", 100, ids)
        assert (set(claimed_again), done_now) == (set(), {"sig-a", "sig-b"})

        # A recipient another worker holds (its lease still running) is neither claimed nor done.
        _, first, _, _ = await other.claim("p1", 100, {"sig-c": "<c@x>"})
        assert first == {"sig-c": 1}
        _, second, done_c, held_c = await BatchLedger(sessions, lease_s=30).claim("p1", 100, {"sig-c": "<c@x>"})
        assert (second, done_c, held_c) == ({}, set(), {"sig-c"})
        await engine.dispose()
    finally:
        database.drop()
