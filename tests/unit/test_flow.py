"""Whether events flow (shared/flow.py): each part's verdict from plain fakes, and what an
operator's alerting sees."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from shared.flow import FlowWatch, local_folders


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Relay:
    def __init__(self) -> None:
        self.waiting, self.oldest, self.silent_s = 0, None, 0.0

    async def recent_backlog(self):
        return self.waiting, self.oldest

    def unacknowledged_for_s(self) -> float:
        return self.silent_s


async def test_an_outbox_whose_oldest_event_waits_too_long_stalls_and_recovers(capsys):
    relay, watch = Relay(), FlowWatch(stall_after_s=30)
    watch.watch_outbox(relay)
    await watch.check_once()
    assert watch.checks() == {"outbox": True, "broker": True}
    relay.waiting, relay.oldest = 7, datetime.now(timezone.utc) - timedelta(seconds=31)
    await watch.check_once()
    assert watch.checks() == {"outbox": False, "broker": True} and watch.details["outbox"]["unpublished"] == 7
    relay.silent_s = 11  # connected, publishing, nothing acknowledged: the broker stopped storing
    await watch.check_once()
    assert watch.checks() == {"outbox": False, "broker": False}
    relay.waiting, relay.oldest, relay.silent_s = 0, None, 0
    await watch.check_once()
    assert watch.checks() == {"outbox": True, "broker": True}


async def test_a_consumer_stalls_only_when_events_wait_and_nothing_moves():
    clock = Clock()
    state = SimpleNamespace(num_pending=0, num_ack_pending=0, delivered=SimpleNamespace(stream_seq=10),
                            ack_floor=SimpleNamespace(stream_seq=10))

    async def info():
        return state

    watch = FlowWatch(stall_after_s=30, clock=clock)
    watch.watch_consumer(info, "counter")
    await watch.check_once()
    clock.now += 3600  # idle for an hour with nothing waiting: flowing
    await watch.check_once()
    assert watch.checks() == {"consumer": True}
    state.num_pending = 5  # events arrive and nothing takes them
    await watch.check_once()
    clock.now += 31
    await watch.check_once()
    assert watch.checks() == {"consumer": False} and watch.details["consumer"]["waiting"] == 5
    state.delivered = SimpleNamespace(stream_seq=12)  # it takes some: flowing again, though behind
    await watch.check_once()
    assert watch.checks() == {"consumer": True}
    clock.now += 20
    state.ack_floor = SimpleNamespace(stream_seq=11)
    await watch.check_once()
    clock.now += 20
    await watch.check_once()
    assert watch.checks() == {"consumer": True}  # 20 s since the last move: within the bound


async def test_a_folder_short_of_space_stalls_and_a_check_that_fails_keeps_the_last_verdict(tmp_path):
    watch = FlowWatch(min_free_bytes=1 << 60)  # more than any disk has
    watch.watch_storage([tmp_path])
    await watch.check_once()
    assert watch.checks() == {"storage": False} and str(tmp_path) in watch.details["storage"]["free_mb"]
    watch.min_free_bytes = 0
    await watch.check_once()
    assert watch.checks() == {"storage": True}

    async def broken():
        raise ConnectionError("NATS away")

    watch._checks["consumer"] = broken
    await watch.check_once()
    assert watch.checks() == {"storage": True, "consumer": True}


def test_the_local_folders_are_a_sqlite_database_s_and_those_given(tmp_path):
    assert local_folders(f"sqlite+aiosqlite:///{tmp_path}/signing.db", tmp_path / "public") == [tmp_path, tmp_path / "public"]
    assert local_folders("postgresql+asyncpg://u:p@db/signing", None) == []
