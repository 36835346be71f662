"""The share image (Open Graph and Twitter card): the petition's title and its current count,
drawn here (Pillow, the DejaVu fonts shipped in web/fonts), in the reader's language, with no
external service. Arabic is shaped and laid out right to left (arabic-reshaper, python-bidi),
so it draws the same wherever the service runs.

GET /p/<slug>/share.png?lang=<language> answers the image for the count in memory (the one the
page shows), at most a minute old: each petition and language's image is drawn again at most once
a minute (drawing takes tens of milliseconds; a viral petition's count changes many times a
second, and link previews are fetched rarely and kept long)."""

import functools
import io
import time
import re
import unicodedata
from pathlib import Path

from arabic_reshaper import reshape
from bidi import get_display
from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image, ImageDraw, ImageFont

from services.signing.pages import COUNT_SENTENCE, find, language_of, not_found, read_count
from shared import i18n

FONTS = Path(__file__).parent / "web" / "fonts"
WIDTH, HEIGHT, MARGIN = 1200, 630, 60
INK, MUTED, BRAND, TRACK, PAPER = "#1b1b1f", "#4a4a55", "#a4161a", "#dcdce4", "#ffffff"
_RTL_CHARACTER = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")

router = APIRouter(include_in_schema=False)


@functools.cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    # Pillow's basic layout: the same result with or without libraqm on the machine (text is shaped above).
    return ImageFont.truetype(str(FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size,
                              layout_engine=ImageFont.Layout.BASIC)


def _visual(text: str) -> str:
    """A line as it is drawn: Arabic letters joined, right-to-left runs in display order."""
    return get_display(reshape(text)) if _RTL_CHARACTER.search(text) else text


def _lines(text: str, font: ImageFont.FreeTypeFont, width: int, most: int) -> list[str]:
    """`text` wrapped at spaces into at most `most` lines no wider than `width` (the last one cut with …)."""
    lines: list[str] = []
    words = unicodedata.normalize("NFC", " ".join(text.split())).split(" ")
    line = ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if font.getlength(_visual(candidate)) <= width or not line:
            line = candidate
            continue
        lines.append(line)
        line = word
    lines.append(line)
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1].rstrip(" .,;:") + "…"
    while font.getlength(_visual(lines[-1])) > width and len(lines[-1]) > 1:  # one endless word
        lines[-1] = lines[-1][:-2] + "…"
    return lines


FRESH_S = 60.0
_drawn: dict[tuple[str, str], tuple[float, str, bytes]] = {}  # (petition id, language) -> (when, title, png)


def share_image(title: str, sentence: str, count: int, goal: int, rtl: bool) -> bytes:
    """A 1200 x 630 PNG: the title (up to three lines), the count's sentence, a progress bar."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 14), fill=BRAND)

    def put(line: str, y: int, font, fill) -> None:
        shown = _visual(line)
        x = WIDTH - MARGIN - font.getlength(shown) if rtl else MARGIN
        draw.text((x, y), shown, font=font, fill=fill)

    brand = _font(34, bold=True)
    put("Groundswell", 46, brand, BRAND)
    title_font = _font(62, bold=True)
    y = 130
    for line in _lines(title, title_font, WIDTH - 2 * MARGIN, 3):
        put(line, y, title_font, INK)
        y += 78
    bar_top = HEIGHT - 150
    sentence_font = _font(40)
    put(_lines(sentence, sentence_font, WIDTH - 2 * MARGIN, 1)[0], bar_top - 70, sentence_font, MUTED)
    draw.rounded_rectangle((MARGIN, bar_top, WIDTH - MARGIN, bar_top + 28), radius=14, fill=TRACK)
    filled = int((WIDTH - 2 * MARGIN) * min(1.0, count / goal)) if goal else 0
    if filled >= 28:
        left, right = (WIDTH - MARGIN - filled, WIDTH - MARGIN) if rtl else (MARGIN, MARGIN + filled)
        draw.rounded_rectangle((left, bar_top, right, bar_top + 28), radius=14, fill=BRAND)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@router.get("/p/{slug}/share.png")
async def share_png(slug: str, request: Request) -> Response:
    petition = await find(request, slug)
    if petition is None:
        return not_found(request, slug)
    language = language_of(request, petition.language)
    shown = petition.in_language(language) if hasattr(petition, "in_language") else petition
    key, now = (str(petition.id), language), time.monotonic()
    drawn = _drawn.get(key)
    if drawn is None or now - drawn[0] >= FRESH_S or drawn[1] != shown.title:
        count = read_count(request, petition.id)
        sentence = i18n.translate_plural(language, *COUNT_SENTENCE, count.count, goal=i18n.number(count.goal, language))
        if len(_drawn) >= 1024:  # petitions nobody shares any more
            _drawn.clear()
        drawn = _drawn[key] = (now, shown.title,
                               share_image(shown.title, sentence, count.count, count.goal, i18n.direction(language) == "rtl"))
    png = drawn[2]
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=60", "Content-Language": language,
                             "X-Content-Type-Options": "nosniff"})
