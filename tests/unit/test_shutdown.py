"""A service's shutdown: every background task stops, even one whose loop lost a cancellation."""

import asyncio

from shared.lifecycle import _bounded


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_and_stops_at_once():
    swallowed = 0
    running = asyncio.Event()

    async def loop_that_loses_a_cancel():
        nonlocal swallowed
        running.set()
        while True:
            try:
                await asyncio.Event().wait()  # a wait that only a cancellation ends
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as Python 3.11's asyncio.wait_for does when its inner wait completes at the cancel

    task = asyncio.create_task(loop_that_loses_a_cancel())
    await running.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await _bounded("tasks", [task], timeout_s=5, cancel=True)
    assert task.cancelled() and swallowed == 1
    assert loop.time() - started < 1  # not the 5 s bound


async def test_a_task_that_will_not_stop_is_left_at_the_bound():
    stubborn = True
    running = asyncio.Event()

    async def refuses():
        running.set()
        while True:
            try:
                await asyncio.Event().wait()  # a wait that only a cancellation ends
            except asyncio.CancelledError:
                if not stubborn:
                    raise

    task = asyncio.create_task(refuses())
    await running.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await _bounded("tasks", [task], timeout_s=0.3, cancel=True)
    assert not task.done() and 0.3 <= loop.time() - started < 1
    stubborn = False
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
