"""The compose stack beside the embedded default, in one run (issue 22):

    python -m bench.compose [--runs 2]

Durable signatures/s at saturation and count JSON req/s, each through the front door with wrk
(64 connections, as `make bench`): the embedded default (`make run`'s shape: SQLite, Caddy on
loopback, signing behind a Unix socket) and the compose stack (deploy/compose.yml: PostgreSQL,
NATS and every service in containers, signing behind Docker's network), each figure also as a
ratio to the embedded one measured in the same run. Needs a Docker engine (`make engine`) and the
images deploy/ names (pulled, or the stand-ins from tests/compose/standins). Signing confirms by
email in both, as the product's default is; every count is checked against the rows.
"""

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench import load
from bench.scenarios import READ_SECONDS, SIGN_SECONDS, one_run
from bench.stack import wait_until

ROOT = Path(__file__).resolve().parent.parent


def compose_run() -> dict:
    """Saturation and count reads through the compose stack's published front door."""
    from tests.compose import standins
    from tests.compose.stack import Stack, engine

    host, why = engine()
    if host is None:
        raise SystemExit(f"bench.compose: {why}")
    import os

    os.environ["DOCKER_HOST"] = host
    standins.ensure(log=lambda line: print(f"bench.compose: {line}", file=sys.stderr))
    stack = Stack(GROUNDSWELL_SIGN_RATE_LIMIT="100000000/minute;100000000/hour")
    try:
        print(f"bench.compose: up took {stack.up():.0f} s", file=sys.stderr)
        # As `make bench` measures the embedded default: without the notifier (its confirmation
        # emails to the mail sink would take the CPU the reads are measured on).
        stack.compose("stop", "notifier")
        petition = stack.create_petition(f"compose-{secrets.token_hex(3)}")
        signed = load.run(f"{stack.web}/petitions/{petition['id']}/signatures", "sign.lua",
                          [f"cmp{secrets.token_hex(3)}", 0], connections=64, duration_s=SIGN_SECONDS)
        accepted = signed.count(202)

        def stored() -> int:
            out = stack.compose("exec", "-T", "postgres", "psql", "-U", "groundswell", "-d", "signing", "-tAc",
                                f"SELECT count(*) FROM signatures WHERE petition_id = '{petition['id']}'").stdout
            return int(out.strip() or 0)

        rows = stored()

        def published() -> bool:
            out = stack.compose("exec", "-T", "postgres", "psql", "-U", "groundswell", "-d", "signing", "-tAc",
                                "SELECT count(*) FROM outbox WHERE published_at IS NULL").stdout
            return out.strip() == "0"

        wait_until(published, 120, "every event published")  # the pipeline at rest before the reads
        reader = stack.create_petition(f"reads-{secrets.token_hex(3)}")
        wait_until(lambda: stack.count(reader["id"]) == 0, 60, "the read petition counted")
        wait_until(lambda: httpx.get(f"{stack.web}/petitions/{reader['id']}/count", timeout=5).headers.get("Via")
                   is None, 60, "the count served as a file")
        reads = load.run(f"{stack.web}/petitions/{reader['id']}/count", "get.lua", [], connections=64,
                         duration_s=READ_SECONDS)
        return {"sign_rps": accepted / signed.seconds, "sign_p99_ms": signed.p99_ms,
                # wrk stops mid-flight: a request sent, stored, and not yet answered is a row
                # without its 202 (at most one per connection); a 202 without a row is a loss
                "sign_non_202": signed.requests - accepted, "rows_match": accepted <= rows <= accepted + 64,
                "count_rps": reads.count(200) / reads.seconds, "count_p99_ms": reads.p99_ms,
                "count_non_200": reads.requests - reads.count(200)}
    finally:
        stack.down("-v")


def embedded_run() -> dict:
    with tempfile.TemporaryDirectory(prefix="groundswell-bench-embedded-") as folder:
        return one_run(ROOT, "sqlite", Path(folder), signing_processes=1, only={"saturation", "reads"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    load.require_wrk()
    load.raise_fd_limit()
    embedded, composed = [], []
    for run in range(args.runs):
        print(f"bench.compose: run {run + 1}/{args.runs}: embedded", file=sys.stderr, flush=True)
        embedded.append(embedded_run())
        print(f"bench.compose: run {run + 1}/{args.runs}: compose", file=sys.stderr, flush=True)
        composed.append(compose_run())
        print(f"bench.compose: {composed[-1]}", file=sys.stderr, flush=True)
    print("| figure (median of runs, through the front door) | embedded (SQLite) | compose (PostgreSQL) | ratio |")
    print("|---|---|---|---|")
    for key, label in (("sign_rps", "durable signatures/s at saturation (wrk -c64)"),
                       ("count_rps", "count JSON req/s, one hot petition")):
        e = statistics.median(r[key] for r in embedded)
        c = statistics.median(r[key] for r in composed)
        print(f"| {label} | {e:,.0f} | {c:,.0f} | {c / e:.2f}x |")
    p99 = statistics.median(r["sign_p99_ms"] for r in composed)
    print(f"| signing p99 at saturation, compose | | {p99:.0f} ms | |")
    exact = all(r["rows_match"] for r in composed) and all(r["sign_non_202"] == 0 for r in composed)
    print(f"| every 202 stored, no other answer | | {'yes' if exact else 'NO'} | |")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
