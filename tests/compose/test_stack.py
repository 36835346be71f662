"""The operator's stack, built and run (issue 22): the image, signing with confirmation through the
front door, the mail each person gets once, the data surviving `down` and `up`, `down -v`."""

import re
import time

import httpx
import pytest

from tests.compose.stack import Stack, docker, duplicates, image_size_mb, milestone_counts, project_volumes, wait

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def stack(docker_host):
    # As behind an operator's own proxy on the host: web believes its X-Forwarded-For (issue 22:
    # otherwise everyone through the published port is one client, and the rate limit held them).
    running = Stack(GROUNDSWELL_SUPPORTER_EMAILS_PER_S="1000", GROUNDSWELL_FRONT_DOOR_TRUSTED_PROXIES="private_ranges")
    try:
        took = running.up()
        print(f"compose suite: up -d --build --wait took {took:.0f} s")
        yield running
    finally:
        running.down("-v")


def confirm_link(stack: Stack, address: str) -> str:
    """The confirmation link in the email to this address, read from the mail sink's API."""
    found = wait(lambda: [m for m in stack.to(address) if m["Subject"].startswith("Confirm your signature")],
                 timeout_s=60, message=f"the confirmation email to {address}")
    assert len(found) == 1, found
    text = stack.message(found[0]["ID"])["Text"]
    return re.search(r"(http://\S+/c/[A-Za-z0-9_-]+)", text).group(1)


def test_the_image_runs_as_a_user_without_the_embedded_binaries_and_starts_and_stops_quickly(stack):
    (image_id,) = {stack.inspect(c, "{{.Image}}") for s in ("signing", "counter", "notifier")
                   for c in stack.containers(s)}  # one image for all three
    assert stack.inspect(image_id, "{{.Config.User}}") == "groundswell"
    listing = docker("run", "--rm", "--entrypoint", "sh", image_id, "-c",
                     "id -u; ls /opt/groundswell/bin; command -v nats-server caddy || true")
    uid, *rest = listing.split()
    assert uid != "0" and "groundswell" in rest
    assert "nats-server" not in rest and "caddy" not in rest
    # Bounded start and stop: a service restarted is healthy again, and stops, within seconds.
    started = time.monotonic()
    stack.compose("restart", "--timeout", "20", "counter")
    stopped_s = time.monotonic() - started
    wait(lambda: stack.healthy("counter"), timeout_s=60, message="counter healthy after a restart")
    healthy_s = time.monotonic() - started
    assert stopped_s < 10, f"stop and start took {stopped_s:.1f} s"
    print(f"compose suite: image {image_size_mb(image_id):.0f} MB; counter restart {stopped_s:.1f} s, "
          f"healthy again after {healthy_s:.1f} s")


def test_sign_with_confirmation_through_the_front_door_counts_exactly_and_mails_each_once(stack):
    petition = stack.create_petition("compose-walk")
    pid = petition["id"]
    signers = [{"name": f"Signer Number{i}", "email": f"walk{i}@example.org", "country": "GB",
                "updates": i % 2 == 0} for i in range(12)]
    for i, body in enumerate(signers):  # twelve people behind the proxy: over 5 a minute from one would be held
        answer = httpx.post(f"{stack.web}/petitions/{pid}/signatures", json=body, timeout=30,
                            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        assert answer.status_code == 202, answer.text
    again = httpx.post(f"{stack.web}/petitions/{pid}/signatures", json=signers[0], timeout=30)
    assert again.status_code == 202  # a repeat: nothing more
    assert stack.count(pid) == 0  # nothing counts before its link is followed
    for body in signers:
        followed = httpx.get(confirm_link(stack, body["email"]), timeout=30, follow_redirects=False)
        assert followed.status_code == 303, followed.text
    wait(lambda: stack.count(pid) == 12, timeout_s=60, message="count 12")
    organizer = "organizer-compose-walk@example.org"
    wait(lambda: milestone_counts(stack.messages(), organizer) == {10: 1}, timeout_s=60,
         message="the organizer's milestone email")
    page = httpx.get(f"{stack.web}/p/compose-walk", timeout=30)
    assert page.status_code == 200 and "12" in page.text
    messages = stack.messages()
    assert duplicates(messages) == []
    confirmations = [m for m in messages if m["Subject"].startswith("Confirm your signature")]
    assert sorted(t["Address"] for m in confirmations for t in m["To"]) == sorted(s["email"] for s in signers)


def test_the_data_survives_down_and_up_and_down_v_removes_it(stack):
    """Last in this module: it takes the module's stack down (the fixture's own down -v is then a
    no-op), which saves `make test` a stack of its own."""
    pid = stack.create_petition("survivor")["id"]
    for i in range(3):
        body = {"name": f"Signer Number{i}", "email": f"keep{i}@example.org"}
        assert httpx.post(f"{stack.web}/petitions/{pid}/signatures", json=body, timeout=30).status_code == 202
    for i in range(3):
        assert httpx.get(confirm_link(stack, f"keep{i}@example.org"), timeout=30,
                         follow_redirects=False).status_code == 303
    wait(lambda: stack.count(pid) == 3, timeout_s=60, message="count 3")
    volumes = project_volumes(stack.project)
    assert len(volumes) >= 3  # nats, postgres, public
    stack.down()
    assert sorted(project_volumes(stack.project)) == sorted(volumes)
    stack.up()
    wait(lambda: stack.count(pid) == 3, timeout_s=60, message="count 3 after down and up")
    assert httpx.get(f"{stack.web}/petitions/survivor", timeout=30).json()["id"] == pid
    stack.down("-v")
    assert project_volumes(stack.project) == []
