"""The crash matrix (issue 22, must show 3): under a steady signing load through the front door,
each of signing, counter, notifier, nats and postgres crashes in turn (SIGKILL of its container's
main process from the host); each comes back by itself (its restart policy), and afterwards every
signature accepted with a 202 is counted exactly once, nothing else is counted, and no email goes
twice. The statuses clients saw while each was down are printed as the note's table."""

import time

import pytest

from tests.compose.stack import Signer, Stack, duplicates, milestone_counts, wait
from contract.counts import milestones_crossed

pytestmark = pytest.mark.compose

CRASHED = ("signing", "counter", "notifier", "nats", "postgres")


@pytest.fixture(scope="module")
def stack(docker_host):
    # Counting on signing, so the count can be checked against the 202s; the supporter fan-out
    # unthrottled, so every goal's emails are out before the end.
    running = Stack(GROUNDSWELL_CONFIRM_SIGNATURES="false", GROUNDSWELL_SIGN_RATE_LIMIT="",
                    GROUNDSWELL_SUPPORTER_EMAILS_PER_S="1000")
    try:
        running.up()
        yield running
    finally:
        running.down("-v")


def test_each_service_crashed_under_load_comes_back_and_nothing_is_lost_or_doubled(stack):
    petition = stack.create_petition("crash-matrix")
    pid = petition["id"]
    signer = Signer(stack, pid, rate_per_s=40).start()
    rows = []
    try:
        wait(lambda: len(signer.accepted) >= 100, timeout_s=120, message="signatures flowing")
        for service in CRASHED:
            before = len(signer.accepted)
            crashed_at = time.monotonic()
            stack.crash(service)
            wait(lambda: not stack.healthy(service), timeout_s=30, message=f"{service} seen down")
            wait(lambda: stack.healthy(service), timeout_s=180, message=f"{service} healthy again")
            healthy_at = time.monotonic()
            # Flowing again: 100 more accepted before the next crash.
            wait(lambda: len(signer.accepted) >= before + 100, timeout_s=180, message=f"signing after {service}")
            rows.append((service, signer.statuses_between(crashed_at, healthy_at), healthy_at - crashed_at))
    finally:
        signer.stop()
    accepted = len(signer.accepted)
    assert accepted == signer.started  # each signer a worker took was sent until it was accepted
    wait(lambda: stack.count(pid) == accepted, timeout_s=180,
         message=f"count {accepted} (now {stack.count(pid)})")
    organizer = "organizer-crash-matrix@example.org"
    expected = {m: 1 for m in milestones_crossed(0, accepted)}
    wait(lambda: milestone_counts(stack.messages(), organizer) == expected, timeout_s=120,
         message=f"the organizer's milestone emails {expected}")
    messages = stack.messages()
    doubled = duplicates(messages)
    assert doubled == []
    print("\ncompose suite: crash matrix (statuses while the service was down or unhealthy)")
    print("| service | statuses clients saw | time to healthy | 202s | final count | duplicate emails |")
    print("|---|---|---|---|---|---|")
    for service, statuses, took_s in rows:
        shown = ", ".join(f"{status} x{n}" for status, n in sorted(statuses.items(), key=str))
        print(f"| {service} | {shown or 'none'} | {took_s:.1f} s | | | |")
    print(f"| all | | | {accepted} | {stack.count(pid)} | {len(doubled)} |")
    assert stack.count(pid) == accepted
