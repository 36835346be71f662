"""Crashes and redelivery: kill -9 mid-stream, republished events, a notifier killed mid-send."""

import asyncio
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import nats
import pytest

from contract.events import STREAM
from tests.e2e.test_pipeline import distinct_signers
from tests.harness import eventually, metrics

pytestmark = pytest.mark.e2e


def milestones_emailed(system, slug: str) -> list[int]:
    return sorted(int(str(m["Subject"]).rsplit(" reached ", 1)[1].split()[0].replace(",", ""))
                  for m in system.organizer_emails(slug))


def sign_ten(system, petition) -> None:
    """Ten signatures: enough to reach the first milestone."""
    with httpx.Client() as client:
        assert [system.sign(petition["id"], body, client).status_code for body in distinct_signers(10)] == [202] * 10


def test_counter_killed_mid_stream_restarts_with_the_exact_count(system):
    petition = system.create_petition("counter-crash")
    system.wait_for_count(petition["id"], 0)
    signers = distinct_signers(400)
    done = threading.Event()

    def sign_all() -> list[int]:
        with httpx.Client() as client, ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda body: system.sign(petition["id"], body, client).status_code, signers))
        done.set()
        return statuses

    with ThreadPoolExecutor(1) as runner:
        signing = runner.submit(sign_all)
        eventually(lambda: (system.count(petition["id"]) or 0) >= 60, message="counting under way")
        system.counter.kill()
        assert not done.is_set(), "the stream of signatures should still be flowing during the kill"
        system.counter.start()
        assert signing.result() == [202] * 400

    system.wait_for_count(petition["id"], 400)
    system.wait_settled()
    assert system.count(petition["id"]) == 400
    assert milestones_emailed(system, "counter-crash") == [10, 25, 50, 100, 200]


def test_republished_event_under_a_new_msg_id_counts_once(system):
    petition = system.create_petition("republished")
    with httpx.Client() as client:
        for body in distinct_signers(3):
            assert system.sign(petition["id"], body, client).status_code == 202
    system.wait_for_count(petition["id"], 3)
    system.wait_settled()

    async def republish() -> int:
        nc = await nats.connect(system.nats.url)
        js = nc.jetstream()
        copied = 0
        for seq in range(1, (await js.stream_info(STREAM)).state.last_seq + 1):
            stored = await js.get_msg(STREAM, seq)
            if json.loads(stored.data)["type"] == "SignatureAdded":
                ack = await js.publish(stored.subject, stored.data, headers={"Nats-Msg-Id": str(uuid.uuid4())})
                assert not ack.duplicate
                copied += 1
        await nc.close()
        return copied

    assert asyncio.run(republish()) == 3
    eventually(lambda: system.nats.consumers()["counter"]["delivered"]["stream_seq"] >= 7, message="copies delivered")
    system.wait_settled()
    assert system.count(petition["id"]) == 3


def test_rebuild_replays_the_stream_to_the_same_count_without_emailing_again(system):
    petition = system.create_petition("rebuild")
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda b: system.sign(petition["id"], b, client).status_code, distinct_signers(500)))
    assert statuses == [202] * 500
    system.wait_for_count(petition["id"], 500)
    system.wait_settled()
    assert milestones_emailed(system, "rebuild") == [10, 25, 50, 100, 200, 500]
    messages_before = system.nats.stream_messages()

    # Damage the projection, then rebuild it from the stream alone.
    system.execute("counter", "UPDATE petition_counts SET count = 7")
    system.execute("counter", "DELETE FROM processed_events")
    assert system.count(petition["id"]) == 7

    summary = json.loads(system.rebuild().strip().splitlines()[-1])
    assert summary["signatures"] == 500 and summary["new_milestones"] == 0
    assert system.count(petition["id"]) == 500
    system.wait_settled()
    assert system.nats.stream_messages() == messages_before
    assert milestones_emailed(system, "rebuild") == [10, 25, 50, 100, 200, 500]

    # The live counter still dedupes after the rebuild: a further signature counts once.
    assert system.sign(petition["id"], {"name": "One More", "email": "one.more@example.org"}).status_code == 202
    system.wait_for_count(petition["id"], 501)


def test_notifier_killed_after_claiming_still_sends_the_email_once(system):
    petition = system.create_petition("notifier-crash")
    system.smtp.hold()
    sign_ten(system, petition)

    def claimed_not_sent() -> bool:
        rows = system.query("notifier", "SELECT claim_token, sent_at FROM deliveries WHERE milestone = 10")
        return bool(rows) and rows[0][0] is not None and rows[0][1] is None

    eventually(claimed_not_sent, message="milestone 10 claimed")
    eventually(lambda: system.smtp.held >= 1, message="the notifier inside the SMTP conversation")
    system.notifier.kill()
    system.smtp.release()
    assert system.smtp.messages == []

    system.notifier.start()
    eventually(lambda: milestones_emailed(system, "notifier-crash") == [10], timeout_s=60, message="email sent")
    system.wait_settled()
    eventually(lambda: system.query("notifier", "SELECT sent_at FROM deliveries WHERE milestone = 10")[0][0],
               message="marked sent")
    assert milestones_emailed(system, "notifier-crash") == [10]


def test_smtp_refusing_is_retried_until_accepted(system):
    petition = system.create_petition("smtp-refusing")
    system.smtp.refuse()
    sign_ten(system, petition)
    eventually(lambda: system.query("notifier", "SELECT attempts FROM deliveries WHERE milestone = 10")
               and system.query("notifier", "SELECT attempts FROM deliveries WHERE milestone = 10")[0][0] >= 2,
               message="two refused attempts")
    assert system.smtp.messages == []
    system.smtp.refuse(False)
    eventually(lambda: milestones_emailed(system, "smtp-refusing") == [10], message="email accepted")
    system.wait_settled()
    assert milestones_emailed(system, "smtp-refusing") == [10]

    attempts = system.query("notifier", "SELECT attempts FROM deliveries WHERE milestone = 10")[0][0]
    emails = {labels[0][1]: value for (name, labels), value in metrics(system.notifier).items()
              if name == "groundswell_emails_total"}
    assert emails == {"sent": 1, "failed": attempts - 1, "retried": attempts - 1, "rejected": 0}


def test_an_organizer_address_refused_for_good_is_not_tried_again(system):
    """Issue 10: organizer emails go through the one delivery pipeline, so a 550 is recorded as
    rejected and the milestone event is done, instead of being retried every few minutes forever."""
    petition = system.create_petition("organizer-gone")
    system.smtp.rejected_recipients = {"organizer-organizer-gone@example.org"}
    sign_ten(system, petition)
    eventually(lambda: system.query("notifier", "SELECT failed_at FROM deliveries WHERE milestone = 10")
               and system.query("notifier", "SELECT failed_at FROM deliveries WHERE milestone = 10")[0][0],
               message="recorded as rejected")
    system.wait_settled()  # the MilestoneReached event was acked: nothing comes back
    (attempts, error), = system.query("notifier", "SELECT attempts, last_error FROM deliveries WHERE milestone = 10")
    assert attempts == 1 and error.startswith("550") and "organizer-organizer-gone" not in error
    assert system.smtp.messages == []
    emails = {labels[0][1]: value for (name, labels), value in metrics(system.notifier).items()
              if name == "groundswell_emails_total"}
    assert emails["rejected"] == 1 and emails["sent"] == 0
