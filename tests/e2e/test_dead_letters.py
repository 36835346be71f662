"""Issue 9, item 4: an event that no retry can cure is set aside, and the consumer moves on.

Before, the notifier retried such an event every 30 s without end (a title with U+2028 made every
MilestoneReached of its petition fail), and the counter skipped an unreadable one with only a log
line. Now each goes to its service's dead letters (table, metric, log line), the consumer goes on,
and `groundswell <service> dead-letters` lists them and retries them once the cause is fixed."""

import asyncio
import json
import re
import subprocess
import sys
import uuid

import httpx
import nats
import pytest

from tests.e2e.test_pipeline import distinct_signers
from tests.harness import ROOT, eventually, metrics
from tests.system import System

pytestmark = pytest.mark.e2e


def publish_raw(system: System, subject: str, payload: bytes) -> None:
    async def publish() -> None:
        nc = await nats.connect(system.nats.url)
        await nc.jetstream().publish(subject, payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        await nc.close()

    asyncio.run(publish())


def dead_letters(system: System, service: str, *args: str) -> tuple[int, list[dict]]:
    run = subprocess.run([sys.executable, "-m", "services", service, "dead-letters", *args],
                         env=getattr(system, service).env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return run.returncode, [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def milestones_emailed(system: System, slug: str) -> list[int]:
    return sorted(int(re.search(r"reached ([\d,]+) supporters", str(m["Subject"])).group(1))
                  for m in system.organizer_emails(slug))


def sign(system: System, petition_id: str, signers: list[dict]) -> None:
    with httpx.Client() as client:
        for body in signers:
            assert system.sign(petition_id, body, client).status_code == 202


@pytest.fixture
def system(tmp_path, backend):
    """The notifier starts with a wrong internal token: signing answers 401 for the organizer's
    contact, a failure no redelivery cures (until an operator fixes the setting)."""
    running = System(tmp_path, backend)
    running.notifier.env["GROUNDSWELL_INTERNAL_TOKEN"] = "not-the-token"
    running.notifier.env["GROUNDSWELL_DEAD_LETTER_AFTER"] = "3"
    try:
        yield running.start()
    finally:
        running.stop()


def test_poison_events_are_set_aside_listed_and_retried(system):
    petition = system.create_petition("poison")
    unreadable = b'{"type": "MilestoneReached", "petition_id": "' + petition["id"].encode() + b'", "milestone": "ten"}'
    publish_raw(system, f"petitions.{petition['id']}.events.MilestoneReached", unreadable)
    publish_raw(system, f"petitions.{petition['id']}.events.SignatureAdded", b"not json")
    signers = distinct_signers(30)
    sign(system, petition["id"], signers[:10])
    system.wait_for_count(petition["id"], 10)

    # The notifier: the unreadable event at once, the milestone after 3 deliveries; then it moves on.
    eventually(lambda: len(dead_letters(system, "notifier")[1]) == 2, timeout_s=60, message="two dead letters")
    system.wait_settled()  # nothing left pending or unacked: it did not stall on them
    code, listed = dead_letters(system, "notifier")
    assert code == 0
    assert sorted((row["type"], row["deliveries"]) for row in listed) == [("MilestoneReached", 1),
                                                                          ("MilestoneReached", 3)]
    assert any(row["error"].startswith("undecodable") for row in listed)
    assert any("401" in row["error"] for row in listed)
    assert metrics(system.notifier)[("groundswell_dead_letters_total", (("durable", "notifier"),))] == 2
    assert system.notifier.logs().count('"dead_lettered"') == 2
    assert milestones_emailed(system, "poison") == []

    # The counter set its unreadable event aside too, and counted exactly.
    code, counter_letters = dead_letters(system, "counter")
    assert code == 0 and [(row["subject"].rsplit(".", 1)[1], row["error"][:11]) for row in counter_letters] == [
        ("SignatureAdded", "undecodable")]
    assert system.count(petition["id"]) == 10

    # The operator fixes the token and restarts the notifier; later milestones flow at once.
    system.notifier.stop()
    system.notifier.env["GROUNDSWELL_INTERNAL_TOKEN"] = system.signing.env["GROUNDSWELL_INTERNAL_TOKEN"]
    system.notifier.start()
    sign(system, petition["id"], signers[10:30])
    system.wait_for_count(petition["id"], 30)
    eventually(lambda: milestones_emailed(system, "poison") == [25], timeout_s=60, message="milestone 25 email")

    # Retrying: the milestone-10 email goes out once; the unreadable event stays (exit 1).
    code, retried = dead_letters(system, "notifier", "--retry", "all")
    assert code == 1
    assert sorted(row["result"] == "resolved" for row in retried) == [False, True]
    assert milestones_emailed(system, "poison") == [10, 25]
    code, again = dead_letters(system, "notifier", "--retry", "all")  # only the unreadable one is left
    assert code == 1 and len(again) == 1 and again[0]["result"].startswith("ValidationError")
    assert milestones_emailed(system, "poison") == [10, 25]  # a retry never sends twice
    assert len(dead_letters(system, "notifier", "--resolved")[1]) == 2
    assert len(dead_letters(system, "notifier")[1]) == 1
