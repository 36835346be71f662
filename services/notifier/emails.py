"""Every email the notifier sends (confirmation and sign-in links, milestones, updates, the
moderators' decisions): plain text and HTML, with deterministic Message-IDs.

How each is built as bytes, first:

Emails as bytes, built fast: a supporter fan-out sends thousands a second.

The stdlib's email package builds the same message, but slowly: EmailMessage parses every header
into token trees (3.7 ms an email on this machine) and compat32 folds each through a Header object
(about 1 ms). The notifier builds from the stdlib's own encoders instead, so nothing about the
format is invented here:
- header text that is not plain ASCII becomes RFC 2047 encoded words (email.header), addresses
  go through email.utils.formataddr;
- no line break of any kind (CR, LF, U+2028, ...) passes into a header: a title or a name can
  never add a header or end the header block;
- both bodies are UTF-8, quoted-printable (binascii.b2a_qp, in C), in one multipart/alternative
  whose boundary contains "=_", which quoted-printable text cannot contain.
tests/unit/test_mime.py reads messages back with the email package and compares every part.
"""

import binascii
import functools
import secrets
from urllib.parse import quote
from dataclasses import dataclass
from datetime import datetime
from email.charset import BASE64, Charset
from email.header import Header
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from uuid import NAMESPACE_URL, uuid5

import idna
from jinja2 import PackageLoader, select_autoescape

from contract.events import MilestoneReached
from shared import i18n

MAX_HEADER_LINE = 998  # RFC 5322's hard limit; longer text is folded as encoded words


# Base64 encoded words for text that is not ASCII. The stdlib's "utf-8" charset picks the shorter of
# base64 and quoted-printable, measuring every character both ways: 650 us for a subject with a
# typographic quote, most of an email's cost. Base64 is measured by arithmetic.
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = BASE64


def header_text(value: str) -> str:
    """One header's value, safe to write after "Name: "."""
    value = " ".join(value.splitlines())  # every kind of line break (str.splitlines knows them all)
    if value.isascii() and len(value) < MAX_HEADER_LINE - 80:
        return value
    return _encoded_words(value)


@functools.lru_cache(maxsize=4096)
def _encoded_words(value: str) -> str:
    """RFC 2047 encoded words (a subject repeats for every email about one petition: encoded once)."""
    return Header(value, _UTF8).encode(linesep="\r\n")


@functools.lru_cache(maxsize=1024)
def _ascii_domain(domain: str) -> str:
    return idna.encode(domain, uts46=True).decode("ascii")


def ascii_address(email_address: str) -> str:
    """The address as SMTP and headers carry it: an internationalized domain in its IDNA form
    (xn--...). Signing accepts only ASCII before the @; anything else raises UnicodeError."""
    if email_address.isascii():
        return email_address
    local, _, domain = email_address.rpartition("@")
    if not local.isascii():
        raise UnicodeError("an address with characters other than ASCII before the @ needs SMTPUTF8")
    return f"{local}@{_ascii_domain(domain)}"


def address(name: str, email_address: str) -> str:
    """`Name <address>`, the name quoted or encoded as it needs to be (header_text() then joins any
    folded lines: the space between adjacent encoded words is not part of the text)."""
    return formataddr((name, ascii_address(email_address)), charset="utf-8")


def quoted_printable(text: str) -> bytes:
    """UTF-8, quoted-printable, CRLF line ends."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Email:
    """A message ready for SMTP: its envelope and its bytes (CRLF lines, not yet dot-stuffed)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


def alternative(headers: list[tuple[str, str]], text: str, html: str, *, sender: str | None = None,
                recipients: tuple[str, ...] | None = None) -> Email:
    """A multipart/alternative email: plain text first, HTML second. `headers` are (name, value)
    with From and To among them; address headers should come from `address()`. The envelope is
    read from From and To unless given."""
    boundary = f"=_groundswell_{secrets.token_hex(12)}"
    lines = [f"{name}: {header_text(value)}" for name, value in headers]
    given = {name.lower() for name, _ in headers}
    if "date" not in given:  # RFC 5322 requires it; spam filters mark mail without it
        lines.append(f"Date: {formatdate(usegmt=True)}")
    if "auto-submitted" not in given:  # RFC 3834: written by a program, so no vacation reply answers it
        lines.append("Auto-Submitted: auto-generated")
    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"']
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    parts = b"".join(
        f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii") + quoted_printable(body) + b"\r\n"
        for subtype, body in (("plain", text), ("html", html))
    )
    if sender is None or recipients is None:
        values = dict(headers)
        sender = sender or parseaddr(values["From"])[1]
        recipients = recipients or tuple(a for _, a in getaddresses([values["To"]]) if a)
    return Email(sender, recipients, head + parts + f"--{boundary}--\r\n".encode("ascii"))


class DkimSigner:
    """Signs each message with DKIM (RFC 6376, rsa-sha256, relaxed/relaxed) over the headers a
    receiver judges it by, so a mailbox can tell the mail came from the From domain unchanged."""

    HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
               b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"auto-submitted", b"content-language")

    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        import dkim  # dkimpy: imported only when a key is configured

        self._sign = dkim.sign
        self.selector = selector.encode("ascii")
        self.domain = _ascii_domain(domain).encode("ascii")
        self.private_key = private_key
        self._sign(b"From: a@b\r\n\r\nx\r\n", self.selector, self.domain, private_key)  # a bad key fails at start

    def sign(self, message: Email) -> Email:
        signature = self._sign(message.data, self.selector, self.domain, self.private_key,
                               include_headers=list(self.HEADERS), linesep=b"\r\n")
        return Email(message.sender, message.recipients, signature + message.data)

    @classmethod
    def from_settings(cls, settings) -> "DkimSigner | None":
        if not getattr(settings, "dkim_selector", None) or not getattr(settings, "dkim_private_key_file", None):
            return None
        domain = settings.dkim_domain or mail_from_address(settings.mail_from).rpartition("@")[2]
        with open(settings.dkim_private_key_file, "rb") as key:
            return cls(settings.dkim_selector, domain, key.read())


def _registered(domain: str) -> str:
    """The last two labels of a domain (example.org of mail.example.org): near enough to the
    organizational domain DMARC aligns on for a warning."""
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


def mail_problems(settings) -> list[str]:
    """What would make mailbox providers distrust this notifier's mail: no DKIM key, or a From
    domain other than the links' (a phishing mark), or one the DKIM signature does not align with."""
    from urllib.parse import urlsplit

    problems = []
    sender_domain = mail_from_address(settings.mail_from).rpartition("@")[2]
    link_domain = urlsplit(settings.public_url).hostname or ""
    if not (settings.dkim_selector and settings.dkim_private_key_file):
        problems.append("dkim_off: set GROUNDSWELL_DKIM_SELECTOR and GROUNDSWELL_DKIM_PRIVATE_KEY_FILE (and publish the "
                        "public key in DNS), or mailbox providers are likely to file the mail as spam")
    elif settings.dkim_domain and _registered(settings.dkim_domain) != _registered(sender_domain):
        problems.append(f"dkim_unaligned: the DKIM domain {settings.dkim_domain} is not the From domain {sender_domain}")
    if _registered(sender_domain) != _registered(link_domain):
        problems.append(f"domains_unaligned: emails come from {sender_domain} but link to {link_domain}; "
                        "set GROUNDSWELL_MAIL_FROM to an address at the public URL's domain")
    return problems


# The emails

SUBJECT_TITLE_MAX = 80
CORRELATION_HEADER = "X-Correlation-ID"

# One environment per language (shared/i18n.py): every email speaks its reader's language.
_templates = i18n.Environments(
    PackageLoader("services.notifier", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    keep_trailing_newline=True,
    auto_reload=False,  # the templates ship with the code: no stat() of each file per email
)


def _both(language: str, template: str, context: dict) -> tuple[str, str]:
    env = _templates[language]
    return (env.get_template(f"{template}.txt.j2").render(context), env.get_template(f"{template}.html.j2").render(context))


def _first_name(name: str) -> str:
    return name.split()[0] if name.strip() else ""


def _path(slug: str) -> str:
    return f"/p/{quote(slug)}"


@functools.cache
def mail_from_address(mail_from: str) -> str:
    """The address in GROUNDSWELL_MAIL_FROM ("Name <address>"), parsed once."""
    return parseaddr(mail_from)[1]


def message_id(petition_id: str, milestone: int, recipient: str, domain: str) -> str:
    """The same delivery always gets the same Message-ID, so a repeat can be recognised."""
    return f"<{uuid5(NAMESPACE_URL, f'groundswell:{petition_id}:{milestone}:{recipient}')}@{domain}>"


def _shown(title: str) -> str:
    return title if len(title) <= SUBJECT_TITLE_MAX else title[: SUBJECT_TITLE_MAX - 1].rstrip() + "…"


def milestone_subject(title: str, milestone: int, language: str = "en") -> str:
    return i18n.translate_plural(language, "“%(title)s” reached %(num)s supporter", "“%(title)s” reached %(num)s supporters",
                         milestone, title=_shown(title))


def organizer_milestone_email(
    event: MilestoneReached, petition, organizer, *, mail_from: str, public_url: str, message_id_value: str
) -> Email:
    """To the organizer (services/notifier/contacts.py Organizer), in the petition's language: their
    petition reached a milestone (with a link to turn these emails off)."""
    language = organizer.language
    subject = milestone_subject(petition.title, event.milestone, language)
    context = {
        "subject": subject,
        "greeting_name": _first_name(organizer.name),
        "title": petition.title,
        "milestone": i18n.number(event.milestone, language),
        "milestone_n": event.milestone,
        "count": i18n.number(event.count, language),
        "count_n": event.count,
        "next_goal": i18n.number(event.next_goal, language),
        "petition_url": f"{public_url.rstrip('/')}{_path(petition.slug)}",
        "dashboard_url": f"{public_url.rstrip('/')}/dashboard/{quote(petition.slug)}",
    }
    headers = [
        ("Subject", subject),
        ("From", mail_from),
        ("To", address(organizer.name, organizer.email)),
        ("Message-ID", message_id_value),
    ]
    if event.correlation_id:
        headers.append((CORRELATION_HEADER, event.correlation_id))
    return alternative([*headers, ("Content-Language", language)], *_both(language, "milestone", context))


def bulk_headers(petition_id: str, mail_from: str, unsubscribe_url: str) -> list[tuple[str, str]]:
    """What marks the emails supporters opted in to as a list (RFC 2369, 2919, 8058): mail filters and
    mailbox providers group them, offer one-click unsubscribe, and hold no reply for them."""
    domain = mail_from_address(mail_from).rpartition("@")[2] or "localhost"
    return [
        ("List-Id", f"<petition-{petition_id}.{_ascii_domain(domain)}>"),
        ("List-Unsubscribe", f"<{unsubscribe_url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "bulk"),
    ]


def _to_supporter(template: str, subject: str, recipient, petition_id: str, context: dict, *, mail_from: str,
                  message_id_value: str, correlation_id: str | None) -> Email:
    """An email to a supporter who opted in: `<template>.txt.j2` and `.html.j2`, in their language,
    marked as a list with a one-click unsubscribe."""
    headers = [
        ("Subject", subject),
        ("From", mail_from),
        ("To", address(recipient.name, recipient.email)),
        ("Message-ID", message_id_value),
        *bulk_headers(petition_id, mail_from, recipient.unsubscribe_url),
    ]
    if correlation_id:
        headers.append((CORRELATION_HEADER, correlation_id))
    language = recipient.language
    return alternative([*headers, ("Content-Language", language)], *_both(language, template, context),
                       sender=mail_from_address(mail_from), recipients=(ascii_address(recipient.email),))


def supporter_milestone_email(
    fanout, petition, organizer, recipient, *, mail_from: str, public_url: str, message_id_value: str
) -> Email:
    """'<organizer's first name> is counting on you': the petition reached a goal; help reach the next.
    `organizer` is None once the organizer was erased: "The organizer is counting on you"."""
    language = recipient.language
    organizer_first_name = (organizer.first_name if organizer is not None and organizer.name.strip()
                            else i18n.translate(language, "The organizer"))
    subject = i18n.translate(language, "%(name)s is counting on you", name=organizer_first_name)
    petition_url = f"{public_url.rstrip('/')}{_path(petition.slug)}"
    context = {
        "subject": subject,
        "greeting_name": _first_name(recipient.name),
        "organizer_first_name": organizer_first_name,
        "title": petition.title,
        "milestone": i18n.number(fanout.milestone, language),
        "milestone_n": fanout.milestone,
        "next_goal": i18n.number(fanout.next_goal, language),
        "petition_url": petition_url,
        "share_url": f"{petition_url}/thanks",
        "unsubscribe_url": recipient.unsubscribe_url,
    }
    return _to_supporter("supporter", subject, recipient, fanout.petition_id, context, mail_from=mail_from,
                         message_id_value=message_id_value, correlation_id=fanout.correlation_id)


def _to_one(template: str, subject: str, name: str, email: str, context: dict, *, mail_from: str,
            message_id_value: str, correlation_id: str | None, language: str = "en") -> Email:
    """A transactional email to one person: `<template>.txt.j2` and `.html.j2` with `context`."""
    headers = [
        ("Subject", subject),
        ("From", mail_from),
        ("To", address(name, email)),
        ("Message-ID", message_id_value),
    ]
    if correlation_id:
        headers.append((CORRELATION_HEADER, correlation_id))
    context = {"subject": subject, "greeting_name": _first_name(name), **context}
    return alternative([*headers, ("Content-Language", language)], *_both(language, template, context),
                       sender=mail_from_address(mail_from), recipients=(ascii_address(email),))


def confirmation_email(confirmation, petition, *, mail_from: str, message_id_value: str,
                       correlation_id: str | None = None) -> Email:
    """To a signer: follow the link and your signature counts (services/notifier/contacts.py Confirmation)."""
    language = confirmation.language
    return _to_one("confirm", i18n.translate(language, "Confirm your signature on “%(title)s”", title=_shown(petition.title)),
                   confirmation.name, confirmation.email, {"title": petition.title, "confirm_url": confirmation.confirm_url},
                   mail_from=mail_from, message_id_value=message_id_value, correlation_id=correlation_id,
                   language=language)


def sign_in_email(link, petition, *, mail_from: str, message_id_value: str, correlation_id: str | None = None,
                  purpose: str = "sign_in") -> Email:
    """To the organizer: a link that signs them in to their petition's dashboard (once, for a
    while); for a petition just started at /start (`purpose` confirm), it also confirms their email."""
    # The confirming email goes to an address nobody has confirmed yet, so whoever typed it in
    # chose its title: that text stays out of the subject, where a mailbox shows it unopened.
    language = link.language
    subject = (i18n.translate(language, "Confirm your petition") if purpose == "confirm"
               else i18n.translate(language, "Sign in to “%(title)s”", title=_shown(petition.title)))
    return _to_one("sign_in", subject, link.name, link.email,
                   {"title": petition.title, "sign_in_url": link.sign_in_url, "purpose": purpose},
                   mail_from=mail_from, message_id_value=message_id_value, correlation_id=correlation_id,
                   language=language)


def supporter_update_email(update, petition, organizer, recipient, *, mail_from: str, public_url: str,
                           message_id_value: str, correlation_id: str | None = None) -> Email:
    """An organizer's update to a supporter who opted in, with a one-click unsubscribe."""
    language = recipient.language
    organizer_first_name = (organizer.first_name if organizer is not None and organizer.name.strip()
                            else i18n.translate(language, "The organizer"))
    context = {
        "subject": update.subject,
        "body": update.body,
        "paragraphs": [p.strip() for p in update.body.replace("\r\n", "\n").split("\n\n") if p.strip()],
        "greeting_name": _first_name(recipient.name),
        "organizer_first_name": organizer_first_name,
        "title": petition.title,
        "petition_url": f"{public_url.rstrip('/')}{_path(petition.slug)}",
        "unsubscribe_url": recipient.unsubscribe_url,
    }
    return _to_supporter("update", update.subject, recipient, petition.petition_id, context, mail_from=mail_from,
                         message_id_value=message_id_value, correlation_id=correlation_id)


def review_email(approved: bool, petition, organizer, *, mail_from: str, public_url: str, message_id_value: str,
                 correlation_id: str | None = None) -> Email:
    """To the organizer: the moderators approved the petition (it is live) or did not (and why)."""
    language = organizer.language
    subject = (i18n.translate(language, "“%(title)s” is live", title=_shown(petition.title)) if approved
               else i18n.translate(language, "“%(title)s” was not approved", title=_shown(petition.title)))
    context = {"title": petition.title, "approved": approved, "note": organizer.review_note,
               "petition_url": f"{public_url.rstrip('/')}{_path(petition.slug)}"}
    return _to_one("review", subject, organizer.name, organizer.email, context, mail_from=mail_from,
                   message_id_value=message_id_value, correlation_id=correlation_id, language=language)


def _bars(buckets: list[dict], language: str, days: int = 14) -> list[dict]:
    """The last `days` days of the chart, each with its share of the busiest (for bars drawn with widths)."""
    recent = buckets[-days:]
    most = max((b["count"] for b in recent), default=0) or 1
    return [{"day": i18n.date(datetime.fromisoformat(b["start"]), language, "medium"), "count": i18n.number(b["count"], language),
             "percent": max(1, round(100 * b["count"] / most)), "text_bar": "█" * max(1, round(20 * b["count"] / most))}
            for b in recent]


def decision_maker_email(link, petition, stats: dict, label: str, *, mail_from: str, public_url: str,
                         message_id_value: str, correlation_id: str | None = None) -> Email:
    """To the decision maker, at a threshold: the petition, its count, where its signers live and when
    they signed, the delivery summary, and a single-use link to respond publicly."""
    language = link.language
    count = stats.get("count", 0)
    subject = i18n.translate_plural(language, "A petition to you reached %(num)s signature: “%(title)s”",
                                    "A petition to you reached %(num)s signatures: “%(title)s”", count,
                                    title=_shown(petition.title))
    countries = [{"name": i18n.country(c["country"], language) if c["country"] else i18n.translate(language, "Not given"),
                  "count": i18n.number(c["count"], language)} for c in stats.get("countries", [])[:10]]
    context = {"title": petition.title, "label": i18n.translate(language, label), "count": i18n.number(count, language),
               "count_n": count, "countries": countries, "more_countries": max(0, len(stats.get("countries", [])) - 10),
               "bars": _bars(stats.get("buckets", []), language),
               "petition_url": f"{public_url.rstrip('/')}{_path(petition.slug)}", "respond_url": link.respond_url,
               "summary_url": link.summary_url, "expires": i18n.date(link.expires_at, language)}
    return _to_one("decision_maker", subject, "", link.email, context, mail_from=mail_from,
                   message_id_value=message_id_value, correlation_id=correlation_id, language=language)


def supporter_response_email(response, petition, recipient, *, mail_from: str, public_url: str,
                             message_id_value: str, correlation_id: str | None = None) -> Email:
    """The decision maker's response, to a supporter who opted in, with a one-click unsubscribe."""
    language = recipient.language
    subject = i18n.translate(language, "The decision maker responded to “%(title)s”", title=_shown(petition.title))
    context = {
        "subject": subject, "responder": response.responder, "body": response.body,
        "paragraphs": [p.strip() for p in response.body.replace("\r\n", "\n").split("\n\n") if p.strip()],
        "greeting_name": _first_name(recipient.name), "title": petition.title,
        "date": i18n.date(response.published_at, language),
        "petition_url": f"{public_url.rstrip('/')}{_path(petition.slug)}#response-{response.threshold}",
        "unsubscribe_url": recipient.unsubscribe_url,
    }
    return _to_supporter("response", subject, recipient, petition.petition_id, context, mail_from=mail_from,
                         message_id_value=message_id_value, correlation_id=correlation_id)
