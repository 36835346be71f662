"""asyncio helpers."""

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until the event is set or the timeout passes; True if it was set.

    Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives as the event
    is set, and a loop around it then never stops. asyncio.timeout does not lose it."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
