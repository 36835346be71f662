"""Composing milestone emails (plain text and HTML) with deterministic Message-IDs."""

import functools
from email.utils import parseaddr
from uuid import NAMESPACE_URL, uuid5

from jinja2 import Environment, PackageLoader, select_autoescape

from services.notifier.mime import Email, address, alternative, ascii_address
from shared.events import MilestoneReached

SUBJECT_TITLE_MAX = 80
CORRELATION_HEADER = "X-Correlation-ID"

_templates = Environment(
    loader=PackageLoader("services.notifier", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    keep_trailing_newline=True,
    auto_reload=False,  # the templates ship with the code: no stat() of each file per email
)


@functools.cache
def mail_from_address(mail_from: str) -> str:
    """The address in GROUNDSWELL_MAIL_FROM ("Name <address>"), parsed once."""
    return parseaddr(mail_from)[1]


def message_id(petition_id: str, milestone: int, recipient: str, domain: str) -> str:
    """The same delivery always gets the same Message-ID, so a repeat can be recognised."""
    return f"<{uuid5(NAMESPACE_URL, f'groundswell:{petition_id}:{milestone}:{recipient}')}@{domain}>"


def _shown(title: str) -> str:
    return title if len(title) <= SUBJECT_TITLE_MAX else title[: SUBJECT_TITLE_MAX - 1].rstrip() + "…"


def milestone_subject(title: str, milestone: int) -> str:
    return f'"{_shown(title)}" reached {milestone:,} supporters'


def organizer_milestone_email(
    event: MilestoneReached, petition, organizer, *, mail_from: str, public_url: str, message_id_value: str
) -> Email:
    """To the organizer (services/notifier/contacts.py Organizer): their petition reached a milestone."""
    subject = milestone_subject(petition.title, event.milestone)
    context = {
        "subject": subject,
        "organizer_first_name": organizer.first_name,
        "title": petition.title,
        "milestone": f"{event.milestone:,}",
        "count": f"{event.count:,}",
        "next_goal": f"{event.next_goal:,}",
        "petition_url": f"{public_url.rstrip('/')}/p/{petition.slug}",
    }
    headers = [
        ("Subject", subject),
        ("From", mail_from),
        ("To", address(organizer.name, organizer.email)),
        ("Message-ID", message_id_value),
    ]
    if event.correlation_id:
        headers.append((CORRELATION_HEADER, event.correlation_id))
    return alternative(headers, _templates.get_template("milestone.txt.j2").render(context),
                       _templates.get_template("milestone.html.j2").render(context))


def supporter_milestone_email(
    fanout, petition, organizer, recipient, *, mail_from: str, public_url: str, message_id_value: str
) -> Email:
    """'<organizer's first name> is counting on you': the petition reached a goal; help reach the next.
    `organizer` is None once the organizer was erased: "The organizer is counting on you"."""
    organizer_first_name = organizer.first_name if organizer is not None else "The organizer"
    subject = f"{organizer_first_name} is counting on you"
    petition_url = f"{public_url.rstrip('/')}/p/{petition.slug}"
    context = {
        "subject": subject,
        "supporter_first_name": recipient.name.split()[0] if recipient.name.strip() else "there",
        "organizer_first_name": organizer_first_name,
        "title": petition.title,
        "milestone": f"{fanout.milestone:,}",
        "next_goal": f"{fanout.next_goal:,}",
        "petition_url": petition_url,
        "share_url": f"{petition_url}/thanks",
        "unsubscribe_url": recipient.unsubscribe_url,
    }
    headers = [
        ("Subject", subject),
        ("From", mail_from),
        ("To", address(recipient.name, recipient.email)),
        ("Message-ID", message_id_value),
        ("List-Unsubscribe", f"<{recipient.unsubscribe_url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    if fanout.correlation_id:
        headers.append((CORRELATION_HEADER, fanout.correlation_id))
    return alternative(headers, _templates.get_template("supporter.txt.j2").render(context),
                       _templates.get_template("supporter.html.j2").render(context),
                       sender=mail_from_address(mail_from), recipients=(ascii_address(recipient.email),))


def _to_one(template: str, subject: str, name: str, email: str, context: dict, *, mail_from: str,
            message_id_value: str, correlation_id: str | None) -> Email:
    """A transactional email to one person: `<template>.txt.j2` and `.html.j2` with `context`."""
    headers = [
        ("Subject", subject),
        ("From", mail_from),
        ("To", address(name, email)),
        ("Message-ID", message_id_value),
    ]
    if correlation_id:
        headers.append((CORRELATION_HEADER, correlation_id))
    context = {"subject": subject, "first_name": name.split()[0] if name.strip() else "there", **context}
    return alternative(headers, _templates.get_template(f"{template}.txt.j2").render(context),
                       _templates.get_template(f"{template}.html.j2").render(context),
                       sender=mail_from_address(mail_from), recipients=(ascii_address(email),))


def confirmation_email(confirmation, petition, *, mail_from: str, message_id_value: str,
                       correlation_id: str | None = None) -> Email:
    """To a signer: follow the link and your signature counts (services/notifier/contacts.py Confirmation)."""
    return _to_one("confirm", f'Confirm your signature on "{_shown(petition.title)}"', confirmation.name,
                   confirmation.email, {"title": petition.title, "confirm_url": confirmation.confirm_url},
                   mail_from=mail_from, message_id_value=message_id_value, correlation_id=correlation_id)


def sign_in_email(link, petition, *, mail_from: str, message_id_value: str, correlation_id: str | None = None,
                  purpose: str = "sign_in") -> Email:
    """To the organizer: a link that signs them in to their petition's dashboard (once, for a
    while); for a petition just started at /start (`purpose` confirm), it also confirms their email."""
    # The confirming email goes to an address nobody has confirmed yet, so whoever typed it in
    # chose its title: that text stays out of the subject, where a mailbox shows it unopened.
    subject = ("Confirm your petition" if purpose == "confirm"
               else f'Sign in to "{_shown(petition.title)}"')
    return _to_one("sign_in", subject, link.name, link.email,
                   {"title": petition.title, "sign_in_url": link.sign_in_url, "purpose": purpose},
                   mail_from=mail_from, message_id_value=message_id_value, correlation_id=correlation_id)


def supporter_update_email(update, petition, organizer, recipient, *, mail_from: str, public_url: str,
                           message_id_value: str, correlation_id: str | None = None) -> Email:
    """An organizer's update to a supporter who opted in, with a one-click unsubscribe."""
    organizer_first_name = organizer.first_name if organizer is not None else "The organizer"
    context = {
        "subject": update.subject,
        "body": update.body,
        "paragraphs": [p.strip() for p in update.body.replace("\r\n", "\n").split("\n\n") if p.strip()],
        "supporter_first_name": recipient.name.split()[0] if recipient.name.strip() else "there",
        "organizer_first_name": organizer_first_name,
        "title": petition.title,
        "petition_url": f"{public_url.rstrip('/')}/p/{petition.slug}",
        "unsubscribe_url": recipient.unsubscribe_url,
    }
    headers = [
        ("Subject", update.subject),
        ("From", mail_from),
        ("To", address(recipient.name, recipient.email)),
        ("Message-ID", message_id_value),
        ("List-Unsubscribe", f"<{recipient.unsubscribe_url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    if correlation_id:
        headers.append((CORRELATION_HEADER, correlation_id))
    return alternative(headers, _templates.get_template("update.txt.j2").render(context),
                       _templates.get_template("update.html.j2").render(context),
                       sender=mail_from_address(mail_from), recipients=(ascii_address(recipient.email),))


def review_email(approved: bool, petition, organizer, *, mail_from: str, public_url: str, message_id_value: str,
                 correlation_id: str | None = None) -> Email:
    """To the organizer: the moderators approved the petition (it is live) or did not (and why)."""
    subject = (f'"{_shown(petition.title)}" is live' if approved
               else f'"{_shown(petition.title)}" was not approved')
    context = {"title": petition.title, "approved": approved, "note": organizer.review_note,
               "petition_url": f"{public_url.rstrip('/')}/p/{petition.slug}"}
    return _to_one("review", subject, organizer.name, organizer.email, context, mail_from=mail_from,
                   message_id_value=message_id_value, correlation_id=correlation_id)
