"""`groundswell`: one command line for every service and admin task."""

import argparse
import asyncio
import json
import socket
import sys
from pathlib import Path

import uvicorn
import uvloop

from shared.logging import configure_logging

SERVICES = ("signing", "counter", "notifier")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundswell", description="Groundswell petition platform")
    commands = parser.add_subparsers(dest="command", required=True)
    for service, about, tasks in (
        ("signing", "run the signing API, or an admin task on it", ["migrate", "republish"]),
        ("counter", "run the counter, or an admin task on it", ["migrate", "rebuild", "dead-letters"]),
        ("notifier", "run the notifier, or an admin task on it", ["migrate", "dead-letters"]),
    ):
        command = commands.add_parser(service, help=about)
        command.add_argument(
            "task", nargs="?", choices=tasks,
            help="migrate: bring the database to the newest schema; rebuild: replay the stream into fresh counts; "
                 "dead-letters: list the events set aside (or --retry them); republish: send every event in "
                 "signing's outbox to the stream again (after restoring a backup into a fresh stack)",
        )
        if "dead-letters" in tasks:
            command.add_argument("--retry", metavar="all|ID,...",
                                 help="dead-letters: hand these (or all open ones) to the handler again")
            command.add_argument("--resolved", action="store_true",
                                 help="dead-letters: list resolved ones too")
    commands.add_parser("settings", help="print every setting as a Markdown table (name, default, meaning)")
    docs = commands.add_parser("docs", help="write the API documents: docs/asyncapi.json and docs/openapi/*.json")
    docs.add_argument("--out", default="docs", help="folder to write into")
    dev = commands.add_parser("dev", help="run the whole system on the embedded default (no Docker)")
    dev.add_argument("--data-dir", default=".data", help="where databases, the NATS store and mail go")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    if args.command == "settings":
        from shared.settings_doc import settings_table

        print(settings_table(settings_classes()))
        return 0
    if args.command == "docs":
        from services.api_docs import write_api_docs

        for path in write_api_docs(args.out):
            print(path)
        return 0
    if args.command == "dev":
        from services.embedded.runner import run_embedded

        return asyncio.run(run_embedded(args.data_dir))
    if getattr(args, "task", None) == "migrate":
        return _migrate(args.command)
    if getattr(args, "task", None) == "rebuild":
        return _rebuild()
    if getattr(args, "task", None) == "republish":
        return _republish()
    if getattr(args, "task", None) == "dead-letters":
        return _dead_letters(args.command, args.retry, args.resolved)
    return _serve(args.command)


def _serve(service: str) -> int:
    settings, create_app = _load(service)
    configure_logging(service, settings.log_level, settings.log_format)
    _refuse_missing_secrets(service, settings)
    # uvloop and httptools: measured against asyncio and h11, and against granian (docs/benchmarks.md)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, lifespan="on",
        timeout_graceful_shutdown=10, loop="uvloop", http="httptools",
    )
    from shared import lifecycle

    lifecycle.stop_on_crash = True
    sockets = None
    if socket_path := getattr(settings, "socket", None):
        # TCP for everyone, and a Unix socket for the front door on this host (docs/benchmarks.md).
        sockets = [config.bind_socket(), unix_socket(socket_path)]
    uvicorn.Server(config).run(sockets=sockets)
    crashed = lifecycle.crashed

    if crashed:
        print(f"groundswell {service}: stopped because {', '.join(crashed)} crashed (see the log)", file=sys.stderr)
        return 1
    return 0


def unix_socket(path) -> socket.socket:
    """A listening-ready Unix socket at `path` (one left by a killed process is replaced)."""
    path = Path(path).resolve()
    if len(str(path).encode()) > 100:
        sys.exit(f"GROUNDSWELL_SOCKET: {path} is too long for a Unix socket (100 bytes at most)")
    if path.is_socket():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o660)
    return sock


def settings_classes() -> dict[str, type]:
    """Each service's settings class (what its environment variables mean)."""
    from services.counter.settings import CounterSettings
    from services.notifier.settings import NotifierSettings
    from services.signing.settings import SigningSettings

    return {"signing": SigningSettings, "counter": CounterSettings, "notifier": NotifierSettings}


def _load(service: str):
    if service == "signing":
        from services.signing.app import create_app
    elif service == "counter":
        from services.counter.app import create_app
    else:
        from services.notifier.app import create_app
    return settings_classes()[service](), create_app


SECRETS = {"signing": ("admin_token", "internal_token", "mailbox_key"), "notifier": ("internal_token",),
           "counter": ("internal_token",)}


def _refuse_missing_secrets(service: str, settings) -> None:
    """Production mode never starts on a missing secret."""
    if settings.mode != "production":
        return
    for name in SECRETS.get(service, ()):
        if not getattr(settings, name):
            variable = f"GROUNDSWELL_{name.upper()}"
            sys.exit(f"groundswell {service}: {variable} is not set; production mode needs it "
                     "(or set GROUNDSWELL_MODE=embedded for a local run).")


def _migrate(service: str) -> int:
    from shared.migrations import migrate

    settings, _ = _load(service)
    configure_logging(service, settings.log_level, settings.log_format)
    asyncio.run(migrate(service, settings.database_url, **settings.migration_attributes()))
    return 0


def _dead_letters(service: str, retry: str | None, include_resolved: bool) -> int:
    """One JSON object per line; with --retry, exit 1 when any is still failing."""
    from services.deadletters_cli import dead_letters_command

    settings, _ = _load(service)
    configure_logging(service, settings.log_level, settings.log_format)
    if retry is not None and retry != "all" and not all(p.strip().isdigit() for p in retry.split(",")):
        sys.exit(f"groundswell {service} dead-letters: --retry takes 'all' or ids like 3,7 (from the listing)")
    rows = uvloop.run(dead_letters_command(service, settings, retry, include_resolved))
    for row in rows:
        print(json.dumps(row))
    return 1 if retry is not None and any(row["result"] != "resolved" for row in rows) else 0


def _republish() -> int:
    """Mark every event in signing's outbox unpublished: the running signing's relay sends them all
    again, in order, under their own event ids. For a stack whose event stream was lost or is new
    (a backup of the databases restored into a fresh stack): signing's database is the record of
    truth, and the consumers count and mail each event once whatever its delivery."""
    from sqlalchemy import func, select, update

    from services.signing import db
    from services.signing.settings import SigningSettings
    from shared.db import create_engine

    settings = SigningSettings()
    configure_logging("signing", settings.log_level, settings.log_format)

    async def mark() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                total = (await conn.execute(select(func.count()).select_from(db.outbox))).scalar_one()
                await conn.execute(update(db.outbox).values(published_at=None))
        finally:
            await engine.dispose()
        return total

    total = uvloop.run(mark())
    print(json.dumps({"events": total, "note": "signing's relay publishes them again within seconds"}))
    return 0


def _rebuild() -> int:
    from services.counter.rebuild import rebuild
    from services.counter.settings import CounterSettings

    settings = CounterSettings()
    configure_logging("counter", settings.log_level, settings.log_format)
    print(json.dumps(uvloop.run(rebuild(settings))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
