"""`python -m bench.profile`: where signing's and the counter's CPU goes under saturating load.

Starts the bench stack, signs through the front door with wrk, records both processes with py-spy
(from PyPI: pip install py-spy) and prints each one's functions by share of samples: own time
(the function itself) and total (with what it calls).

With --notifier: signatures pile up pending with the notifier stopped, then the notifier starts
and its confirmation emails are profiled (the notifier, and signing answering its address lookups).
"""

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import load
from bench.stack import Stack, wait_until

ROOT = Path(__file__).resolve().parent.parent


def summarize(raw: Path, top: int, thread: str | None = None) -> str:
    """Own and total shares per function; with `thread`, only the stacks of threads whose name
    starts with it (py-spy --threads puts the thread first)."""
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if thread is not None:
            first, _, stack = stack.partition(";")
            if not first.startswith(f"thread ({thread}") and thread not in first:
                continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples", "own%   function"]
    lines += [f"{100 * n / samples:5.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "total% function"]
    lines += [f"{100 * n / samples:5.1f}  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--direct", action="store_true", help="sign at signing's port, not through Caddy")
    parser.add_argument("--notifier", action="store_true", help="profile the confirmation emails' sending")
    args = parser.parse_args()
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder = Path(tempfile.mkdtemp(prefix="groundswell-profile-"))
    stack = Stack(ROOT, args.backend, folder).start(notifier=False)
    try:
        petition = stack.create_petition("Profiled")
        base = stack.signing if args.direct else stack.web

        def record(names) -> dict:
            return {
                name: subprocess.Popen([spy, "record", "--pid", str(stack.processes[name].pid), "--duration",
                                        str(args.seconds), "--rate", "250", "--format", "raw", "--nonblocking",
                                        "--threads", "--output", str(folder / f"{name}.txt")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name in names
            }

        if args.notifier:
            load.run(f"{base}/petitions/{petition['id']}/signatures", "sign.lua", ["profile", 0],
                     connections=64, duration_s=args.seconds * 2)
            wait_until(lambda: stack.unpublished() == 0, 120, "every ConfirmationRequested published")
            stack.start_notifier()
            recorders = record(("notifier", "signing-0"))
            started = time.monotonic()
            for recorder in recorders.values():
                recorder.wait(timeout=60)
            sent = stack.databases["notifier"].rows(
                "SELECT count(*) FROM deliveries WHERE milestone = 0 AND sent_at IS NOT NULL")[0][0]
            print(f"{sent:,} confirmation emails in the first {time.monotonic() - started:.0f} s ({args.backend})")
        else:
            recorders = record(("signing-0", "counter"))
            result = load.run(f"{base}/petitions/{petition['id']}/signatures", "sign.lua", ["profile", 0],
                              connections=64, duration_s=args.seconds)
            for recorder in recorders.values():
                recorder.wait(timeout=60)
            print(f"{result.count(202) / result.seconds:,.0f} signatures/s during the profile "
                  f"({'direct' if args.direct else 'through Caddy'}, {args.backend})")
        for name in recorders:
            raw = folder / f"{name}.txt"
            main_thread = next((l.split(";", 1)[0] for l in raw.read_text().splitlines() if "Runner.run" in l), None)
            print(f"\n=== {name}, every thread\n{summarize(raw, args.top, thread='')}")
            if main_thread:
                print(f"\n=== {name}, the event loop's thread\n{summarize(raw, args.top, thread=main_thread)}")
            writer = next((l.split(";", 1)[0] for l in raw.read_text().splitlines() if "GroupCommitter._write" in l), None)
            if writer:
                print(f"\n=== {name}, the group committer's thread\n{summarize(raw, args.top, thread=writer)}")
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
