"""The page's colour pairs meet WCAG 2.2 AA contrast (4.5:1 for text), read from page.css itself."""

import re
from pathlib import Path

CSS = (Path(__file__).resolve().parents[2] / "services/signing/web/static/page.css").read_text()
VARIABLES = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", CSS))


def luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colour(name: str) -> str:
    return "#ffffff" if name == "white" else VARIABLES[name]


# (text, background) pairs as page.css uses them
PAIRS = [
    ("ink", "bg"), ("ink", "soft"), ("muted", "bg"), ("muted", "soft"),  # body text, sign box, fine print
    ("white", "brand"), ("white", "brand-dark"),  # the Sign button and its hover
    ("brand-dark", "white"), ("brand", "white"),  # share buttons, links, the brand name
    ("error", "white"), ("error", "soft"), ("white", "error"),  # field errors, the form error banner
    ("ok", "soft"), ("ok", "white"),  # the thank-you heading, "Link copied"
]


def test_every_text_colour_pair_meets_aa():
    assert {"ink", "bg", "soft", "muted", "brand", "brand-dark", "error", "ok", "focus"} <= set(VARIABLES)
    failing = {f"{fg} on {bg}": round(contrast(colour(fg), colour(bg)), 2) for fg, bg in PAIRS
               if contrast(colour(fg), colour(bg)) < 4.5}
    assert failing == {}


def test_the_focus_ring_stands_out_from_the_page():
    assert contrast(colour("focus"), colour("bg")) >= 3.0  # non-text contrast for focus indicators
