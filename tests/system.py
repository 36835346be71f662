"""The whole system as real processes: nats-server, SMTP, signing, counter and notifier."""

import asyncio
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import nats

from contract.events import STREAM
from tests.databases import Database
from tests.harness import ROOT, NatsCluster, NatsServer, Service, SmtpServer, Web, eventually, service_env

SERVICES = ("signing", "counter", "notifier")


class System:
    def __init__(self, workdir: Path, backend: str = "sqlite", postgres_server: str | None = None,
                 nats_cluster: bool = False) -> None:
        """`postgres_server`: the admin URL of a PostgreSQL the test controls (tests/pgserver.py);
        `nats_cluster`: three nats-servers (tests/harness.py NatsCluster) and the stream at R3."""
        self.workdir = workdir
        self.backend = backend
        self.databases = {name: Database(backend, name, workdir, postgres_server) for name in SERVICES}
        self.token = secrets.token_urlsafe(16)
        self.nats = NatsCluster(workdir / "nats") if nats_cluster else NatsServer(workdir / "nats")
        self.smtp = SmtpServer()
        self.services: dict[str, Service] = {}
        for name in SERVICES:
            env = service_env(
                name,
                nats_url=self.nats.url,
                database_url=self.databases[name].url,
                smtp_port=self.smtp.port,
                admin_token=self.token,
            )
            if nats_cluster:
                env["GROUNDSWELL_STREAM_REPLICAS"] = "3"
            self.services[name] = Service(name, env, workdir)
        # As `make run` does: the front door reaches signing through a Unix socket.
        self.signing.env["GROUNDSWELL_SOCKET"] = str(workdir / "signing.sock")
        self.web = Web(self.signing.port, self.counter.port, workdir, workdir / "signing.sock")
        for service in self.services.values():
            service.env["GROUNDSWELL_PUBLIC_URL"] = self.web.url
        self.signing.env["GROUNDSWELL_PUBLIC_DIR"] = str(workdir / "public")
        self.notifier.env["GROUNDSWELL_SIGNING_URL"] = self.signing.url
        self.notifier.env["GROUNDSWELL_COUNTER_URL"] = self.counter.url
        self.counter.env["GROUNDSWELL_SIGNING_URL"] = self.signing.url
        self.signing.env["GROUNDSWELL_COUNTER_URL"] = self.counter.url
        self.signing.env["GROUNDSWELL_NOTIFIER_URL"] = self.notifier.url

    def start(self) -> "System":
        self.nats.start()
        self.smtp.start()
        # Side by side, as compose starts them: each service provisions the stream and its own
        # consumer, and none waits for another. Most of a start is Python importing, so on two
        # cores this halves the time every end-to-end test spends getting ready.
        for service in self.services.values():
            service.spawn()
        for service in self.services.values():
            service.wait_live()
        self.web.start()
        return self

    def stop(self) -> None:
        self.web.stop()
        for service in self.services.values():
            service.terminate()
        for service in self.services.values():
            service.wait_stopped()
        self.nats.stop()
        self.smtp.stop()
        for database in self.databases.values():
            database.drop()

    @property
    def signing(self) -> Service:
        return self.services["signing"]

    @property
    def counter(self) -> Service:
        return self.services["counter"]

    @property
    def notifier(self) -> Service:
        return self.services["notifier"]

    # --- talking to it over HTTP -------------------------------------------------------------

    def create_petition(self, slug: str, title: str = "Fix the bridge on Elm Street", **fields) -> dict:
        response = httpx.post(
            f"{self.signing.url}/petitions",
            json={
                "title": title,
                "target": "Springfield City Council",
                "story": "The bridge is unsafe.\n\nPlease fix it.",
                "organizer": {"name": "Patrick Leonard", "email": f"organizer-{slug}@example.org"},
                "slug": slug,
                **fields,
            },
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def sign(self, petition: str, body: dict, client: httpx.Client | None = None, **headers) -> httpx.Response:
        http = client or httpx
        return http.post(f"{self.signing.url}/petitions/{petition}/signatures", json=body, headers=headers, timeout=30)

    def count(self, petition_id: str) -> int | None:
        try:
            response = httpx.get(f"{self.counter.url}/petitions/{petition_id}/count", timeout=5)
        except httpx.TransportError:
            return None
        return response.json()["count"] if response.status_code == 200 else None

    def wait_for_count(self, petition_id: str, expected: int, timeout_s: float = 60) -> None:
        eventually(lambda: self.count(petition_id) == expected, timeout_s=timeout_s,
                   message=f"count {expected} (now {self.count(petition_id)})")

    # --- looking inside ----------------------------------------------------------------------

    def query(self, service: str, sql: str) -> list[tuple]:
        return self.databases[service].query(sql)

    def execute(self, service: str, sql: str) -> None:
        self.databases[service].execute(sql)

    def settled(self) -> bool:
        """Every outbox published, every consumer caught up with nothing awaiting an ack, and every
        supporter fan-out done. The fan-outs matter: the notifier acks a goal's MilestoneReached
        (or an UpdatePosted) once its fan-out row is recorded, and a worker sends the emails after,
        so caught-up consumers say nothing about them (issue 21: on a loaded machine a test looked
        for supporter emails the moment the consumers were caught up, and found none yet)."""
        for service in ("signing", "counter"):
            if self.query(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]:
                return False
        if self.query("notifier", "SELECT count(*) FROM fanouts WHERE done_at IS NULL")[0][0]:
            return False
        consumers = self.nats.consumers()
        return all(
            name in consumers and consumers[name]["num_pending"] == 0 and consumers[name]["num_ack_pending"] == 0
            for name in ("counter", "notifier", "listing", "signing")
        )

    def wait_settled(self, timeout_s: float = 60) -> None:
        eventually(self.settled, timeout_s=timeout_s, message="system settled")

    def stream_contents(self) -> list[tuple[str, dict, bytes]]:
        """Every message on the event stream: (subject, headers, payload)."""

        async def read() -> list[tuple[str, dict, bytes]]:
            nc = await nats.connect(self.nats.url)
            js = nc.jetstream()
            last = (await js.stream_info(STREAM)).state.last_seq
            found = []
            for seq in range(1, last + 1):
                message = await js.get_msg(STREAM, seq)
                found.append((message.subject, message.headers or {}, message.data))
            await nc.close()
            return found

        return asyncio.run(read())

    def organizer_emails(self, slug: str) -> list:
        return [m for m in self.smtp.messages if m["To"].addresses[0].addr_spec == f"organizer-{slug}@example.org"]

    def rebuild(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "services", "counter", "rebuild"],
            env=self.counter.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout
