"""What a value in a URL path may be before it goes near a database.

A petition is named by its id (a UUID) or its slug; an unsubscribe link carries a token. Anything
else (a NUL byte, bytes that are not UTF-8, a megabyte of text) cannot name anything, so it is a
404 without a query: PostgreSQL refuses such text with an error, not an empty result.
"""

import re
import unicodedata
from uuid import UUID

# Letters and digits of any script (NFC, lower case where the script has case), joined by hyphens:
# "save-the-library", "sauvons-la-bibliothèque", "المكتبة-مفتوحة-منذ-1950". Never a transliteration.
SLUG_PATTERN = r"^[^\W_]+(?:-[^\W_]+)*$"
SLUG_MAX = 80
_SLUG = re.compile(SLUG_PATTERN)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def petition_ref(ref: str) -> tuple[str, str] | None:
    """("id", canonical uuid) or ("slug", lower-case slug), or None when `ref` can be neither."""
    if len(ref) <= 45:  # the longest form UUID() reads: urn:uuid:{...}
        try:
            return "id", str(UUID(ref))
        except ValueError:
            pass
    slug = unicodedata.normalize("NFC", ref.lower())
    if len(slug) <= SLUG_MAX and _SLUG.match(slug):
        return "slug", slug
    return None


def is_token(value: str) -> bool:
    """Could be a token made by secrets.token_urlsafe (unsubscribe links)."""
    return bool(_TOKEN.match(value))
