"""Deliver it: the organizer's CSV of confirmed signatures, streamed a chunk at a time from a
server-side cursor, so a million rows take little memory (`python -m bench.export`)."""

import csv
import io
import unicodedata

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from services.signing import reads
from services.signing.dashboard import organizer_of
from shared.db import as_utc

router = APIRouter(include_in_schema=False)

EXPORT_COLUMNS = ("name", "postcode", "country", "signed_at", "comment")
EXPORT_CHUNK = 2000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters a spreadsheet may skip before it reads a formula: spaces and controls, and the
# invisible format characters (zero-width space and joiners, the byte-order mark, bidi marks).
_SKIPPED = frozenset({"Zs", "Cc", "Cf"})


def inert(value: str | None) -> str:
    """A cell a spreadsheet shows as text, never runs: one that starts like a formula gets a
    leading apostrophe (OWASP's advice for CSV injection). "Starts" is read as a spreadsheet may
    read it: after Unicode compatibility normalisation (a fullwidth ＝ or a small ﹦ is an =) and
    after any leading spaces and invisible characters (a zero-width space before the =)."""
    if not value:
        return ""
    return "'" + value if looks_like_formula(value) else value


def looks_like_formula(value: str) -> bool:
    if value.startswith(_FORMULA_START):
        return True
    if value[0].isascii() and value[0].isprintable() and not value[0].isspace():
        return False  # an ordinary first character (most names): nothing to normalise
    for character in unicodedata.normalize("NFKC", value):
        if unicodedata.category(character) not in _SKIPPED:
            return character in "=+-@"
    return False


@router.get("/dashboard/{slug}/signatures.csv")
async def export(slug: str, request: Request, allowed=Depends(organizer_of)) -> Response:
    """The confirmed signatures for delivery: name, postcode, country, signed at (UTC), comment,
    oldest first. Streamed from a server-side cursor a chunk at a time, so a million rows take
    little memory (`python -m bench.export`); erased signers are left out; every cell is inert
    in a spreadsheet."""
    petition = allowed.petition
    query = reads.export_rows(petition.id)
    engine = request.app.state.runtime.engine

    async def rows():
        yield ("\ufeff" + ",".join(EXPORT_COLUMNS) + "\r\n").encode()  # the BOM: spreadsheets then read UTF-8
        async with engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=EXPORT_CHUNK))
            async for chunk in result.partitions(EXPORT_CHUNK):
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\r\n")
                writer.writerows(
                    (inert(row.name), inert(row.postcode), row.country or "",
                     as_utc(row.signed_at).isoformat(timespec="seconds").replace("+00:00", "Z"), inert(row.comment))
                    for row in chunk)
                yield out.getvalue().encode()

    filename = f"{petition.slug}-signatures.csv"
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "no-store"})
