"""Signing rules with no I/O: canonical emails, slugs, acceptable names."""

import hashlib
import hmac
import re
import unicodedata

from slugify import slugify

from shared.refs import SLUG_MAX

GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
FORMULA_PREFIXES = ("=", "+", "-", "@")
URL_PATTERN = re.compile(r"(https?://|www\.|\b[a-z0-9-]+\.(com|net|org|io|ly|co|info|biz|xyz|ru)\b)", re.I)


def mailbox_key(secret: bytes, email: str) -> str:
    """What signatures are deduplicated by: a keyed hash (HMAC-SHA256) of the canonical email.
    It stays after an erasure, so the same mailbox cannot sign twice, yet names no one without
    the secret (GROUNDSWELL_MAILBOX_KEY)."""
    return "k1:" + hmac.new(secret, canonical_email(email).encode(), hashlib.sha256).hexdigest()


def canonical_email(email: str) -> str:
    """One mailbox, one form: lower-case, no +tag; gmail also drops dots and is gmail.com."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def name_problem(name: str) -> str | None:
    """Why a signer's name is refused, or None when it is acceptable."""
    if name.startswith(FORMULA_PREFIXES):
        return "must not start with =, +, - or @"
    if URL_PATTERN.search(name):
        return "must not contain a link"
    return None


def derive_slug(title: str) -> str:
    apostrophes = [["'", ""], ["\u2019", ""]]  # "Denver's" -> "denvers", not "denver-s"
    # Keep every script as it is written (a transliteration loses words: "منذ" is not "mndh").
    slug = slugify(title, max_length=SLUG_MAX, word_boundary=True, replacements=apostrophes, allow_unicode=True)
    return unicodedata.normalize("NFC", slug) or "petition"
