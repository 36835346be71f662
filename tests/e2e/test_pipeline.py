"""End to end: real processes, driven over HTTP, read back over HTTP and SMTP."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from contract.counts import milestones_up_to

pytestmark = pytest.mark.e2e


def distinct_signers(n: int) -> list[dict]:
    signers = []
    for i in range(n):
        address = f"first.last{i}@gmail.com" if i % 6 == 0 else f"signer{i}@example.org"
        signers.append({"name": f"Signer {i}", "email": address, "country": "US", "updates": i % 2 == 0})
    return signers


def repeats_of(signers: list[dict], n: int) -> list[dict]:
    """The same mailboxes again: other case, +tags, gmail dots and googlemail.com."""
    variants = []
    for i, signer in enumerate(signers[:n]):
        local, domain = signer["email"].split("@")
        if domain == "gmail.com":
            address = f"{local.replace('.', '')}+again@googlemail.com" if i % 2 else f"F.i.r.s.t.{local[6:]}@GMAIL.com"
        else:
            address = [f"{local.upper()}@{domain.upper()}", f"{local}+petition@{domain}", f" {local}@{domain} "][i % 3]
        variants.append({**signer, "email": address, "name": f"Repeat {i}"})
    return variants


INVALID_BODIES = [
    {},
    {"name": "No Email"},
    {"name": "Bad Email", "email": "not-an-email"},
    {"name": "=HYPERLINK(\"x\")", "email": "formula@example.org"},
    {"name": "Visit https://spam.example", "email": "link@example.org"},
    {"name": "Country", "email": "country@example.org", "country": "XX"},
    {"name": "Long", "email": "long@example.org", "comment": "x" * 501},
    {"name": "Updates", "email": "updates@example.org", "updates": "sometimes"},
    {"name": "", "email": "empty@example.org"},
    {"name": "Extra", "email": "extra@example.org", "emial": "typo@example.org"},
]


def test_signatures_are_counted_exactly_and_each_milestone_emailed_once(system):
    petition = system.create_petition("elm-street-bridge")
    assert system.count(petition["id"]) is None or system.count(petition["id"]) == 0
    system.wait_for_count(petition["id"], 0)

    signers = distinct_signers(120)
    repeats = repeats_of(signers, 30)
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda body: system.sign(petition["slug"], body, client), signers + repeats))
        invalid = [system.sign(petition["id"], body, client) for body in INVALID_BODIES]

    assert [(r.status_code, r.json()) for r in responses] == [(202, {"status": "accepted"})] * 150
    assert [r.status_code for r in invalid] == [422] * 10
    assert all(r.json()["errors"] for r in invalid)

    system.wait_for_count(petition["id"], 120)
    system.wait_settled()
    assert system.count(petition["id"]) == 120
    emails = system.organizer_emails("elm-street-bridge")
    milestones = sorted(int(re.search(r"reached ([\d,]+) supporters", str(m["Subject"])).group(1)) for m in emails)
    assert milestones == [10, 25, 50, 100] == milestones_up_to(120)
    assert len({m["Message-ID"] for m in emails}) == 4
    hundred = next(m for m in emails if "reached 100 supporters" in str(m["Subject"]))
    assert "“Fix the bridge on Elm Street”" in str(hundred["Subject"])
    text = hundred.get_body(("plain",)).get_content()
    html = hundred.get_body(("html",)).get_content()
    assert "The next goal is 200" in text and "/p/elm-street-bridge" in text
    assert "/p/elm-street-bridge" in html

    # No signer's or organizer's email or name anywhere in the event log or in any service's logs.
    personal = {s["email"].lower() for s in signers + repeats} | {s["name"] for s in signers + repeats}
    personal |= {s["email"].split("@")[0] for s in signers}
    personal |= {"organizer-elm-street-bridge", "Patrick Leonard"}  # issue 9: PetitionCreated named them
    stream = system.stream_contents()
    assert len(stream) == 1 + 120 + 4  # PetitionCreated, SignatureAdded x 120, MilestoneReached x 4
    for subject, headers, payload in stream:
        seen = f"{subject} {headers} {payload.decode()}".lower()
        assert not [p for p in personal if p.lower() in seen], subject
    logs = "".join(service.logs() for service in system.services.values()).lower()
    assert logs and not [p for p in personal if p.lower() in logs]


def test_signing_accepts_while_nats_is_down_and_counts_exactly_after(system):
    petition = system.create_petition("nats-outage")
    system.wait_for_count(petition["id"], 0)
    system.nats.stop()

    with httpx.Client() as client:
        statuses = [system.sign(petition["id"], s, client).status_code for s in distinct_signers(50)]
    assert statuses == [202] * 50
    assert system.query("signing", "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0] == 50

    system.nats.start()
    system.wait_for_count(petition["id"], 50, timeout_s=90)
    system.wait_settled(timeout_s=90)
    assert system.count(petition["id"]) == 50
    assert sorted(str(m["Subject"]).split(" reached ")[1] for m in system.organizer_emails("nats-outage")) == [
        "10 supporters", "25 supporters", "50 supporters"]
