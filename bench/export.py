"""`python -m bench.export`: the organizer's CSV export of a million signatures, and how much the
signing process's memory grows while it streams (issue 11: less than 100 MB).

A petition with `--rows` confirmed signatures is written straight into signing's database (SQLite,
or PostgreSQL with `--backend postgres`), an organizer session is stored for it, and signing is
started on its own. After a warm-up export of a one-row petition (so imports and caches are in
place), the big export is read through and the process's resident memory (VmRSS in
/proc/<pid>/status) sampled every 10 ms. Prints rows, time, rows/s, RSS before, peak and growth.
"""

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.stack import Database, answers, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 100


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fill(database: Database, petition_id: str, slug: str, rows: int) -> None:
    """The petition and its confirmed signatures, made by the database itself (no row through Python)."""
    petition = (f"INSERT INTO petitions (id, slug, title, target, story, organizer_name, organizer_email, created_at, "
                f"status) VALUES ('{petition_id}', '{slug}', 'Export {slug}', 'Council', 'Story.', 'Org Anizer', "
                f"'org@example.org', '2026-11-01 00:00:00', 'open')")
    if database.backend == "sqlite":
        import sqlite3
        with sqlite3.connect(database.path) as conn:
            conn.execute(petition)
            conn.execute(f"""
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                INSERT INTO signatures (id, petition_id, mailbox_key, email, name, country, postcode, comment,
                                        updates, created_at, state, confirmed_at)
                SELECT printf('{slug[:8]}-%028d', i), '{petition_id}', printf('key-{slug}-%d', i),
                       printf('s%d@example.org', i), printf('Signer Number %d', i), 'GB', 'N1 1AA',
                       CASE WHEN i % 10 = 0 THEN '=1+1 a comment that looks like a formula' ELSE 'A comment' END,
                       0, '2026-11-02 00:00:00', 'confirmed',
                       strftime('%Y-%m-%d %H:%M:%S.000000', '2026-11-02', printf('+%d seconds', i))
                FROM n""")
        return
    database.rows(petition)
    database.rows(f"""
        INSERT INTO signatures (id, petition_id, mailbox_key, email, name, country, postcode, comment, updates,
                                created_at, state, confirmed_at)
        SELECT '{slug[:8]}-' || lpad(i::text, 28, '0'), '{petition_id}', 'key-{slug}-' || i, 's' || i || '@example.org',
               'Signer Number ' || i, 'GB', 'N1 1AA',
               CASE WHEN i % 10 = 0 THEN '=1+1 a comment that looks like a formula' ELSE 'A comment' END,
               false, '2026-11-02 00:00:00+00', 'confirmed', timestamptz '2026-11-02 00:00:00+00' + i * interval '1 second'
        FROM generate_series(1, {rows}) AS i""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--target", type=Path, default=ROOT, help="checkout whose .venv and code are measured")
    args = parser.parse_args()
    python = str(args.target / ".venv" / "bin" / "python")
    folder = Path(tempfile.mkdtemp(prefix="groundswell-export-"))
    database = Database(args.backend, "signing", folder)
    process = None
    try:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GROUNDSWELL_", "DATABASE_", "NATS_"))}
        env.update({"GROUNDSWELL_MODE": "embedded", "GROUNDSWELL_LOG_LEVEL": "WARNING", "GROUNDSWELL_PORT": str(port),
                    "DATABASE_URL": database.url, "NATS_URL": f"nats://127.0.0.1:{free_port()}",  # none: not needed
                    "GROUNDSWELL_COUNTER_URL": f"http://127.0.0.1:{free_port()}",
                    "GROUNDSWELL_NOTIFIER_URL": f"http://127.0.0.1:{free_port()}"})
        subprocess.run([python, "-m", "services", "signing", "migrate"], env=env, cwd=args.target, check=True,
                       capture_output=True, timeout=120)
        started = time.perf_counter()
        fill(database, "00000000-0000-4000-8000-000000000001", "warm-up", 1)
        fill(database, "00000000-0000-4000-8000-000000000002", "million", args.rows)
        print(f"{args.rows:,} signatures written in {time.perf_counter() - started:.0f} s ({args.backend})")
        log = (folder / "signing.log").open("wb")
        process = subprocess.Popen([python, "-m", "services", "signing"], env=env, cwd=args.target, stdout=log,
                                   stderr=log, start_new_session=True)
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/livez"), 60, "signing up")
        base = f"http://127.0.0.1:{port}"

        def export(slug: str, petition_id: str) -> tuple[int, int, float]:
            """(rows, bytes, seconds) of one export, signed in as that petition's organizer."""
            session = secrets.token_urlsafe(32)
            database_rows = (f"INSERT INTO organizer_sessions (token_hash, petition_id, created_at, expires_at) VALUES "
                             f"('{hashlib.sha256(session.encode()).hexdigest()}', '{petition_id}', "
                             f"'2026-11-01 00:00:00', '2999-01-01 00:00:00')")
            if database.backend == "sqlite":
                import sqlite3
                with sqlite3.connect(database.path) as conn:
                    conn.execute(database_rows)
            else:
                database.rows(database_rows)
            lines = size = 0
            began = time.perf_counter()
            with httpx.stream("GET", f"{base}/dashboard/{slug}/signatures.csv", cookies={"groundswell_organizer": session},
                              timeout=600) as response:
                assert response.status_code == 200, response.status_code
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            return lines - 1, size, time.perf_counter() - began  # less the header

        assert export("warm-up", "00000000-0000-4000-8000-000000000001")[0] == 1
        before = rss_kb(process.pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kb(process.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rows, size, seconds = export("million", "00000000-0000-4000-8000-000000000002")
        done.set()
        sampler.join()
        growth_mb = (peak - before) / 1024
        print(f"export: {rows:,} rows, {size / 1e6:,.0f} MB of CSV in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)")
        print(f"signing's memory (RSS): {before / 1024:,.0f} MB before, {peak / 1024:,.0f} MB at most while streaming: "
              f"+{growth_mb:,.1f} MB (limit {LIMIT_MB} MB: {'met' if growth_mb < LIMIT_MB else 'NOT met'})")
        if rows != args.rows:
            print(f"wrong row count: {rows} != {args.rows}")
            return 1
        return 0 if growth_mb < LIMIT_MB else 1
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
