"""Which language a reader gets, and numbers and plural forms as each language writes them."""

import re

import pytest

from shared import i18n


@pytest.mark.parametrize("explicit, accept, default, expected", [
    (None, "fr-FR,fr;q=0.9,en;q=0.8", "en", "fr"),
    (None, "es-MX", "en", "es"),  # a regional variant: its language
    (None, "en;q=0.4, de;q=0.9", "en", "de"),  # by quality, not by position
    (None, "de;q=0, fr", "en", "fr"),  # q=0: refused
    (None, "pt-BR, ja", "ar", "ar"),  # none Groundswell has: the petition's own language
    (None, None, None, "en"),
    ("ar", "fr", "en", "ar"),  # the reader's choice first
    ("xx", "de", "en", "de"),  # a choice Groundswell does not have is no choice
    (None, "*", "es", "es"),
    (None, "fr;q=abc, de", "en", "de"),  # a broken quality: that entry is ignored
    (None, "a" * 600, "en", "en"),
])
def test_the_language_is_the_choice_then_accept_language_then_the_petitions(explicit, accept, default, expected):
    assert i18n.negotiate(explicit, accept, default) == expected


def test_numbers_are_written_as_each_language_writes_them():
    assert [i18n.number(1234567, lang) for lang in i18n.LANGUAGES] == \
        ["1,234,567", "1\u202f234\u202f567", "1.234.567", "1.234.567", "1,234,567"]
    assert (i18n.number(1000, "es"), i18n.number(10000, "es")) == ("1000", "10.000")  # CLDR minimum grouping


def test_the_page_script_gets_a_form_for_every_plural_category():
    singular, plural = "%(num)s person has signed. Let’s get to %(goal)s!", "%(num)s have signed. Let’s get to %(goal)s!"
    assert set(i18n.plural_forms("ar", singular, plural)) == {"zero", "one", "two", "few", "many", "other"}
    assert set(i18n.plural_forms("en", singular, plural)) == {"one", "other"}
    for language in i18n.LANGUAGES:
        for category, form in i18n.plural_forms(language, singular, plural).items():
            assert "{count}" in form and "{goal}" in form, (language, category)
    html = str(i18n.live_sentence("en", singular, plural, 1, 100))
    assert re.sub(r"<[^>]+>", "", html) == "1 person has signed. Let’s get to 100!"
    assert "data-forms=" in html and "<strong data-count>1</strong>" in html


def test_direction_and_names():
    assert [i18n.direction(lang) for lang in i18n.LANGUAGES] == ["ltr", "ltr", "ltr", "ltr", "rtl"]
    assert i18n.language_name("en", "fr") == "anglais" and i18n.country("DE", "ar") == "ألمانيا"
