"""`make bench`: signatures/s, p50/p99 latency, and how long until the count shows them all.

Starts the embedded system (`groundswell dev`) in a temporary folder, creates a petition, signs
it N times at a fixed concurrency, then polls the count endpoint until it reads N.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SIGNING = "http://127.0.0.1:8001"
COUNTER = "http://127.0.0.1:8002"


async def wait_until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.01)
    raise SystemExit(f"bench: {what} not reached within {timeout_s} s")


async def bench(signatures: int, concurrency: int, data_dir: Path) -> None:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def live():
            try:
                return (await client.get(f"{SIGNING}/petitions/tell-denvers-mayor-to-stop-obstructing-immigration-law")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(live, 120, "embedded system up")
        token = (data_dir / "admin-token").read_text().strip()
        petition = (await client.post(
            f"{SIGNING}/petitions",
            json={"title": "Benchmark petition", "target": "The bench", "story": "Measuring.",
                  "organizer": {"name": "Bench Organizer", "email": "bench@example.org"}},
            headers={"Authorization": f"Bearer {token}"},
        )).json()
        url = f"{SIGNING}/petitions/{petition['id']}/signatures"
        latencies: list[float] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(signatures):
            queue.put_nowait(i)

        async def worker():
            while not queue.empty():
                i = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, json={"name": f"Signer {i}", "email": f"signer{i}@example.org"})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        accepted_s = time.perf_counter() - started

        async def counted():
            response = await client.get(f"{COUNTER}/petitions/{petition['id']}/count")
            return response.status_code == 200 and response.json()["count"] == signatures

        await wait_until(counted, 300, f"count {signatures}")
        caught_up_s = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"signatures          {signatures} at concurrency {concurrency} (SQLite, one process per service)")
    print(f"accepted            {signatures / accepted_s:,.0f} signatures/s ({accepted_s:.2f} s)")
    print(f"latency             p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms")
    print(f"count caught up     {caught_up_s - accepted_s:.2f} s after the last 202 ({caught_up_s:.2f} s from the first)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signatures", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="groundswell-bench-") as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDSWELL_")}
        env["GROUNDSWELL_LOG_LEVEL"] = "WARNING"
        system = subprocess.Popen([sys.executable, "-m", "services", "dev", "--data-dir", folder], env=env,
                                  stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            asyncio.run(bench(args.signatures, args.concurrency, Path(folder)))
        finally:
            os.killpg(system.pid, signal.SIGINT)
            system.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
