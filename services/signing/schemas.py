"""Request and response bodies of the signing API; validation lives here."""

import unicodedata
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.signing.domain import name_problem
from shared.db import as_utc
from shared.i18n import LANGUAGES, supported
from shared.refs import SLUG_MAX, SLUG_PATTERN

COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)


def _printable(value: str, *, multiline: bool) -> str:
    allowed = {"\n", "\r", "\t"} if multiline else set()
    for char in value:
        if char in allowed:
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError("must not contain control characters")
    return value


def _line(value: str) -> str:
    return _printable(value, multiline=False)


def _text(value: str) -> str:
    return _printable(value, multiline=True)


printable_text = _text  # for models outside this module


def _email(value: str, *, smtputf8: bool = False) -> str:
    # An internationalized domain is fine (the notifier writes it in IDNA form); characters
    # before the @ would need SMTPUTF8 all the way to the mailbox, which most mail servers (and
    # Groundswell's own email headers) lack: a clear 422 now beats a link that never arrives.
    try:
        return validate_email(value, check_deliverability=False, allow_smtputf8=smtputf8).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from None


def _any_email(value: str) -> str:
    return _email(value, smtputf8=True)


def _person_name(value: str) -> str:
    if problem := name_problem(value):
        raise ValueError(problem)
    return value


def _language(value: str) -> str | None:
    return supported(value)


# A language tag (BCP 47: "fr", "es-MX"). Groundswell keeps the language it has a catalog for
# ("es-MX" -> "es"); a tag it has none for is kept as no choice (the petition's language is used).
LanguageTag = Annotated[str, StringConstraints(strip_whitespace=True, max_length=35,
                                              pattern=r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$"),
                        AfterValidator(_language)]


def _country(value: str) -> str:
    code = value.upper()
    if code not in COUNTRY_CODES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, such as US or GB")
    return code


# The documents say as much of each rule as JSON Schema can (tests/e2e/test_api_schema.py generates
# requests from them): printable text, an email address, no formula or link in a name.
PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
NAME_PATTERN = r"^[^=+@\-\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_line)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email),
                  Field(json_schema_extra={"format": "email"})]
# Any address signing ever accepted (before November 2026 it took characters other than ASCII
# before the @): what erasure must still find.
AnyEmail = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_any_email),
                     Field(json_schema_extra={"format": "email"})]
PersonName = Annotated[Line, StringConstraints(max_length=100), AfterValidator(_person_name),
                       Field(json_schema_extra={"pattern": NAME_PATTERN},
                             description="A person's name: printable, no link, not starting with =, +, - or @.")]
CountryCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=2),
                        AfterValidator(_country), Field(json_schema_extra={"enum": sorted(COUNTRY_CODES)},
                                                        description="ISO 3166-1 alpha-2 (either case).")]


class OrganizerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PersonName
    email: Email


Story = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000), AfterValidator(_text),
                  Field(description="Plain text; paragraphs separated by blank lines.")]


class PetitionIn(BaseModel):
    """A new petition, as an organizer writes it."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Line, StringConstraints(max_length=200)]
    target: Annotated[Line, StringConstraints(max_length=200)] = Field(
        description='The decision maker, e.g. "Denver Mayor Michael Hancock".'
    )
    story: Story
    organizer: OrganizerIn
    slug: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=SLUG_MAX)] | None = Field(
        None, description="URL name (lower-case letters and digits of any script, hyphens); derived from the title "
                          "if missing."
    )
    language: LanguageTag | None = Field(
        None, description=f"The language the petition is written in (BCP 47; one of {', '.join(LANGUAGES)}; default en): "
                          "its page's language for readers who ask for none of those, and its organizer's emails'.")
    decision_maker_email: Email | None = Field(
        None, description="The decision maker's address (never public; moderators see it): at each threshold "
                          "(GROUNDSWELL_THRESHOLDS) they receive the petition once, with a link to respond.")


class SignatureIn(BaseModel):
    """One person's signature."""

    model_config = ConfigDict(extra="forbid")

    name: PersonName
    email: Email
    country: CountryCode | None = None
    postcode: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=16, pattern=r"^[A-Za-z0-9 \-]*$")
    ] | None = None
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_text)] | None = None
    updates: bool = Field(False, description="Opt in to emails about this petition.")
    language: LanguageTag | None = Field(
        None, description=f"The signer's language (BCP 47): their confirmation and every later email are written in it "
                          f"when it is one of {', '.join(LANGUAGES)}, else in the petition's language.")


class OrganizerOut(BaseModel):
    name: str


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class PetitionOut(BaseModel):
    """A petition's public face: never the organizer's email."""

    id: UUID
    slug: str
    title: str
    target: str
    story: str
    organizer: OrganizerOut
    created_at: UtcDatetime
    status: Literal["open", "closed", "won", "unconfirmed", "in_review", "rejected"] = Field(
        description="open: takes signatures; closed, or won (victory declared): takes none. Only an admin sees "
                    "the others: unconfirmed (its organizer has not confirmed their email), in_review (waiting "
                    "for a moderator), rejected.")
    links: dict[str, str]


class PetitionChange(BaseModel):
    """What an organizer may change once the petition is up (PATCH: give only what changes)."""

    model_config = ConfigDict(extra="forbid")

    story: Story


class TranslationIn(BaseModel):
    """A petition's title and story in another language."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Line, StringConstraints(max_length=200)]
    story: Story


class UpdateIn(BaseModel):
    """An update to the supporters who opted in: a subject line and plain text."""

    model_config = ConfigDict(extra="forbid")

    subject: Annotated[Line, StringConstraints(max_length=150)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000), AfterValidator(_text)]


class Closure(BaseModel):
    """Close the petition, or declare victory: either way it takes no more signatures."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["closed", "won"]


class Accepted(BaseModel):
    status: str = "accepted"



class ResponseIn(BaseModel):
    """A decision maker's public response: who answers, and what."""

    model_config = ConfigDict(extra="forbid")

    responder: Annotated[Line, StringConstraints(max_length=200)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000), AfterValidator(_text)]
