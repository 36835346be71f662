"""Emails built from the stdlib's encoders (services/notifier/emails.py) read back, part for part,
as the email package and mail clients read them."""

import email
import email.policy
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from services.notifier.contacts import Organizer
from services.notifier.emails import organizer_milestone_email, supporter_milestone_email
from services.notifier.emails import alternative, address
from services.notifier.smtp import wire_bytes
from contract.events import MilestoneReached

PETITION_ID = "5f0e8d62-1c4b-4d7e-9a51-2b7c9e0f3a11"


def read(message) -> email.message.EmailMessage:
    assert b"\n" not in message.data.replace(b"\r\n", b""), "every line ends in CRLF"
    assert max(len(line) for line in message.data.split(b"\r\n")) <= 998
    return email.message_from_bytes(message.data, policy=email.policy.default)


@pytest.mark.parametrize("name", ["Ada Lovelace", "Zoë Ångström-Łukasiewicz", "José \"Pepe\" O'Hara", "李小龍",
                                  "A" * 60 + " Ünïcödé " + "B" * 60])
def test_names_and_addresses_come_back_as_given(name):
    message = alternative([("Subject", "Hi"), ("From", "Groundswell <no-reply@example.org>"),
                           ("To", address(name, "someone@example.org"))], "text", "<p>html</p>")
    parsed = read(message)
    assert parsed["To"].addresses[0].display_name == name
    assert parsed["To"].addresses[0].addr_spec == "someone@example.org"
    assert message.recipients == ("someone@example.org",) and message.sender == "no-reply@example.org"


@pytest.mark.parametrize("title", [
    "Fix the bridge\r\nBcc: everyone@example.org",
    "Line\u2028separator and\u2029paragraph\x85next",
    "Ünïcödé " * 40,
    "x" * 2000,
])
def test_no_header_text_can_break_a_line_or_add_a_header(title):
    message = alternative([("Subject", title), ("From", "a@example.org"), ("To", "b@example.org")], "t", "h")
    parsed = read(message)
    # Subject, From, To, Date, Auto-Submitted, MIME-Version, Content-Type
    assert "Bcc" not in parsed and len(parsed.keys()) == 7
    assert parsed["Subject"] == " ".join(title.splitlines())


def test_bodies_come_back_exactly_even_with_dots_equals_signs_and_long_lines():
    text = "Hello Zoë,\n.starts with a dot\n=equals= and a =3D\n" + "long " * 100 + "\n\ttab and trailing space \nend"
    html = '<p style="margin:0">Ünïcödé &amp; <a href="https://x.example/?a=1&b=2">link</a></p>\n' + "<i>x</i>" * 200
    message = alternative([("Subject", "S"), ("From", "a@example.org"), ("To", "b@example.org")], text, html)
    assert b"\r\n.." not in message.data  # dot-stuffing is for the SMTP stage, not the message
    assert b"\r\n.." in wire_bytes(message) or b"\r\n." not in message.data
    parsed = read(message)
    assert parsed.get_content_type() == "multipart/alternative"
    # Text travels with CRLF line ends, its canonical form (RFC 2045); the lines are the same.
    assert parsed.get_body(("plain",)).get_content().splitlines() == text.splitlines()
    assert parsed.get_body(("html",)).get_content().splitlines() == html.splitlines()


def test_milestone_emails_carry_their_headers():
    petition = SimpleNamespace(title="Save the Elm Street bridge", slug="elm")
    patrick = Organizer(name="Patrick Leonard", email="patrick@example.org")
    event = MilestoneReached(petition_id=PETITION_ID, milestone=100, count=100, next_goal=200,
                             correlation_id="corr-7")
    organizer = read(organizer_milestone_email(event, petition, patrick, mail_from="Groundswell <no-reply@example.org>",
                                               public_url="https://petitions.example.org", message_id_value="<m1@x>"))
    assert organizer["Subject"] == "“Save the Elm Street bridge” reached 100 supporters"
    assert organizer["To"].addresses[0].addr_spec == "patrick@example.org"
    assert (organizer["Message-ID"], organizer["X-Correlation-ID"]) == ("<m1@x>", "corr-7")
    assert "https://petitions.example.org/p/elm" in organizer.get_body(("plain",)).get_content()

    assert organizer["Auto-Submitted"] == "auto-generated" and "List-Id" not in organizer
    assert abs((organizer["Date"].datetime - datetime.now(timezone.utc)).total_seconds()) < 60

    fanout = SimpleNamespace(petition_id=PETITION_ID, milestone=100, next_goal=200, correlation_id=None)
    recipient = SimpleNamespace(name="Zoë Ångström", email="zoe@example.org", unsubscribe_url="https://p.example/u/t", language="en")
    supporter = read(supporter_milestone_email(fanout, petition, patrick, recipient, mail_from="Groundswell <n@example.org>",
                                               public_url="https://petitions.example.org", message_id_value="<m2@x>"))
    assert supporter["Subject"] == "Patrick is counting on you"
    assert supporter["List-Unsubscribe"] == "<https://p.example/u/t>"
    assert supporter["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert supporter["List-Id"] == f"<petition-{PETITION_ID}.example.org>"
    assert (supporter["Precedence"], supporter["Auto-Submitted"]) == ("bulk", "auto-generated")
    assert supporter["Date"].datetime.tzinfo is not None
    assert "X-Correlation-ID" not in supporter
    assert supporter.get_body(("plain",)).get_content().startswith("Hello Zoë,")


def test_supporters_of_an_erased_organizer_hear_from_the_organizer():
    petition = SimpleNamespace(title="Save the Elm Street bridge", slug="elm")
    fanout = SimpleNamespace(petition_id=PETITION_ID, milestone=100, next_goal=200, correlation_id=None)
    recipient = SimpleNamespace(name="Zoë", email="zoe@example.org", unsubscribe_url="https://p.example/u/t", language="en")
    supporter = read(supporter_milestone_email(fanout, petition, None, recipient, mail_from="G <n@example.org>",
                                               public_url="https://p.example", message_id_value="<m3@x>"))
    assert supporter["Subject"] == "The organizer is counting on you"
