"""The supporter-email throttle, on a fake clock (no real waiting)."""

from services.notifier.delivery import Throttle


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_batches_are_spread_to_the_configured_rate():
    fake = FakeTime()
    throttle = Throttle(20.0, clock=fake.clock, sleep=fake.sleep)
    started = fake.now
    for _ in range(10):  # 10 batches of 25 = 250 emails at 20/s
        await throttle.take(25)
    # The first batch goes at once; the other nine wait for their predecessors' 1.25 s each.
    assert fake.now - started == 9 * 1.25
    assert fake.slept == [1.25] * 9


async def test_idle_time_is_not_saved_up_for_a_burst():
    fake = FakeTime()
    throttle = Throttle(10.0, clock=fake.clock, sleep=fake.sleep)
    await throttle.take(10)
    fake.now += 60  # a quiet minute
    await throttle.take(10)
    await throttle.take(10)
    assert fake.slept == [1.0]  # the third batch still waits for the second's second
