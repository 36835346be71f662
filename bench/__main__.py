"""`make bench`: the figures of a viral petition, on the embedded default (SQLite) and PostgreSQL.

Each run starts the system fresh (nats-server, the services, Caddy as the front door, a counting
mail sink), measures with wrk (compiled; Debian's package) and checks that every count is exact.
Each figure is printed as the median of the runs with its range, and as a ratio to a do-nothing
FastAPI endpoint measured in the same run. `--record docs/benchmarks.md` writes the table there.

    python -m bench                         # both backends, 3 runs each
    python -m bench --runs 1 --backends sqlite --only saturation,reads
    python -m bench --target ../other-checkout   # measure another checkout's code with this harness
"""

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import load
from bench.report import render, summary_rows
from bench.scenarios import load_average, one_run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signing-processes", type=int, default=1, help="signing processes on PostgreSQL")
    parser.add_argument("--only", default="", help="comma-separated steps: saturation, fixed, reads, viewers, confirmations, counting, replay, fanout")
    parser.add_argument("--target", type=Path, default=ROOT, help="checkout whose .venv and code are measured")
    parser.add_argument("--record", type=Path, help="write the Markdown table to this file")
    parser.add_argument("--json", type=Path, help="write every run's raw figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (logs, databases)")
    args = parser.parse_args(argv)
    load.require_wrk()
    load.raise_fd_limit()
    only = {s for s in args.only.split(",") if s}
    results: dict[str, list[dict]] = {}
    started = time.time()
    print(f"bench: {args.target} · load average before: {load_average()}", file=sys.stderr)
    for backend in [b for b in args.backends.split(",") if b]:
        processes = args.signing_processes if backend == "postgres" else 1
        for run in range(args.runs):
            print(f"bench: {backend} run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
            folder = Path(tempfile.mkdtemp(prefix=f"groundswell-bench-{backend}-"))
            try:
                results.setdefault(backend, []).append(
                    one_run(args.target.resolve(), backend, folder, signing_processes=processes, only=only))
            finally:
                if args.keep:
                    print(f"bench: kept {folder}", file=sys.stderr)
                else:
                    shutil.rmtree(folder, ignore_errors=True)
    table = render(summary_rows(results), machine=machine(), minutes=(time.time() - started) / 60)
    print(table)
    if args.record:
        args.record.write_text(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    cores = len([l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("processor")])
    memory_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return f"{cores} cores ({cpu}), {memory_gib:.0f} GiB, Python {platform.python_version()}, wrk on the same machine"


if __name__ == "__main__":
    sys.exit(main())

