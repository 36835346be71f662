"""One benchmark run on one backend: every figure of issue 8, each checked for exactness."""

import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench import load
from bench.stack import Stack, answers, free_port, wait_until

HERE = Path(__file__).resolve().parent
SIGN_SECONDS = 10
READ_SECONDS = 8
FANOUT_SUPPORTERS = 5000


def noop_reference(workdir: Path, target: Path) -> dict[str, float]:
    """The do-nothing FastAPI app (uvicorn, uvloop, httptools): a POST that validates the same body,
    a GET; measured directly and behind the same front door (this checkout's Caddyfile, its
    upstreams pointed at the app), since the system's figures are taken through the front door."""
    port = free_port()
    log = (workdir / "noop.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.noop:app", "--port", str(port), "--loop", "uvloop",
         "--http", "httptools", "--log-level", "warning", "--no-access-log"],
        cwd=HERE.parent, stdout=log, stderr=log,
    )
    web_port = free_port()
    (workdir / "noop-caddy").mkdir(exist_ok=True)
    caddy = subprocess.Popen(
        [str(target / ".venv" / "bin" / "caddy"), "run", "--config", str(target / "deploy" / "Caddyfile"),
         "--adapter", "caddyfile"],
        env={**os.environ, "GROUNDSWELL_WEB_ADDRESS": f"http://127.0.0.1:{web_port}", "GROUNDSWELL_WEB_BIND": "127.0.0.1",
             "GROUNDSWELL_SIGNING_UPSTREAM": f"127.0.0.1:{port}", "GROUNDSWELL_COUNTER_UPSTREAM": f"127.0.0.1:{port}",
             "GROUNDSWELL_PUBLIC_DIR": str(workdir / "noop-caddy"), "XDG_DATA_HOME": str(workdir / "noop-caddy"),
             "XDG_CONFIG_HOME": str(workdir / "noop-caddy")},
        stdout=log, stderr=log,
    )
    figures = {}
    try:
        for name, base in (("", f"http://127.0.0.1:{port}"), ("_front", f"http://127.0.0.1:{web_port}")):
            wait_until(lambda: answers(f"{base}/petitions/x/count"), 30, "do-nothing app up")
            post = load.run(f"{base}/petitions/x/signatures", "sign.lua", ["noop", 0], connections=64,
                            duration_s=READ_SECONDS)
            get = load.run(f"{base}/petitions/x/count", "get.lua", [], connections=64, duration_s=READ_SECONDS)
            assert post.count(202) == post.requests and get.count(200) == get.requests, (post, get)
            figures[f"noop{name}_post_rps"], figures[f"noop{name}_get_rps"] = post.rate, get.rate
    finally:
        for process in (caddy, server):
            process.terminate()
            process.wait(timeout=20)
    return figures


class VisibilityProbe(threading.Thread):
    """Signs its own petition a few times a second through the front door and times how long each
    202 takes to show in the count the front door serves (the same pipeline as the load's)."""

    def __init__(self, stack: Stack, petition_id: str, interval_s: float = 0.1, poll_s: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.stack, self.petition_id, self.confirming = stack, petition_id, stack.confirming()
        self.sign_url = f"{stack.web}/petitions/{petition_id}/signatures"
        self.count_url = f"{stack.web}/petitions/{petition_id}/count"
        self.interval_s, self.poll_s = interval_s, poll_s
        self.delays_s: list[float] = []
        self.stopping = threading.Event()
        self.failures = 0

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            signed = 0
            while not self.stopping.is_set():
                body = {"name": "Probe Signer", "email": f"probe-{secrets.token_hex(6)}@example.org", "country": "GB"}
                if client.post(self.sign_url, json=body).status_code != 202 or not self._confirm(client, body):
                    self.failures += 1
                    continue
                signed += 1
                accepted = time.perf_counter()  # from the moment the signature counts: 202, or its link followed
                while time.perf_counter() - accepted < 30:
                    response = client.get(self.count_url)
                    if response.status_code == 200 and response.json()["count"] >= signed:
                        break
                    time.sleep(self.poll_s)
                self.delays_s.append(time.perf_counter() - accepted)
                self.stopping.wait(self.interval_s)

    def _confirm(self, client: httpx.Client, body: dict) -> bool:
        """With confirmation on, follow the signature's link (read from signing's table, as if
        from the email); the probe times from the moment it counts."""
        if not self.confirming:
            return True
        deadline = time.perf_counter() + 30
        while (token := self.stack.token_of(self.petition_id, body["email"])) is None:
            if time.perf_counter() > deadline:
                return False
            time.sleep(self.poll_s)
        return client.get(f"{self.stack.web}/c/{token}").status_code == 303

    def finish(self) -> dict[str, float]:
        self.stopping.set()
        self.join(60)
        delays = sorted(self.delays_s)
        return {
            "visible_p50_ms": 1000 * statistics.median(delays),
            "visible_p99_ms": 1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))],
            "visible_samples": len(delays),
        }


def follow_links(stack: Stack, petition_id: str, measure_s: float | None = None, passes: int = 5) -> dict:
    """With confirmation on, follow every pending signature's link through the front door (the
    tokens read from signing's table stand for the emails). With `measure_s`, the first pass is
    timed: the confirmation rate. Then passes until none is pending."""
    if not stack.confirming():
        return {}
    figures: dict = {}
    tokens_file = stack.workdir / f"tokens-{petition_id}.txt"
    for attempt in range(passes):
        tokens = stack.pending_tokens(petition_id)
        if not tokens:
            return figures
        tokens_file.write_text("\n".join(tokens) + "\n")
        duration = measure_s if measure_s and attempt == 0 else 2 + len(tokens) // 500
        result = load.run(stack.web, "confirm.lua", [str(tokens_file)], connections=64, duration_s=duration)
        if measure_s and attempt == 0:
            figures = {"confirm_rps": result.count(303) / result.seconds, "confirm_p99_ms": result.p99_ms,
                       "confirm_non_303": result.requests - result.count(303),
                       "confirm_all_used": result.count(303) >= len(tokens) - 1}
    if passes > 1:
        raise SystemExit(f"bench: {len(stack.pending_tokens(petition_id))} still pending after {passes} passes")
    return figures


def check_exact(stack: Stack, petition_id: str, accepted: int, what: str) -> dict:
    """The count equals the rows, and every 202 is among them. wrk stops at its deadline with
    requests in flight that still commit, so rows >= 202s; the count must equal the rows (with
    confirmation on, once every link is followed)."""
    follow_links(stack, petition_id)
    last: dict = {}

    def settled() -> bool:
        last["rows"], last["count"] = stack.signature_rows(petition_id), stack.count(petition_id)
        last["unpublished"] = stack.unpublished()
        return last["rows"] >= accepted and last["count"] == last["rows"] and last["unpublished"] == 0

    try:
        wait_until(settled, 180, f"{what}: count = rows")
    except SystemExit as exc:
        raise SystemExit(f"{exc}; last {last}, 202s {accepted}") from None
    return {"accepted": accepted, "rows": last["rows"], "counted": last["count"]}


def signing_saturation(stack: Stack) -> dict:
    petition = stack.create_petition("Saturation")
    probe_petition = stack.create_petition("Visibility probe")
    probe = VisibilityProbe(stack, probe_petition["id"])
    cpu_before = stack.cpu_seconds()
    probe.start()
    result = load.run(f"{stack.web}/petitions/{petition['id']}/signatures", "sign.lua",
                      [f"sat{secrets.token_hex(3)}", 0], connections=64, duration_s=SIGN_SECONDS)
    visible = probe.finish()
    cpu_after = stack.cpu_seconds()
    signing_cpu = sum(cpu_after[n] - cpu_before.get(n, 0) for n in cpu_after if n.startswith("signing"))
    accepted = result.count(202)
    confirmed = follow_links(stack, petition["id"], measure_s=READ_SECONDS)
    exact = check_exact(stack, petition["id"], accepted, "saturation")
    return {**confirmed,
        "sign_rps": accepted / result.seconds, "sign_p50_ms": result.p50_ms, "sign_p99_ms": result.p99_ms,
        "sign_non_202": result.requests - accepted, "sign_socket_errors": result.socket_errors,
        "sign_cpu_ms": 1000 * signing_cpu / max(1, accepted + visible["visible_samples"]),
        "cpu_s": {n: round(cpu_after[n] - cpu_before.get(n, 0), 2) for n in cpu_after},
        **visible, "sign_exact": exact,
    }


def signing_fixed_rate(stack: Stack, rate: int = 1000) -> dict:
    petition = stack.create_petition("Fixed rate")
    result = load.run(f"{stack.web}/petitions/{petition['id']}/signatures", "sign.lua",
                      [f"fix{secrets.token_hex(3)}", rate], connections=128, duration_s=SIGN_SECONDS)
    exact = check_exact(stack, petition["id"], result.count(202), "fixed rate")
    return {"fixed_rps": result.count(202) / result.seconds, "fixed_p50_ms": result.p50_ms,
            "fixed_p99_ms": result.p99_ms, "fixed_non_202": result.requests - result.count(202),
            "fixed_exact": exact}


def reads(stack: Stack) -> dict:
    """One hot petition's count JSON and page through the front door."""
    petition = stack.create_petition("Hot reads")
    for body in ({"name": "First Reader", "email": "first@example.org", "country": "GB"},):
        assert httpx.post(f"{stack.web}/petitions/{petition['id']}/signatures", json=body, timeout=30).status_code == 202
    follow_links(stack, petition["id"])
    wait_until(lambda: stack.count(petition["id"]) == 1, 60, "first signature counted")
    page_url = f"{stack.web}/p/{petition['slug']}"
    wait_until(lambda: "<strong data-count>1</strong>" in httpx.get(page_url, timeout=10).text, 30, "page shows 1")
    count = load.run(f"{stack.web}/petitions/{petition['id']}/count", "get.lua", [], connections=64,
                     duration_s=READ_SECONDS)
    page = load.run(page_url, "get.lua", [], connections=64, duration_s=READ_SECONDS)
    result = {"count_rps": count.count(200) / count.seconds, "count_p99_ms": count.p99_ms,
              "count_non_200": count.requests - count.count(200),
              "page_rps": page.count(200) / page.seconds, "page_p99_ms": page.p99_ms,
              "page_non_200": page.requests - page.count(200)}
    # The same page asked for in another language (Accept-Language: Arabic first), where there are languages.
    arabic = "ar-EG,ar;q=0.9,en;q=0.5"
    if 'lang="ar"' in httpx.get(page_url, headers={"Accept-Language": arabic}, timeout=10).text:
        wait_until(lambda: "<strong data-count>1</strong>" in httpx.get(page_url, headers={"Accept-Language": arabic},
                                                                       timeout=10).text, 30, "Arabic page shows 1")
        lang = load.run(page_url, "get.lua", [0, arabic], connections=64, duration_s=READ_SECONDS)
        result.update({"page_lang_rps": lang.count(200) / lang.seconds, "page_lang_p99_ms": lang.p99_ms,
                       "page_lang_non_200": lang.requests - lang.count(200)})
    # The discovery list (where there is one): its page (/petitions, as / is) and its JSON, every petition
    # the run has made on it, most signed first.
    if httpx.get(f"{stack.web}/petitions.json", timeout=10).status_code == 200:
        wait_until(lambda: f'href="/p/{petition["slug"]}"' in httpx.get(f"{stack.web}/petitions", timeout=10).text,
                   60, "the hot petition listed")
        for key, url in (("list", f"{stack.web}/petitions"), ("list_json", f"{stack.web}/petitions.json")):
            listed = load.run(url, "get.lua", [], connections=64, duration_s=READ_SECONDS)
            result.update({f"{key}_rps": listed.count(200) / listed.seconds, f"{key}_p99_ms": listed.p99_ms,
                           f"{key}_non_200": listed.requests - listed.count(200)})
    return result


def signing_with_viewers(stack: Stack, viewers: int = 1000, poll_interval_ms: int = 2000) -> dict:
    """Signing at saturation while `viewers` connections each poll the same petition's count every
    ~2 s (uniformly 1-3 s) through the front door."""
    petition = stack.create_petition("Signing with viewers")
    polling = load.Background(f"{stack.web}/petitions/{petition['id']}/count", "get.lua", [poll_interval_ms],
                              connections=viewers, duration_s=SIGN_SECONDS + 4, core=0)
    time.sleep(2)  # the viewers are connected and polling before signing starts
    signed = load.run(f"{stack.web}/petitions/{petition['id']}/signatures", "sign.lua",
                      [f"view{secrets.token_hex(3)}", 0], connections=64, duration_s=SIGN_SECONDS)
    polled = polling.wait()
    exact = check_exact(stack, petition["id"], signed.count(202), "signing with viewers")
    return {"viewers_sign_rps": signed.count(202) / signed.seconds, "viewers_sign_p99_ms": signed.p99_ms,
            "viewers_poll_rps": polled.rate, "viewers_poll_5xx": polled.server_errors,
            "viewers_poll_socket_errors": polled.socket_errors, "viewers_exact": exact}


def confirmation_emails(stack: Stack) -> dict:
    """Confirmation emails: signatures pile up pending with the notifier stopped (as the other
    steps run), then it starts and the ledger times the emails for this petition's backlog."""
    if not stack.confirming():
        return {}
    petition = stack.create_petition("Confirmation emails")
    stack.stop_notifier()
    signed = load.run(f"{stack.web}/petitions/{petition['id']}/signatures", "sign.lua",
                      [f"conf{secrets.token_hex(3)}", 0], connections=64, duration_s=SIGN_SECONDS)
    pid = petition["id"]
    wait_until(lambda: stack.unpublished() == 0, 120, "every ConfirmationRequested published")
    pending = len(stack.pending_tokens(pid))
    stack.start_notifier()

    def sent() -> list:
        return stack.databases["notifier"].rows(
            f"SELECT sent_at FROM deliveries WHERE petition_id = '{pid}' AND milestone = 0 AND sent_at IS NOT NULL")

    wait_until(lambda: len(sent()) >= pending, 600, f"{pending} confirmation emails sent", interval_s=0.2)
    times = sorted(_seconds(row[0]) for row in sent())
    stack.stop_notifier()  # the fan-out step starts it afresh
    exact = check_exact(stack, pid, signed.count(202), "confirmation emails")
    return {"confirm_emails": len(times), "confirm_pending": pending,
            "confirm_eps": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "confirm_sign_rps": signed.count(202) / signed.seconds, "confirm_exact": exact}


def counting(stack: Stack) -> dict:
    """The counter's live consumer on a backlog: signatures pile up on the stream with the counter
    stopped, then it starts and the count's rise is timed, from the first counted signature to the
    last: events per second through the consumer (FastStream's batch loop, decoding, the
    projection's transaction, the ack)."""
    petition = stack.create_petition("Counting")
    pid = petition["id"]
    stack.stop_counter()
    signed = load.run(f"{stack.web}/petitions/{pid}/signatures", "sign.lua",
                      [f"cnt{secrets.token_hex(3)}", 0], connections=64, duration_s=SIGN_SECONDS)
    follow_links(stack, pid)
    wait_until(lambda: stack.unpublished() == 0, 120, "every event published")
    rows = stack.signature_rows(pid)
    stack.start_counter()
    seen: list[tuple[float, int]] = []

    def counted_all() -> bool:
        count = stack.count(pid)
        if count:
            seen.append((time.perf_counter(), count))
        return count == rows

    wait_until(counted_all, 300, f"{rows} signatures counted", interval_s=0.02)
    (first_at, first), (last_at, last) = seen[0], seen[-1]
    exact = check_exact(stack, pid, signed.count(202), "counting")
    return {"count_events": last - first, "count_eps": (last - first) / (last_at - first_at) if last_at > first_at else 0.0,
            "count_backlog": rows, "count_exact": exact}


def replay(stack: Stack) -> dict:
    """`groundswell counter rebuild` over everything the run has put on the stream."""
    env = stack.service_env("counter", free_port())
    started = time.perf_counter()
    finished = subprocess.run([stack.python, "-m", "services", "counter", "rebuild"], env=env, cwd=stack.target,
                              capture_output=True, text=True, timeout=600)
    wall_s = time.perf_counter() - started
    assert finished.returncode == 0, finished.stderr[-2000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    replay_s = summary.get("replay_s", wall_s)
    return {"replay_events": summary["events_replayed"], "replay_eps": summary["events_replayed"] / replay_s,
            "replay_wall_s": wall_s, "replay_timed_inside": "replay_s" in summary}


def supporter_fanout(stack: Stack, supporters: int = FANOUT_SUPPORTERS) -> dict:
    """Supporters who opted in reach goals 100 ... 5,000 with the notifier stopped; then the notifier
    starts and the sink times the supporter emails (throttle off)."""
    petition = stack.create_petition("Fan-out")
    burst = load.Background(f"{stack.web}/petitions/{petition['id']}/signatures", "sign.lua",
                            [f"fan{secrets.token_hex(3)}", 0, "true", supporters], connections=32, duration_s=300)
    counts = []

    def settled() -> bool:
        counts.append(stack.count(petition["id"]))
        return counts[-1] == supporters or (len(counts) > 100 and counts[-1] == counts[-100] and counts[-1])

    if stack.confirming():  # every supporter follows their link as the burst goes on
        def confirmed_all() -> bool:
            follow_links(stack, petition["id"], passes=1)  # the burst may still be signing
            return settled()
        wait_until(confirmed_all, 600, f"{supporters} supporters confirmed and counted", interval_s=0.1)
    else:
        wait_until(settled, 600, f"{supporters} supporters counted", interval_s=0.1)
    signed = burst.stop()
    stack.start_notifier()

    def arrivals() -> list[float]:
        if not stack.mail_log.exists():
            return []
        return [float(line.split(" ", 1)[0]) for line in stack.mail_log.read_text().splitlines()
                if "is counting on you" in line]

    pid = petition["id"]
    goals = int(stack.databases["counter"].scalar(
        f"SELECT count(*) FROM milestones WHERE petition_id = '{pid}' AND milestone >= 100"))

    def all_sent() -> bool:
        done = stack.databases["notifier"].scalar(
            f"SELECT count(*) FROM fanouts WHERE petition_id = '{pid}' AND done_at IS NOT NULL")
        return int(done) == goals

    wait_until(all_sent, 600, f"all {goals} fan-outs done", interval_s=0.2)
    # The rate from the notifier's own ledger (when each email was recorded as sent), checked
    # against what the sink received.
    sent = stack.databases["notifier"].rows(
        f"SELECT sent_at FROM deliveries WHERE petition_id = '{pid}' AND recipient <> 'organizer' AND milestone > 0 "
        "AND sent_at IS NOT NULL")
    times = sorted(_seconds(row[0]) for row in sent)
    wait_until(lambda: len(arrivals()) >= len(times), 30, "the sink received every email sent")
    return {"fanout_supporters": signed.count(202), "fanout_emails": len(times), "fanout_received": len(arrivals()),
            "fanout_eps": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0}


def _seconds(moment) -> float:
    """A timestamp from either database as Unix seconds (SQLite returns text, naive UTC)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def one_run(target: Path, backend: str, workdir: Path, *, signing_processes: int, only: set[str]) -> dict:
    figures: dict = {"backend": backend, "signing_processes": signing_processes}
    figures.update(noop_reference(workdir, target))
    stack = Stack(target, backend, workdir, signing_processes=signing_processes).start(notifier=False)
    try:
        steps = [("saturation", signing_saturation), ("fixed", signing_fixed_rate), ("reads", reads),
                 ("viewers", signing_with_viewers), ("confirmations", confirmation_emails), ("counting", counting),
                 ("replay", replay),
                 ("fanout", supporter_fanout)]
        for name, step in steps:
            if not only or name in only:
                print(f"  {backend}: {name} ...", file=sys.stderr, flush=True)
                measured = step(stack)
                print(f"  {json.dumps(measured, default=str)}", file=sys.stderr, flush=True)
                figures.update(measured)
        figures["unpublished_at_end"] = stack.unpublished()
    finally:
        stack.stop()
    return figures


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
