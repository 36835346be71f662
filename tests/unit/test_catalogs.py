"""Every language Groundswell ships is complete, and no page or email has text outside the catalogs.

After changing a message: `make messages`, then translate what is new (the .po files of
shared/locale); these tests say what is missing."""

import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from shared import i18n

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "services" / "signing" / "web" / "templates", ROOT / "services" / "notifier" / "templates"]
TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TAG = re.compile(r"</?([a-z]+)\b")
# Names and marks that are the same in every language.
SAME_IN_EVERY_LANGUAGE = {"Groundswell", "Facebook", "X", "WhatsApp", "LinkedIn", "UTC", "CSV"}


def catalog(language: str) -> Catalog:
    with open(i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=language)


def extracted(folder: Path) -> set:
    """The messages in the code and templates today (what `make messages` extracts)."""
    pot = folder / "messages.pot"
    subprocess.run(
        [str(Path(sys.executable).with_name("pybabel")), "-q", "extract", "-F", "babel.cfg", "-k", "N_",
         "-k", "live:1,2", "-k", "translate:2", "-k", "translate_plural:2,3", "--no-location", "-o", str(pot),
         "services", "shared"], cwd=ROOT, capture_output=True, check=True)
    with open(pot, "rb") as messages:
        return {m.id for m in read_po(messages) if m.id}


@pytest.fixture(scope="module")
def in_the_code(tmp_path_factory):
    return extracted(tmp_path_factory.mktemp("messages"))


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language, in_the_code):
    assert len(in_the_code) > 250  # the extraction found the messages (an empty one would prove nothing)
    messages = {m.id: m for m in catalog(language) if m.id}
    missing = sorted(str(m) for m in in_the_code if m not in messages)
    assert not missing, f"{language}: not in the catalog (run `make messages`, then translate): {missing[:5]}"
    untranslated, fuzzy, broken = [], [], []
    plurals = Catalog(locale=language).num_plurals
    for message in messages.values():
        if message.id not in in_the_code:
            continue
        if message.fuzzy:
            fuzzy.append(message.id)
        strings = list(message.string) if isinstance(message.string, tuple) else [message.string]
        if not all(strings) or (isinstance(message.id, tuple) and len(strings) != plurals):
            untranslated.append(message.id)
            continue
        source = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted_values = set(PLACEHOLDER.findall(" ".join(source)))
        wanted_tags = sorted(TAG.findall(source[0]))
        for string in strings:
            if set(PLACEHOLDER.findall(string)) - wanted_values or sorted(TAG.findall(string)) != wanted_tags:
                broken.append((message.id, string))
            elif not isinstance(message.id, tuple) and set(PLACEHOLDER.findall(string)) != wanted_values:
                broken.append((message.id, string))
    assert not untranslated, f"{language}: untranslated: {untranslated[:5]}"
    assert not fuzzy, f"{language}: fuzzy (check and clear the flag): {fuzzy[:5]}"
    assert not broken, f"{language}: a value or a tag differs from the English: {broken[:3]}"


def test_every_translation_loads_and_a_plural_follows_the_language():
    assert i18n.translate_plural("fr", "%(num)s supporter", "%(num)s supporters", 1) == "1 soutien"
    assert i18n.translate_plural("fr", "%(num)s supporter", "%(num)s supporters", 1200) == "1\u202f200 soutiens"
    assert i18n.translate_plural("de", "%(num)s supporter", "%(num)s supporters", 1200) == "1.200 Unterstützende"
    assert i18n.translate_plural("es", "%(num)s supporter", "%(num)s supporters", 1) == "1 apoyo"
    arabic = [i18n.translate_plural("ar", "%(num)s supporter", "%(num)s supporters", n) for n in (1, 2, 3, 11, 100)]
    assert arabic == ["1 مؤيد", "2 مؤيدَين", "3 مؤيدين", "11 مؤيدًا", "100 مؤيد"]


def literal_text(template: Path) -> list[str]:
    """Words in a template outside {% trans %} and _(): text a reader sees that no catalog has."""
    source = template.read_text()
    jinja2.Environment(extensions=["jinja2.ext.i18n"]).parse(source)  # a template that does not parse fails here
    source = re.sub(r"\{#.*?#\}", " ", source, flags=re.S)
    source = re.sub(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", " ", source, flags=re.S)
    source = re.sub(r"\{\{.*?\}\}", " ", source, flags=re.S)  # values: translated where they are made
    html = re.sub(r"\{%.*?%\}", " ", source, flags=re.S)
    html = re.sub(r"<!--.*?-->", " ", html, flags=re.S)
    found = []
    labels = re.findall(r'\b(?:alt|title|aria-label|placeholder)="([^"]*)"', html)
    labels += re.findall(r'(?:name|property)="[^"]*(?:description|title)"\s+content="([^"]*)"', html)
    for attribute in labels:
        found += re.findall(r"[^\W\d_]{2,}", attribute)
    text = re.sub(r"<[^>]*>", " ", html)  # tags, with their attributes and inline styles
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    found += [w for w in re.findall(r"[^\W\d_]+", text) if w not in SAME_IN_EVERY_LANGUAGE]
    return found


@pytest.mark.parametrize("template", [t for d in TEMPLATE_DIRS for t in sorted(d.glob("*.j2"))], ids=lambda t: t.name)
def test_no_template_has_text_outside_the_catalogs(template):
    assert literal_text(template) == []


def test_the_check_finds_literal_text(tmp_path):
    """The check above can fail: a word outside the catalogs, in text or in a label, is found."""
    page = tmp_path / "page.html.j2"
    page.write_text('<p>{{ _("Fine") }}</p><p>Sign here</p><input aria-label="Your name">{% trans %}Fine too{% endtrans %}')
    assert literal_text(page) == ["Your", "name", "Sign", "here"]
