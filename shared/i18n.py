"""Languages: which one a reader gets, the message catalogs, and numbers, dates and countries as
that language writes them (Babel, from CLDR).

Every text a person reads (pages, form messages, emails, the widget) is a gettext message in
`shared/locale/<language>/LC_MESSAGES/messages.po`; `make messages` extracts them from the code
and templates and updates the catalogs, and tests/unit/test_catalogs.py fails while any message
of any shipped language is untranslated. The .po files are read at start (no compiled .mo to keep
in step). The count JSON, the API and the events stay language-neutral: languages live only where
a person reads.

Which language (negotiate): an explicit choice (`?lang=`, remembered in the `lang` cookie), then
the reader's Accept-Language in its order of preference, then the petition's own language.
"""

import functools
import io
import json
import re
import unicodedata
from datetime import datetime, timezone
from gettext import NullTranslations
from pathlib import Path

import jinja2
from jinja2 import nodes
from jinja2.visitor import NodeTransformer
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from markupsafe import Markup, escape

LANGUAGES = ("en", "fr", "es", "de", "ar")  # complete catalogs ship for each
DEFAULT = "en"
RTL = frozenset({"ar"})
NAMES = {"en": "English", "fr": "Français", "es": "Español", "de": "Deutsch", "ar": "العربية"}  # autonyms
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
LOCALE_DIR = Path(__file__).parent / "locale"
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")


def supported(tag: str | None) -> str | None:
    """The shipped language a BCP 47 tag asks for ("es-MX" -> "es"), or None."""
    if not tag or len(tag) > 35 or not _TAG.match(tag.strip()):
        return None
    primary = tag.strip().split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def accepted(header: str | None) -> list[str]:
    """The shipped languages an Accept-Language header asks for, most preferred first (q=0: refused)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header[:512].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = supported(tag)
        if language and quality > 0:
            ranked.append((-quality, position, language))
    seen: list[str] = []
    for _, _, language in sorted(ranked):
        if language not in seen:
            seen.append(language)
    return seen


def negotiate(explicit: str | None, accept_language: str | None, default: str | None = None) -> str:
    """The language to answer in: an explicit choice, else Accept-Language, else `default` (the
    petition's own language), else English."""
    if language := supported(explicit):
        return language
    if languages := accepted(accept_language):
        return languages[0]
    return supported(default) or DEFAULT


def direction(language: str) -> str:
    return "rtl" if language in RTL else "ltr"


@functools.cache
def translations(language: str) -> NullTranslations:
    """The language's catalog (English is the source text: no catalog needed)."""
    if language == DEFAULT:
        return NullTranslations()
    with open(LOCALE_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled)


def translate(language: str, message: str, /, **values) -> str:
    """`message` in `language`, with %(name)s values filled in."""
    text = translations(language).gettext(message)
    return text % values if values else text


def translate_plural(language: str, singular: str, plural: str, n: int, /, **values) -> str:
    """The form for `n` in `language`; %(num)s is n as the language writes numbers."""
    return translations(language).ngettext(singular, plural, n) % {"num": number(n, language), **values}


# Numbers, dates and countries (CLDR). Latin digits in every language, as the page script writes them
# (Intl.NumberFormat with -u-nu-latn): a count the script rewrites looks the same as the one rendered.


@functools.cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


# CLDR's minimumGroupingDigits, which Babel does not apply: Spanish writes 1000 but 10.000 (as
# browsers' Intl.NumberFormat does, so the script's numbers match the server's).
MIN_GROUPING_DIGITS = {"es": 2}


@functools.lru_cache(maxsize=8192)  # the same counts and goals fill every email of a fan-out and every page
def number(n: int, language: str) -> str:
    grouped = len(str(abs(int(n)))) >= 3 + MIN_GROUPING_DIGITS.get(language, 1)
    return format_decimal(n, locale=_locale(language), group_separator=grouped)


def date(value: datetime, language: str, style: str = "long") -> str:
    return format_date(value, format=style, locale=_locale(language))


def moment(value: datetime, language: str) -> str:
    """A date and time in UTC (pages rewrite <time> elements in the reader's own time zone)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return format_datetime(value, format="medium", tzinfo=timezone.utc, locale=_locale(language)) + " UTC"


@functools.cache
def countries(language: str) -> tuple[tuple[str, str], ...]:
    """(code, name) of every ISO 3166-1 country, named and ordered in the language."""
    import pycountry

    names = _locale(language).territories
    pairs = [(c.alpha_2, names.get(c.alpha_2) or getattr(c, "common_name", c.name)) for c in pycountry.countries]
    return tuple(sorted(pairs, key=lambda pair: unicodedata.normalize("NFKD", pair[1]).casefold()))


@functools.cache
def language_name(code: str, language: str) -> str:
    """A language's name as `language` says it ("en" in French: anglais); the switcher uses NAMES."""
    return _locale(code).get_display_name(_locale(language)) or NAMES.get(code, code)


def country(code: str | None, language: str) -> str:
    if not code:
        return ""
    return _locale(language).territories.get(code.upper(), code)


# Plural forms for the page script: the count's sentences change form as the count changes ("1 person
# has signed", "2 people have signed"; Arabic has six forms). The server renders each CLDR plural
# category's form once, with {count} and {goal} left in; the script picks one with Intl.PluralRules.


@functools.cache
def _samples(language: str) -> dict[str, int]:
    """A count in each of the language's plural categories (French and Spanish have one only for
    millions: "1 000 000 de personnes")."""
    rule = _locale(language).plural_form
    found: dict[str, int] = {}
    for n in [*range(0, 200), *(10 ** e for e in range(3, 10))]:
        found.setdefault(rule(n), n)
    return found


def plural_forms(language: str, singular: str, plural: str, **values) -> dict[str, str]:
    """{CLDR category: the sentence with {count} (and {goal}) placeholders}."""
    catalog = translations(language)
    return {category: catalog.ngettext(singular, plural, n) % {"num": "{count}", "goal": "{goal}", **values}
            for category, n in _samples(language).items()}


def live_sentence(language: str, singular: str, plural: str, count: int, goal: int, **values) -> Markup:
    """The sentence for `count`, its numbers in <strong>, inside an element the script rewrites."""
    forms = plural_forms(language, singular, plural, **{k: str(v) for k, v in values.items()})
    form = forms.get(_locale(language).plural_form(count), forms.get("other", next(iter(forms.values()))))
    parts = re.split(r"(\{count\}|\{goal\})", form)
    html = "".join(
        f"<strong data-{part[1:-1]}>{number(count if part == '{count}' else goal, language)}</strong>"
        if part in ("{count}", "{goal}")
        else str(escape(part)) for part in parts)
    return Markup(f'<span data-forms="{escape(json.dumps(forms, ensure_ascii=False))}">{html}</span>')


# Templates: one Jinja environment per language, with its catalog installed ({% trans %}, _()).


class _TranslateOnce(NodeTransformer):
    """Replaces each gettext of a constant message (`_("...")`, `{% trans %}`) by its translation,
    when the template is compiled: what Jinja's newstyle gettext returns at every render
    (`Markup(translation) % values` where the template escapes, else `translation % values`),
    without a call per message per render (15 of them made an email three times as slow)."""

    def __init__(self, catalog: NullTranslations) -> None:
        self.catalog = catalog

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        node = self.generic_visit(node)
        if not (isinstance(node.node, nodes.Name) and node.node.name in ("_", "gettext") and len(node.args) == 1
                and isinstance(node.args[0], nodes.Const) and isinstance(node.args[0].value, str)
                and not node.dyn_args and not node.dyn_kwargs):
            return node
        translated = self.catalog.gettext(node.args[0].value)
        values = nodes.Dict([nodes.Pair(nodes.Const(k.key), k.value) for k in node.kwargs], lineno=node.lineno)
        text = nodes.MarkSafeIfAutoescape(nodes.Const(translated, lineno=node.lineno), lineno=node.lineno)
        return nodes.Mod(text, values, lineno=node.lineno)


class _Environment(jinja2.Environment):
    catalog: NullTranslations

    def _parse(self, source, name, filename):
        return _TranslateOnce(self.catalog).visit(super()._parse(source, name, filename))


def environment(loader: jinja2.BaseLoader, language: str, **options) -> jinja2.Environment:
    env = _Environment(loader=loader, extensions=["jinja2.ext.i18n"], **options)
    env.catalog = translations(language)
    env.policies["ext.i18n.trimmed"] = True  # {% trans %} blocks' whitespace collapsed, as `make messages` extracts them
    env.install_gettext_translations(translations(language), newstyle=True)
    env.globals.update(lang=language, dir=direction(language), languages=NAMES)
    env.filters["number"] = lambda n: number(n, language)
    env.filters["date"] = lambda value, style="long": date(value, language, style)
    env.filters["moment"] = lambda value: moment(value, language)
    env.filters["country"] = lambda code: country(code, language)
    env.filters["language_name"] = lambda code: language_name(code, language)
    env.filters["label"] = lambda text: translate(language, text)  # an operator's words, translated if the catalogs have them
    env.globals["live"] = lambda singular, plural, count, goal, **values: live_sentence(
        language, singular, plural, count, goal, **values)
    return env


class Environments:
    """A template environment for each shipped language, made on first use."""

    def __init__(self, loader: jinja2.BaseLoader, **options) -> None:
        self.loader = loader
        self.options = options
        self._made: dict[str, jinja2.Environment] = {}

    def __getitem__(self, language: str) -> jinja2.Environment:
        env = self._made.get(language)
        if env is None:
            env = self._made[language] = environment(self.loader, supported(language) or DEFAULT, **self.options)
        return env

    def render(self, language: str, name: str, context: dict) -> str:
        return self[language].get_template(name).render(**context)
