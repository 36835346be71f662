"""The organizer's pages' small parts: inert CSV cells, who may frame the widget, the chart's bars."""

from services.signing.chart import chart
from services.signing.export import inert
from services.signing.organizers import link_of, link_token
from services.signing.pages import widget_headers


def test_cells_that_look_like_formulas_are_made_inert():
    for cell in ("=1+1", "+33 6 12", "-2", "@SUM(A1)", "\t=x", "\r=x"):
        assert inert(cell) == "'" + cell
    assert inert("Hello = world") == "Hello = world" and inert(None) == "" and inert("") == ""


def test_formulas_behind_lookalikes_and_invisible_characters_are_made_inert():
    """Issue 21: a fullwidth or small equals sign, a zero-width space or a byte-order mark before
    the formula, leading spaces: a spreadsheet may still run it."""
    for cell in ("\uff1dHYPERLINK(\"http://x\")", "\ufe66 1+1", "\u200b=1+1", "\ufeff=1+1", "\u200e\u200b@SUM(A1)",
                 "  =1+1", "\u3000=1+1", "\uff0b33 6", "\uff20SUM(A1)", "\u2060\u200d-2"):
        assert inert(cell) == "'" + cell, repr(cell)
    for cell in ("Zoë =1", "\u200bAda", "\uff21da", "\u0645\u0631\u062d\u0628\u0627", "  Ada"):
        assert inert(cell) == cell, repr(cell)


def test_only_the_listed_origins_may_frame_the_widget():
    assert "frame-ancestors 'self';" not in widget_headers("")["Content-Security-Policy"]
    assert widget_headers("")["Content-Security-Policy"].endswith("frame-ancestors 'self'")
    listed = widget_headers(" https://news.example, https://blog.example/ ")
    assert listed["Content-Security-Policy"].endswith("frame-ancestors 'self' https://news.example https://blog.example")
    assert "X-Frame-Options" not in listed and listed["X-Content-Type-Options"] == "nosniff"
    assert widget_headers("*")["Content-Security-Policy"].endswith("frame-ancestors *")


def test_the_chart_scales_bars_to_the_tallest():
    drawn = chart([{"start": "2026-11-20T00:00:00Z", "count": 10}, {"start": "2026-11-21T00:00:00Z", "count": 5},
                   {"start": "2026-11-22T00:00:00Z", "count": 0}], "day")
    heights = [bar["h"] for bar in drawn["bars"]]
    assert heights[0] == 2 * heights[1] and heights[2] == 0 and drawn["max"] == 10
    assert [label["text"] for label in drawn["labels"]] == ["20 Nov 2026", "21 Nov 2026", "22 Nov 2026"]
    assert chart([], "hour")["bars"] == []


def test_a_sign_in_token_is_its_link_and_a_mac_that_only_the_key_makes():
    token = link_token(b"key", "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f")
    assert link_of(b"key", token) == "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
    assert link_of(b"other key", token) is None
    assert link_of(b"key", token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert link_of(b"key", "not-a-uuid.abc") is None and link_of(b"key", "") is None
