"""The share image: the title and the count, drawn in any script, and never more than three lines."""

import io

from PIL import Image

from services.signing.pages import COUNT_SENTENCE
from services.signing.share import _lines, _font, _visual, share_image
from shared import i18n


def sentence(language: str, count: int, goal: int) -> str:
    return i18n.translate_plural(language, *COUNT_SENTENCE, count, goal=i18n.number(goal, language))


def test_the_image_is_a_card_and_changes_with_the_count():
    first = share_image("Keep the Elm Street library open", sentence("en", 117, 200), 117, 200, False)
    second = share_image("Keep the Elm Street library open", sentence("en", 118, 200), 118, 200, False)
    assert Image.open(io.BytesIO(first)).size == (1200, 630) and first != second


def test_arabic_is_joined_and_drawn_right_to_left():
    title = "المكتبة مفتوحة منذ 1950."
    shown = _visual(title)
    assert shown != title and "1950" in shown  # presentation forms, in display order
    png = share_image(title, sentence("ar", 1234, 2000), 1234, 2000, True)
    image = Image.open(io.BytesIO(png)).convert("L")
    right, left = image.crop((900, 130, 1140, 210)), image.crop((60, 130, 300, 210))
    assert right.getextrema()[0] < 100 and left.getextrema()[0] > 200  # ink at the right, none at the left


def test_a_long_title_is_cut_to_three_lines():
    lines = _lines("word " * 200, _font(62, bold=True), 1080, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(_font(62, bold=True).getlength(line) <= 1080 for line in lines)
