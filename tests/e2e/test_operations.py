"""Running it like production: correlation ids end to end, replicas, refusing unsafe settings."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from contract.events import STREAM
from tests.e2e.test_pipeline import distinct_signers
from tests.harness import ROOT, Service, eventually, metrics, service_env

pytestmark = pytest.mark.e2e


def log_lines(service: Service) -> list[dict]:
    lines = []
    for line in service.logs().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_a_correlation_id_follows_a_signature_to_its_milestone_email(system):
    petition = system.create_petition("correlation")
    with httpx.Client() as client:
        for i, body in enumerate(distinct_signers(10)):
            response = system.sign(petition["id"], body, client, **{"X-Request-ID": f"corr-{i}"})
            assert response.status_code == 202 and response.headers["X-Request-ID"] == f"corr-{i}"
    eventually(lambda: system.organizer_emails("correlation"), message="milestone email")
    system.wait_settled()

    email = system.organizer_emails("correlation")[0]
    assert email["X-Correlation-ID"] == "corr-9"  # the tenth signature reached 10
    counter = [l for l in log_lines(system.counter) if l.get("event") == "milestone_reached"]
    notifier = [l for l in log_lines(system.notifier) if l.get("event") == "email_sent"]
    assert [(l["correlation_id"], l["milestone"]) for l in counter] == [("corr-9", 10)]
    assert [(l["correlation_id"], l["milestone"]) for l in notifier] == [("corr-9", 10)]
    assert all(l["service"] == "counter" for l in log_lines(system.counter))
    assert all(l["service"] == "notifier" for l in log_lines(system.notifier))


def test_metrics_report_what_happened(system):
    petition = system.create_petition("metrics")
    with httpx.Client() as client:
        bodies = distinct_signers(12)
        for body in bodies + bodies[:3]:  # 12 new, 3 repeats
            assert system.sign(petition["id"], body, client).status_code == 202
        assert system.sign(petition["id"], {"name": "x"}, client).status_code == 422
    eventually(lambda: len(system.organizer_emails("metrics")) == 1, message="the milestone-10 email")
    system.wait_settled()

    signing = metrics(system.signing)
    assert signing[("groundswell_signatures_accepted_total", (("kind", "new"),))] == 12
    assert signing[("groundswell_signatures_accepted_total", (("kind", "repeat"),))] == 3
    route = "/petitions/{ref}/signatures"
    assert signing[("groundswell_http_requests_total", (("method", "POST"), ("route", route), ("status", "202")))] == 15
    assert signing[("groundswell_http_requests_total", (("method", "POST"), ("route", route), ("status", "422")))] == 1
    assert signing[("groundswell_http_request_duration_seconds_count", (("method", "POST"), ("route", route)))] == 16
    assert signing[("groundswell_outbox_published_total", ())] == 13  # PetitionCreated + 12 signatures
    eventually(lambda: metrics(system.signing)[("groundswell_outbox_unpublished", ())] == 0, message="backlog 0")
    assert metrics(system.signing)[("groundswell_outbox_oldest_age_seconds", ())] == 0

    counter = metrics(system.counter)
    assert counter[("groundswell_milestones_detected_total", ())] == 1
    assert counter[("groundswell_consumer_batch_size_sum", (("durable", "counter"),))] == 13
    assert counter[("groundswell_consumer_pending", (("durable", "counter"),))] >= 0

    notifier = metrics(system.notifier)
    assert notifier[("groundswell_emails_total", (("outcome", "sent"),))] == 1
    assert notifier[("groundswell_emails_total", (("outcome", "failed"),))] == 0
    assert notifier[("groundswell_emails_total", (("outcome", "retried"),))] == 0


@pytest.mark.parametrize(("service", "given", "named"), [
    ("signing", {}, "GROUNDSWELL_ADMIN_TOKEN"),
    ("signing", {"GROUNDSWELL_ADMIN_TOKEN": "a-token"}, "GROUNDSWELL_INTERNAL_TOKEN"),
    ("notifier", {}, "GROUNDSWELL_INTERNAL_TOKEN"),
])
def test_production_mode_without_an_admin_token_refuses_to_start(tmp_path, service, given, named):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDSWELL_")}
    env.update({"GROUNDSWELL_MODE": "production", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/s.db", **given})
    result = subprocess.run([sys.executable, "-m", "services", service], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert named in result.stderr


def start_replica(system, name: str, folder) -> Service:
    """A second process of one service on the same database, NATS and SMTP."""
    env = service_env(name, nats_url=system.nats.url, database_url=system.databases[name].url,
                      smtp_port=system.smtp.port, admin_token=system.token)
    env.update({k: v for k, v in system.services[name].env.items()
                if k in ("GROUNDSWELL_SIGNING_URL", "GROUNDSWELL_PUBLIC_DIR", "GROUNDSWELL_PUBLIC_URL")})
    replica = Service(name, env, folder)
    folder.mkdir()
    replica.start()
    return replica


# Replicas share a PostgreSQL database; SQLite is the one-process embedded default.
@pytest.mark.parametrize("backend", ["postgres"])
def test_two_signing_and_two_counter_processes_share_one_database(system, tmp_path):
    replicas = {name: start_replica(system, name, tmp_path / f"{name}-2") for name in ("signing", "counter")}
    try:
        petition = system.create_petition("replicas")
        urls = [system.signing.url, replicas["signing"].url]
        signers = distinct_signers(2000)
        with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(
                lambda pair: client.post(f"{urls[pair[0] % 2]}/petitions/{petition['id']}/signatures",
                                         json=pair[1], timeout=30).status_code,
                enumerate(signers),
            ))
        assert statuses == [202] * 2000
        system.wait_for_count(petition["id"], 2000, timeout_s=120)
        system.wait_settled(timeout_s=120)
        assert system.count(petition["id"]) == 2000

        stream = system.stream_contents()
        signature_ids = [json.loads(p)["event_id"] for s, _, p in stream if s.endswith(".SignatureAdded")]
        assert len(signature_ids) == len(set(signature_ids)) == 2000  # each event on the stream once
        assert system.query("counter", "SELECT count(*) FROM processed_events WHERE type = 'SignatureAdded'") == [(2000,)]
        milestones = [json.loads(p)["milestone"] for s, _, p in stream if s.endswith(".MilestoneReached")]
        assert sorted(milestones) == [10, 25, 50, 100, 200, 500, 1000, 2000]
        # Both replicas of each service did work, and between them exactly the whole of it.
        signing = [metrics(service) for service in (system.signing, replicas["signing"])]
        accepted = [m[("groundswell_signatures_accepted_total", (("kind", "new"),))] for m in signing]
        assert accepted == [1000, 1000]  # the signatures alternated between the two
        published = [m[("groundswell_outbox_published_total", ())] for m in signing]
        assert all(p > 0 for p in published) and sum(published) == 2001  # + PetitionCreated: none twice
        batches = [metrics(service)[("groundswell_consumer_batch_size_sum", (("durable", "counter"),))]
                   for service in (system.counter, replicas["counter"])]
        assert all(b > 0 for b in batches), batches
    finally:
        for replica in replicas.values():
            replica.stop()


@pytest.mark.parametrize("backend", ["postgres"])
def test_two_notifiers_on_one_consumer_send_each_email_once(system, tmp_path):
    second = start_replica(system, "notifier", tmp_path / "notifier-2")
    try:
        petition = system.create_petition("two-notifiers")
        signers = distinct_signers(1000)  # half opt in to updates
        with httpx.Client() as client, ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda body: system.sign(petition["id"], body, client).status_code, signers))
        assert statuses == [202] * 1000
        system.wait_for_count(petition["id"], 1000, timeout_s=120)
        goals = [100, 200, 500, 1000]
        eventually(lambda: system.query("notifier", "SELECT count(*) FROM fanouts WHERE done_at IS NOT NULL")
                   == [(len(goals),)], timeout_s=120, message="every fan-out done")
        system.wait_settled()

        organizer = sorted(int(str(m["Subject"]).rsplit(" reached ", 1)[1].split()[0].replace(",", ""))
                           for m in system.organizer_emails("two-notifiers"))
        assert organizer == [10, 25, 50, 100, 200, 500, 1000]  # each once, across both notifiers
        for goal in goals:
            # The documented rule, read from signing's own table: opted in, signed at or before the milestone.
            signed_before = system.query("notifier", f"SELECT signed_before FROM fanouts WHERE milestone = {goal}")[0][0]
            expected = {row[0] for row in system.query(
                "signing", f"SELECT email FROM signatures WHERE updates AND created_at <= '{signed_before.isoformat()}'")}
            got = [m["To"].addresses[0].addr_spec for m in system.smtp.messages
                   if str(m["Subject"]) == "Patrick is counting on you"
                   and f"just reached {goal:,} supporters" in m.get_body(("plain",)).get_content()]
            assert len(got) == len(set(got)), f"someone got milestone {goal} twice"
            assert set(got) == expected, goal
        # Both were bound to the one durable consumer throughout (which of them got each of the
        # eight events is up to NATS; the exact emails above hold either way).
        assert all("consuming" in service.logs() and service.process.poll() is None
                   for service in (system.notifier, second))
    finally:
        second.stop()


def test_a_lost_event_stream_is_refilled_from_signings_outbox(system):
    """Restoring a backup into a fresh stack (README, "Back up and restore"): the databases come
    back, the event stream does not. `groundswell signing republish` sends every event in
    signing's outbox again; the counter, whose database came back too, counts none twice, and
    `counter rebuild` from the refilled stream gives the same counts; no email goes again."""
    first, second = system.create_petition("restored-1"), system.create_petition("restored-2")
    signers = distinct_signers(14)
    with httpx.Client() as client:
        for body in signers[:11]:
            assert system.sign(first["id"], body, client).status_code == 202
        for body in signers[11:]:
            assert system.sign(second["id"], body, client).status_code == 202
    system.wait_for_count(first["id"], 11)
    system.wait_for_count(second["id"], 3)
    system.wait_settled()
    emails_before = len(system.smtp.messages)
    assert emails_before == 1  # milestone 10 of the first petition

    # The stream is lost: a fresh nats-server on a fresh store, same address.
    system.nats.stop()
    import shutil

    shutil.rmtree(system.nats.store)
    system.nats.start()
    result = subprocess.run([sys.executable, "-m", "services", "signing", "republish"], env=system.signing.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["events"] == 16  # 2 PetitionCreated, 14 SignatureAdded
    # The petition stream only: the counter puts its count documents back in their bucket too.
    eventually(lambda: system.nats.stream_messages(STREAM) == 16, timeout_s=60, message="the stream refilled")
    system.wait_settled()
    assert (system.count(first["id"]), system.count(second["id"])) == (11, 3)
    print(system.rebuild())
    assert (system.count(first["id"]), system.count(second["id"])) == (11, 3)
    system.wait_settled()
    assert len(system.smtp.messages) == emails_before  # nobody mailed again
