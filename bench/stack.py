"""The system under test for `make bench`: nats-server, a counting SMTP sink, the services and
Caddy as real processes on loopback, on SQLite (the embedded default) or PostgreSQL.

The services, Caddy and the Caddyfile come from a target checkout (this one by default), so the
same harness measures another checkout's code (`--target`) for before/after tables.
"""

import asyncio
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
SERVICES = ("signing", "counter", "notifier")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    result = None
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval_s)
    raise SystemExit(f"bench: {what} not reached within {timeout_s:.0f} s (last: {result!r})")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def postgres_server() -> str:
    return os.environ.get("GROUNDSWELL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg(url: str, sql: str):
    conn = await asyncpg.connect(_plain(url))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


class Database:
    def __init__(self, backend: str, service: str, folder: Path) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.path = folder / f"{service}.db"
            self.url = f"sqlite+aiosqlite:///{self.path}"
            return
        server = postgres_server()
        self.name = f"gs_bench_{service}_{secrets.token_hex(3)}"
        asyncio.run(_pg(server, f'CREATE DATABASE "{self.name}"'))
        self.admin = server
        self.plain = f"{_plain(server).rsplit('/', 1)[0]}/{self.name}"
        self.url = self.plain.replace("postgresql://", "postgresql+asyncpg://", 1)

    def rows(self, sql: str) -> list[tuple]:
        if self.backend == "sqlite":
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30) as conn:
                return conn.execute(sql).fetchall()
        return [tuple(row) for row in asyncio.run(_pg(self.plain, sql))]

    def scalar(self, sql: str):
        return self.rows(sql)[0][0]

    def drop(self) -> None:
        if self.backend == "postgres":
            asyncio.run(_pg(self.admin, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


class Stack:
    """Everything a user of `make run` gets, with SQLite or PostgreSQL underneath."""

    def __init__(self, target: Path, backend: str, workdir: Path, *, signing_processes: int = 1) -> None:
        self.target = target
        self.backend = backend
        self.workdir = workdir
        self.python = str(target / ".venv" / "bin" / "python")
        self.bin = target / ".venv" / "bin"
        self.token = secrets.token_urlsafe(16)
        self.internal_token = secrets.token_urlsafe(16)
        self.nats_port, self.smtp_port, self.web_port = free_port(), free_port(), free_port()
        self.ports = {"counter": free_port(), "notifier": free_port()}
        self.signing_ports = [free_port() for _ in range(signing_processes)]
        self.databases = {name: Database(backend, name, workdir) for name in SERVICES}
        self.public_dir = workdir / "public"
        self.mail_log = workdir / "mail.log"
        self.processes: dict[str, subprocess.Popen] = {}

    # --- addresses ----------------------------------------------------------------------------

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def signing(self) -> str:
        return f"http://127.0.0.1:{self.signing_ports[0]}"

    @property
    def counter(self) -> str:
        return f"http://127.0.0.1:{self.ports['counter']}"

    # --- processes ----------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, env=env or dict(os.environ), cwd=cwd or self.target, stdout=log, stderr=log,
            start_new_session=True,
        )

    def service_env(self, service: str, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GROUNDSWELL_", "SMTP_", "NATS_", "DATABASE_"))}
        env.update({
            "GROUNDSWELL_MODE": "embedded",
            "GROUNDSWELL_LOG_LEVEL": "WARNING",
            "GROUNDSWELL_LOG_FORMAT": "json",
            "GROUNDSWELL_PORT": str(port),
            "GROUNDSWELL_ADMIN_TOKEN": self.token,
            "GROUNDSWELL_INTERNAL_TOKEN": self.internal_token,
            "GROUNDSWELL_PUBLIC_URL": self.web,
            "GROUNDSWELL_PUBLIC_DIR": str(self.public_dir),
            "GROUNDSWELL_SIGNING_URL": self.signing,
            "GROUNDSWELL_COUNTER_URL": self.counter,
            "GROUNDSWELL_NOTIFIER_URL": f"http://127.0.0.1:{self.ports['notifier']}",
            "GROUNDSWELL_SUPPORTER_EMAILS_PER_S": "1000000",  # the throttle off: measure the pipeline
            "GROUNDSWELL_EMAILS_PER_S": "1000000",
            # The product's default (older checkouts ignore both): every signature waits for its
            # link, and the rate limiter counts every one (the load comes from one address, the
            # front door's, so the limit is set out of its reach).
            "GROUNDSWELL_CONFIRM_SIGNATURES": "true",
            "GROUNDSWELL_SIGN_RATE_LIMIT": "100000000/minute;100000000/hour",
            "NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "DATABASE_URL": self.databases[service].url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
        })
        return env

    def start(self, *, notifier: bool = True) -> "Stack":
        self._spawn("nats-server", [str(self.bin / "nats-server"), "-js", "-sd", str(self.workdir / "nats"),
                                    "-a", "127.0.0.1", "-p", str(self.nats_port)])
        self._spawn("sink", [sys.executable, "-m", "bench.sink", "--port", str(self.smtp_port),
                             "--log", str(self.mail_log)], cwd=HERE.parent)
        for i, port in enumerate(self.signing_ports):
            env = self.service_env("signing", port)
            env["GROUNDSWELL_SOCKET"] = str(self.signing_socket(i))  # as `make run` does (ignored by older code)
            self._spawn(f"signing-{i}", [self.python, "-m", "services", "signing"], env)
            wait_until(lambda: answers(f"http://127.0.0.1:{port}/livez"), 60, "signing up")
        self._spawn("counter", [self.python, "-m", "services", "counter"],
                    self.service_env("counter", self.ports["counter"]))
        if notifier:
            self.start_notifier()
        self._spawn("caddy", *self._caddy())
        for url in (f"{self.counter}/readyz", f"{self.signing}/readyz", f"{self.web}/livez"):
            wait_until(lambda: answers(url), 60, f"{url} ready")
        return self

    def notifier_running(self) -> bool:
        return "notifier" in self.processes and self.processes["notifier"].poll() is None

    def stop_notifier(self) -> None:
        if self.notifier_running():
            self.processes["notifier"].send_signal(signal.SIGTERM)
            self.processes["notifier"].wait(timeout=30)

    def start_notifier(self) -> None:
        if self.notifier_running():
            return
        self._spawn("notifier", [self.python, "-m", "services", "notifier"],
                    self.service_env("notifier", self.ports["notifier"]))
        wait_until(lambda: answers(f"http://127.0.0.1:{self.ports['notifier']}/readyz"), 60, "notifier ready")

    def stop_counter(self) -> None:
        if self.processes["counter"].poll() is None:
            self.processes["counter"].send_signal(signal.SIGTERM)
            self.processes["counter"].wait(timeout=30)

    def start_counter(self) -> None:
        self._spawn("counter", [self.python, "-m", "services", "counter"],
                    self.service_env("counter", self.ports["counter"]))
        wait_until(lambda: answers(f"{self.counter}/livez"), 60, "counter up")

    def signing_socket(self, index: int) -> Path:
        return self.workdir / f"signing-{index}.sock"

    def _caddy(self) -> tuple[list[str], dict[str, str]]:
        (self.workdir / "caddy").mkdir(exist_ok=True)
        command = [str(self.bin / "caddy"), "run", "--config", str(self.target / "deploy" / "Caddyfile"),
                   "--adapter", "caddyfile"]
        return command, {
            **os.environ,
            "GROUNDSWELL_WEB_ADDRESS": self.web,
            "GROUNDSWELL_WEB_BIND": "127.0.0.1",
            "GROUNDSWELL_SIGNING_UPSTREAM": " ".join(
                f"unix/{self.signing_socket(i)}" if self.signing_socket(i).is_socket() else f"127.0.0.1:{p}"
                for i, p in enumerate(self.signing_ports)),
            "GROUNDSWELL_COUNTER_UPSTREAM": f"127.0.0.1:{self.ports['counter']}",
            "GROUNDSWELL_PUBLIC_DIR": str(self.public_dir),
            "XDG_DATA_HOME": str(self.workdir / "caddy"),
            "XDG_CONFIG_HOME": str(self.workdir / "caddy"),
        }

    def stop(self) -> None:
        order = ["caddy", *[n for n in self.processes if n.startswith("signing")], "counter", "notifier",
                 "nats-server", "sink"]
        for name in order:
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for database in self.databases.values():
            database.drop()

    def cpu_seconds(self) -> dict[str, float]:
        """User+system CPU each process has used so far (from /proc)."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for name, process in self.processes.items():
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            used[name] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    # --- the API ------------------------------------------------------------------------------

    def create_petition(self, title: str) -> dict:
        response = httpx.post(
            f"{self.signing}/petitions",
            json={"title": title, "target": "The benchmark", "story": "Measuring.\n\nAgain.",
                  "organizer": {"name": "Bench Organizer", "email": "organizer@example.org"}},
            headers={"Authorization": f"Bearer {self.token}"}, timeout=30,
        )
        response.raise_for_status()
        petition = response.json()
        wait_until(lambda: self.count(petition["id"]) == 0, 60, "petition known to the counter")
        return petition

    def count(self, petition_id: str) -> int | None:
        try:
            response = httpx.get(f"{self.counter}/petitions/{petition_id}/count", timeout=10)
        except httpx.TransportError:
            return None
        return response.json()["count"] if response.status_code == 200 else None

    def signature_rows(self, petition_id: str) -> int:
        return int(self.databases["signing"].scalar(
            f"SELECT count(*) FROM signatures WHERE petition_id = '{petition_id}'"))

    def confirming(self) -> bool:
        """Whether the target confirms signatures by email (checkouts before issue 10 do not)."""
        try:
            self.databases["signing"].scalar("SELECT count(*) FROM signatures WHERE state = 'pending'")
        except Exception:  # noqa: BLE001 - no such column: an older checkout
            return False
        return True

    def pending_tokens(self, petition_id: str) -> list[str]:
        return [row[0] for row in self.databases["signing"].rows(
            f"SELECT confirm_token FROM signatures WHERE petition_id = '{petition_id}' AND state = 'pending'")]

    def token_of(self, petition_id: str, email: str) -> str | None:
        rows = self.databases["signing"].rows(
            f"SELECT confirm_token FROM signatures WHERE petition_id = '{petition_id}' AND email = '{email}'")
        return rows[0][0] if rows else None

    def unpublished(self) -> int:
        return int(self.databases["signing"].scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
