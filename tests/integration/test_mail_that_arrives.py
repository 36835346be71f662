"""Mail that arrives: every kind of email, in every language, as a spam filter judges it
(SpamAssassin, Debian's, local tests only), and DKIM signatures that verify.

SpamAssassin runs on the messages exactly as the notifier builds them; a score of 5 marks spam,
and each must stay below 1."""

import base64
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from types import SimpleNamespace

import dkim
import pytest

from contract.events import MilestoneReached
from contract.internal_api import Confirmation, Recipient, SignInLink, UpdateText
from services.notifier.contacts import Organizer
from services.notifier.emails import (DkimSigner, confirmation_email, mail_problems, organizer_milestone_email,
                                      review_email, sign_in_email, supporter_milestone_email, supporter_update_email)
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import wire_bytes

PETITION_ID = "6f0c2a51-8d5e-4b8e-b2f4-3a9f1c7d2e10"
SITE = "https://petitions.example.org"
FROM = "Groundswell <no-reply@petitions.example.org>"
TITLES = {"en": "Keep the Elm Street library open", "fr": "Gardons la bibliothèque de la rue des Ormes ouverte",
          "es": "Mantengamos abierta la biblioteca de la calle Olmo", "de": "Die Bücherei in der Ulmenstraße bleibt offen",
          "ar": "أبقوا مكتبة شارع الدردار مفتوحة"}


def emails(language: str) -> dict[str, bytes]:
    """Each kind of email the notifier sends, in `language`, as bytes on the wire."""
    petition = SimpleNamespace(petition_id=PETITION_ID, title=TITLES[language], slug="keep-the-library-open")
    organizer = Organizer(name="Patrick Leonard", email="patrick@example.com", language=language,
                          review_note="Please name the council you are addressing.")
    supporter = Recipient(signature_id="s1", name="Zoë Ångström", email="zoe@example.net", language=language,
                          unsubscribe_url=f"{SITE}/u/8JcKx0rQm3vWn7pYt2aZ")
    mid = iter(f"<{n}.{language}@petitions.example.org>" for n in range(100))
    milestone = MilestoneReached(petition_id=PETITION_ID, milestone=100, count=100, next_goal=200)
    fanout = SimpleNamespace(petition_id=PETITION_ID, milestone=100, next_goal=200, correlation_id=None)
    update = UpdateText(number=1, subject=TITLES[language], posted_at=datetime.now(timezone.utc),
                        body="The council meets on Thursday.\n\nPlease share the petition with your neighbours.")
    built = {
        "confirmation": confirmation_email(
            Confirmation(signature_id="s1", petition_id=PETITION_ID, name="Zoë Ångström", email="zoe@example.net",
                         confirm_url=f"{SITE}/c/Qm9vS2VlcGVyLXRva2VuLTAx", language=language),
            petition, mail_from=FROM, message_id_value=next(mid)),
        "sign-in": sign_in_email(
            SignInLink(link_id="l1", petition_id=PETITION_ID, name="Patrick Leonard", email="patrick@example.com",
                       sign_in_url=f"{SITE}/o/c2lnbi1pbi10b2tlbi0wMQ", language=language),
            petition, mail_from=FROM, message_id_value=next(mid)),
        "start-confirmation": sign_in_email(
            SignInLink(link_id="l2", petition_id=PETITION_ID, name="Patrick Leonard", email="patrick@example.com",
                       sign_in_url=f"{SITE}/o/c2lnbi1pbi10b2tlbi0wMg", language=language),
            petition, mail_from=FROM, message_id_value=next(mid), purpose="confirm"),
        "organizer-milestone": organizer_milestone_email(milestone, petition, organizer, mail_from=FROM,
                                                         public_url=SITE, message_id_value=next(mid)),
        "supporter-milestone": supporter_milestone_email(fanout, petition, organizer, supporter, mail_from=FROM,
                                                         public_url=SITE, message_id_value=next(mid)),
        "update": supporter_update_email(update, petition, organizer, supporter, mail_from=FROM, public_url=SITE,
                                         message_id_value=next(mid)),
        "approved": review_email(True, petition, organizer, mail_from=FROM, public_url=SITE, message_id_value=next(mid)),
        "rejected": review_email(False, petition, organizer, mail_from=FROM, public_url=SITE, message_id_value=next(mid)),
    }
    return {kind: wire_bytes(email) for kind, email in built.items()}


def spam_score(message: bytes) -> tuple[float, str]:
    """SpamAssassin's score, with local tests only (no network), and its report."""
    out = subprocess.run(["spamassassin", "-L", "-t"], input=message, capture_output=True, timeout=120).stdout
    text = out.decode("utf-8", "replace")
    score = float(re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", text, re.M).group(1))
    return score, text[text.find("Content analysis details"):]


@pytest.fixture
def spamassassin():
    if shutil.which("spamassassin") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("spamassassin is missing: .ci/run installs Debian's spamassassin")
        pytest.skip("needs Debian's spamassassin (apt-get install spamassassin)")


@pytest.mark.parametrize("language", ["en", "fr", "es", "de", "ar"])
def test_every_kind_of_email_scores_well_below_spam(spamassassin, language):
    messages = emails(language)
    with ThreadPoolExecutor(max_workers=2) as pool:
        scores = dict(zip(messages, pool.map(spam_score, messages.values())))
    high = {kind: report for kind, (score, report) in scores.items() if score >= 1.0}
    assert not high, "\n\n".join(f"{kind}:\n{report}" for kind, report in high.items())
    assert len(scores) == 8


def test_spamassassin_does_mark_a_message_without_the_headers(spamassassin):
    """The check above can fail: the same email without its Date header scores MISSING_DATE."""
    message = emails("en")["confirmation"]
    without_date = re.sub(rb"^Date: [^\r]*\r\n", b"", message, count=1, flags=re.M)
    score, report = spam_score(without_date)
    assert "MISSING_DATE" in report and score >= spam_score(message)[0] + 1.0


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a key")
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public_der = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True,
                                capture_output=True).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)


def test_a_configured_key_signs_every_email_and_the_signature_verifies(dkim_key):
    private, record = dkim_key
    settings = NotifierSettings(_env_file=None, mail_from=FROM, public_url=SITE, dkim_selector="gs2026",
                                dkim_private_key_file=str(private))
    signer = DkimSigner.from_settings(settings)
    asked = []

    def dns(name, timeout=5):
        asked.append(name)
        return record if name == b"gs2026._domainkey.petitions.example.org." else None

    for language in ("en", "ar"):
        for kind, data in emails(language).items():
            signed = signer.sign(SimpleNamespace(sender="a", recipients=("b",), data=data)).data
            assert signed.startswith(b"DKIM-Signature: "), kind
            assert dkim.verify(signed, dnsfunc=dns), f"{language} {kind}"
            tampered = signed.replace(b"Subject: ", b"Subject: Re: ", 1)
            assert not dkim.verify(tampered, dnsfunc=dns), f"{language} {kind}: a changed header must fail"
    assert set(asked) == {b"gs2026._domainkey.petitions.example.org."}


def test_without_a_key_nothing_is_signed_and_the_start_says_why():
    settings = NotifierSettings(_env_file=None, mail_from=FROM, public_url=SITE)
    assert DkimSigner.from_settings(settings) is None
    assert [p.split(":")[0] for p in mail_problems(settings)] == ["dkim_off"]
    elsewhere = NotifierSettings(_env_file=None, mail_from="Groundswell <no-reply@mailer.example.com>", public_url=SITE)
    assert [p.split(":")[0] for p in mail_problems(elsewhere)] == ["dkim_off", "domains_unaligned"]
