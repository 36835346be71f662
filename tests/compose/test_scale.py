"""Scaling out (issue 22): replicas of every service on one database and one durable consumer
each, and the NATS cluster file with the stream leader's container crashed under load."""

import time

import httpx
import pytest

from contract.counts import milestones_crossed
from tests.compose.stack import Signer, Stack, duplicates, milestone_counts, wait

pytestmark = pytest.mark.compose

COUNTING = {"GROUNDSWELL_CONFIRM_SIGNATURES": "false", "GROUNDSWELL_SIGN_RATE_LIMIT": "",
            "GROUNDSWELL_SUPPORTER_EMAILS_PER_S": "1000"}


def sign_and_check(stack: Stack, slug: str, at_least: int, during=None) -> int:
    """Sign until `at_least` are accepted (calling `during` once 100 are), then check the count is
    exact and each milestone was mailed once, and no email went twice; returns the count."""
    pid = stack.create_petition(slug)["id"]
    signer = Signer(stack, pid, rate_per_s=60).start()
    try:
        wait(lambda: len(signer.accepted) >= 100, timeout_s=120, message="signatures flowing")
        if during is not None:
            during()
        wait(lambda: len(signer.accepted) >= at_least, timeout_s=300, message=f"{at_least} accepted")
    finally:
        signer.stop()
    accepted = len(signer.accepted)
    assert accepted == signer.started
    wait(lambda: stack.count(pid) == accepted, timeout_s=180, message=f"count {accepted} (now {stack.count(pid)})")
    expected = {m: 1 for m in milestones_crossed(0, accepted)}
    wait(lambda: milestone_counts(stack.messages(), f"organizer-{slug}@example.org") == expected, timeout_s=120,
         message=f"milestone emails {expected}")
    assert duplicates(stack.messages()) == []
    return accepted


def test_replicas_of_every_service_count_exactly_and_mail_each_once(docker_host):
    stack = Stack(**COUNTING)
    try:
        stack.up("--scale", "signing=3", "--scale", "counter=2", "--scale", "notifier=2")
        assert [len(stack.containers(s)) for s in ("signing", "counter", "notifier")] == [3, 2, 2]
        counted = sign_and_check(stack, "scaled", 300)
        print(f"compose suite: 3 signing, 2 counters, 2 notifiers: {counted} counted exactly")
    finally:
        stack.down("-v")


def stream_leader(stack: Stack) -> str:
    """The compose service whose nats-server leads the event stream (asked of the monitoring port)."""
    jsz = httpx.get(f"http://127.0.0.1:{stack.nats_port}/jsz", params={"streams": "true", "accounts": "true"},
                    timeout=10).json()
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == "PETITIONS":
                leader = stream["cluster"]["leader"]
                return {"nats-1": "nats"}.get(leader, leader)
    raise AssertionError(f"no PETITIONS stream in {jsz}")


def test_the_cluster_file_counts_exactly_when_the_stream_leader_crashes(docker_host):
    stack = Stack("cluster", **COUNTING)
    crashed = {}
    try:
        stack.up()

        def crash_the_leader() -> None:
            leader = stream_leader(stack)
            crashed["service"], crashed["at"] = leader, time.monotonic()
            stack.crash(leader)
            wait(lambda: stack.healthy(leader), timeout_s=180, message=f"{leader} healthy again")
            crashed["healthy_s"] = time.monotonic() - crashed["at"]

        counted = sign_and_check(stack, "clustered", 300, during=crash_the_leader)
        print(f"compose suite: cluster, leader {crashed['service']} crashed, healthy again after "
              f"{crashed['healthy_s']:.1f} s; {counted} counted exactly")
    finally:
        stack.down("-v")
