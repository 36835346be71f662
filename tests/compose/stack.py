"""The operator's stack (deploy/compose.yml) run for a test, driven only as an operator and the
public would: through its published ports, the mail sink's HTTP API and Docker's API (`docker
compose`, `docker inspect`, a SIGKILL of a container's main process from the host).

Each Stack is its own compose project (its own name, network, volumes and free host ports), so a
test never meets another's data, nor an operator's `make up`."""

import os
import re
import secrets
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from services.embedded.ports import free_port
from tests.harness import ROOT, eventually

COMPOSE_FILES = {"single": ("deploy/compose.yml",), "cluster": ("deploy/compose.yml", "deploy/compose.cluster.yml")}
SERVICES = ("signing", "counter", "notifier", "nats", "postgres", "web")


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


class Stack:
    def __init__(self, layout: str = "single", **settings: str) -> None:
        self.project = f"gs-test-{secrets.token_hex(3)}"
        self.files = COMPOSE_FILES[layout]
        self.web_port, self.mail_port, self.nats_port = free_port(), free_port(), free_port()
        self.admin_token = secrets.token_hex(16)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GROUNDSWELL_", "SMTP_", "POSTGRES_"))},
            "GROUNDSWELL_ADMIN_TOKEN": self.admin_token,
            "GROUNDSWELL_INTERNAL_TOKEN": secrets.token_hex(16),
            "GROUNDSWELL_MAILBOX_KEY": secrets.token_hex(16),
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "GROUNDSWELL_WEB_PORT": str(self.web_port),
            "GROUNDSWELL_MAILPIT_PORT": str(self.mail_port),
            "GROUNDSWELL_NATS_MONITOR_PORT": str(self.nats_port),
            "GROUNDSWELL_PUBLIC_URL": f"http://127.0.0.1:{self.web_port}",
            **settings,
        }

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def mail_api(self) -> str:
        return f"http://127.0.0.1:{self.mail_port}/api/v1"

    # --- compose -------------------------------------------------------------------------------

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "-p", self.project, "--profile", "dev"]
        for file in self.files:
            command += ["-f", str(ROOT / file)]
        done = subprocess.run([*command, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done

    def up(self, *extra: str) -> float:
        """`up -d --build --wait`; returns how long it took."""
        started = time.monotonic()
        self.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", *extra)
        return time.monotonic() - started

    def down(self, *extra: str) -> None:
        self.compose("down", "--timeout", "20", *extra, timeout=300, check=False)

    def logs(self, service: str = "") -> str:
        return self.compose("logs", "--no-color", *([service] if service else []), check=False).stdout

    # --- containers ----------------------------------------------------------------------------

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def inspect(self, container: str, template: str) -> str:
        return docker("inspect", "-f", template, container).strip()

    def crash(self, service: str) -> str:
        """SIGKILL the main process of the service's (first) container from the host, as a crash
        would: the restart policy brings it back (`docker kill` would count as a manual stop)."""
        container = self.containers(service)[0]
        pid = int(self.inspect(container, "{{.State.Pid}}"))
        assert pid > 0, f"{service} is not running"
        os.kill(pid, 9)
        return container

    def healthy(self, service: str) -> bool:
        found = self.containers(service)
        return bool(found) and all(
            self.inspect(c, "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}")
            == "running healthy" for c in found)

    # --- the public side -----------------------------------------------------------------------

    def create_petition(self, slug: str, **fields) -> dict:
        body = {"title": f"Fix the bridge ({slug})", "target": "Springfield City Council",
                "story": "The bridge is unsafe.", "organizer": {"name": "Patrick Leonard",
                                                              "email": f"organizer-{slug}@example.org"},
                "slug": slug, **fields}
        answer = httpx.post(f"{self.web}/petitions", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {self.admin_token}"})
        assert answer.status_code == 201, answer.text
        return answer.json()

    def count(self, petition: str) -> int | None:
        try:
            answer = httpx.get(f"{self.web}/petitions/{petition}/count", timeout=10)
        except httpx.TransportError:
            return None
        return answer.json()["count"] if answer.status_code == 200 else None

    def messages(self) -> list[dict]:
        return httpx.get(f"{self.mail_api}/messages", timeout=10).json()["messages"]

    def message(self, message_id: str) -> dict:
        return httpx.get(f"{self.mail_api}/message/{message_id}", timeout=10).json()

    def to(self, address: str) -> list[dict]:
        return [m for m in self.messages() if any(t["Address"] == address for t in m["To"])]


@dataclass
class Signer:
    """Steady signing through the front door: `workers` threads take the next signer and post until
    it gets a 202 (a 503 or a dropped connection is sent again, as a browser's retry would: a repeat
    counts once), `rate_per_s` in all. Every answer is recorded with its time."""

    stack: Stack
    petition_id: str
    rate_per_s: float = 40.0
    workers: int = 8
    accepted: set[int] = field(default_factory=set)
    answers: list[tuple[float, int | str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]

    def start(self) -> "Signer":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 120) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)

    @property
    def started(self) -> int:
        """Signers taken by a worker so far."""
        return self._next

    def _take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _work(self) -> None:
        interval = self.workers / self.rate_per_s
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                n = self._take()
                body = {"name": f"Signer Number{n}", "email": f"signer{n}@example.org", "country": "GB",
                        "updates": n % 2 == 0}
                began = time.monotonic()

                def accepted(n=n, body=body) -> bool:
                    try:
                        status = client.post(f"{self.stack.web}/petitions/{self.petition_id}/signatures",
                                             json=body).status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    with self._lock:
                        self.answers.append((time.monotonic(), status))
                        if status == 202:
                            self.accepted.add(n)
                    return status == 202

                # Every signer started is sent again until accepted (a repeat counts once).
                eventually(accepted, timeout_s=300, message=f"signer {n} accepted")
                time.sleep(max(0.0, interval - (time.monotonic() - began)))  # pacing: the load's rate

    def statuses_between(self, start: float, end: float) -> Counter:
        with self._lock:
            return Counter(status for at, status in self.answers if start <= at <= end)


def milestone_counts(messages: list[dict], organizer: str) -> Counter:
    """The organizer's milestone emails, by milestone."""
    found = Counter()
    for message in messages:
        if any(t["Address"] == organizer for t in message["To"]):
            match = re.search(r"reached ([\d,]+) supporters", message["Subject"])
            if match:
                found[int(match.group(1).replace(",", ""))] += 1
    return found


def duplicates(messages: list[dict]) -> list[str]:
    """Emails sent more than once. Each email's Message-ID is made of what it is for (petition,
    milestone or topic, recipient: services/notifier/emails.py), so a second copy has the same one;
    two goals' "... is counting on you" to one supporter share a subject, not an id."""
    return [message_id for message_id, n in Counter(m["MessageID"] for m in messages).items() if n > 1]


def wait(check, timeout_s: float, message: str):
    return eventually(check, timeout_s=timeout_s, message=message)


def image_size_mb(image: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6


def project_volumes(project: str) -> list[str]:
    return docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}").split()


ENGINE_SOCKET = ROOT / ".data" / "docker" / "docker.sock"  # deploy/engine.sh


def engine() -> tuple[str | None, str]:
    """A DOCKER_HOST that answers, and where it came from; (None, why) when none does."""
    candidates = [(os.environ.get("DOCKER_HOST"), "DOCKER_HOST"), (f"unix://{ENGINE_SOCKET}", "make engine"),
                  ("unix:///var/run/docker.sock", "the default socket")]
    for host, source in candidates:
        if not host:
            continue
        try:
            answered = subprocess.run(["docker", "-H", host, "info"], capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None, "no docker client (make engine installs Debian's docker.io)"
        if answered.returncode == 0:
            return host, source
    return None, "no Docker engine answers (`make engine` starts one: as root on Debian)"
