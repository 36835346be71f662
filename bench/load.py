"""Load from wrk (compiled, Debian's package), driven by the Lua scripts in bench/wrk/."""

import json
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "wrk"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench: wrk not found; install it with `apt-get install wrk` (Debian's package)")
    return found


def raise_fd_limit(wanted: int = 8192) -> None:
    """A thousand viewers need a thousand sockets in wrk (and in Caddy behind it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(s, 0) for s in statuses)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    @property
    def socket_errors(self) -> int:
        return sum(self.errors.get(k, 0) for k in ("connect", "read", "write", "timeout"))


def command(url: str, script: str, args: list[str], *, connections: int, duration_s: float,
            threads: int = 1, core: int | None = 1) -> list[str]:
    cmd = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "10s",
           "-s", str(SCRIPTS / script), url, "--", *[str(a) for a in args]]
    return (["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []) + cmd


def parse(output: str) -> Result:
    line = next((l for l in output.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"bench: wrk printed no result:\n{output[-2000:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return Result(
        requests=data["requests"], seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000, p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={int(k): v for k, v in data["statuses"].items()}, errors=data["errors"],
    )


def run(url: str, script: str, args: list[str] = (), **options) -> Result:
    """Run wrk to the end of its duration."""
    cmd = command(url, script, list(args), **options)
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=options["duration_s"] + 60)
    return parse(finished.stdout + finished.stderr)


class Background:
    """wrk in the background; `stop()` ends it early (SIGINT: it still reports)."""

    def __init__(self, url: str, script: str, args: list[str] = (), **options) -> None:
        self.process = subprocess.Popen(command(url, script, list(args), **options), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)

    def stop(self) -> Result:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self, timeout_s: float = 120) -> Result:
        output, _ = self.process.communicate(timeout=timeout_s)
        return parse(output)
