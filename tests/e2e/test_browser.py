"""The petition page in headless Chromium (Debian's, driven by Playwright), through Caddy.

One origin: the page, the signing API and the count API all answer on the Caddy port."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
UPDATE_SCREENSHOTS = os.environ.get("GROUNDSWELL_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def save(page, tmp_path: Path, name: str) -> None:
    """Screenshots go to the test's folder; GROUNDSWELL_UPDATE_SCREENSHOTS=1 also copies them to docs/."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if UPDATE_SCREENSHOTS:
        shutil.copy(path, ROOT / "docs" / name)


def counts_shown(page) -> list[str]:
    return page.locator("[data-count]").all_inner_texts()


def test_sign_in_place_and_a_second_browser_sees_the_count_live(system, browser, tmp_path, backend):
    seed = json.loads((ROOT / "services/embedded/seed/petition.json").read_text())
    petition = system.create_petition("browser", seed["title"], target=seed["target"], story=seed["story"])
    system.wait_for_count(petition["id"], 0)  # the counter knows it, so the live stream opens at once
    url = f"{system.web.url}/p/{petition['slug']}"
    first = browser.new_page(viewport={"width": 1280, "height": 900})
    second = browser.new_page(viewport=PHONE)
    for page in (first, second):
        page.goto(url)
        page.evaluate("window.notReloaded = true")
    body = first.locator("body")
    assert "0 have signed. Let’s get to 100!" in re.sub(r"\s+", " ", body.inner_text())
    assert first.get_by_text("Today: Patrick is counting on you").is_visible()
    assert "Join Patrick and 0 supporters today." in re.sub(r"\s+", " ", body.inner_text())
    assert first.get_by_label("Email me updates about this petition").is_checked() is False
    if backend == "sqlite":
        save(first, tmp_path, "petition-desktop.png")
        save(second, tmp_path, "petition-phone.png")

    # An API error appears next to its field, and nothing is signed.
    first.get_by_label("Full name").fill("Ada Lovelace")
    first.get_by_label("Email", exact=True).fill("ada@example")
    first.get_by_label("Country").select_option("GB")
    first.get_by_role("button", name="Sign this petition").click()
    email_error = first.locator("#email-error")
    email_error.wait_for(state="visible")
    assert email_error.inner_text().startswith("Email ")
    assert first.locator("#email").get_attribute("aria-invalid") == "true"

    first.get_by_label("Email", exact=True).fill("ada@example.org")
    first.get_by_label("I am signing because").fill("The bridge is my way to school.")
    first.get_by_role("button", name="Sign this petition").click()
    first.get_by_role("heading", name="Thank you for signing!").wait_for()
    assert first.get_by_role("button", name="Copy link").is_visible()
    assert first.get_by_role("link", name="WhatsApp").get_attribute("href").startswith("https://wa.me/?text=")

    # The count rises on both pages without a reload: the second one only through SSE or polling.
    for page in (first, second):
        page.wait_for_function("Array.from(document.querySelectorAll('[data-count]')).every(e => e.textContent === '1')",
                               timeout=20_000)
        assert page.evaluate("window.notReloaded") is True
    assert system.count(petition["id"]) == 1
    assert counts_shown(second) == ["1", "1"]
    if backend == "sqlite":
        save(first, tmp_path, "petition-signed-desktop.png")


def test_keyboard_only_at_a_narrow_phone_width_with_nothing_from_other_origins(system, browser):
    petition = system.create_petition("keyboard")
    page = browser.new_page(viewport={"width": 320, "height": 640})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{system.web.url}/p/{petition['slug']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320  # no sideways scrolling

    # Tab from the top of the page into the form, fill it by keyboard alone, submit with Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator("#name").focus()
    page.keyboard.type("Katherine Johnson")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type("katherine@example.org")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "country"
    page.keyboard.type("United States")
    for field in ("postcode", "comment", "updates"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == field
    page.keyboard.press("Space")  # tick "Email me updates"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign this petition"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Thank you for signing!").wait_for()
    assert page.evaluate("document.activeElement.getAttribute('data-thanks')") == ""  # focus moved to it
    system.wait_for_count(petition["id"], 1)
    rows = system.query("signing", "SELECT country, updates FROM signatures")
    assert [(country, bool(updates)) for country, updates in rows] == [("US", True)]
    assert requested and all(url.startswith(system.web.url) for url in requested), \
        [url for url in requested if not url.startswith(system.web.url)]


def test_the_form_works_without_javascript(system, browser):
    petition = system.create_petition("no-js")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{system.web.url}/p/{petition['slug']}")
    page.get_by_label("Full name").fill("Grace Hopper")
    page.get_by_label("Email", exact=True).fill("not-an-email")
    page.get_by_role("button", name="Sign this petition").click()
    assert page.locator("#email-error").inner_text().startswith("Email ")
    assert page.locator("#country-error").inner_text() == "Choose your country."
    assert page.get_by_label("Full name").input_value() == "Grace Hopper"  # what was typed stays

    page.get_by_label("Email", exact=True).fill("grace@example.org")
    page.get_by_label("Country").select_option("US")
    page.get_by_role("button", name="Sign this petition").click()
    page.wait_for_url(re.compile(r"/p/no-js/thanks$"))
    assert page.get_by_role("heading", name="Thank you for signing!").is_visible()
    system.wait_for_count(petition["id"], 1)
    page.reload()
    assert "1 have signed" in re.sub(r"\s+", " ", page.locator("body").inner_text())
    context.close()


def test_supporter_email_is_escaped_and_fits_a_phone(browser, tmp_path):
    import email
    import email.policy
    from types import SimpleNamespace

    from services.notifier.emails import supporter_milestone_email

    from services.notifier.contacts import Organizer

    petition = SimpleNamespace(title='Save <b>Elm</b> Street & "the bridge"', slug="elm")
    organizer = Organizer(name="Patrick <script>alert(1)</script> Leonard", email="patrick@example.org")
    fanout = SimpleNamespace(milestone=200, next_goal=500, correlation_id="corr-1")
    recipient = SimpleNamespace(name="Ada Lovelace", email="ada@example.org",
                                unsubscribe_url="https://petitions.example.org/u/token")
    built = supporter_milestone_email(fanout, petition, organizer, recipient, mail_from="Groundswell <no-reply@example.org>",
                                      public_url="https://petitions.example.org", message_id_value="<m@example.org>")
    message = email.message_from_bytes(built.data, policy=email.policy.default)  # as a mail client reads it
    assert message["Subject"] == "Patrick is counting on you"
    assert message["List-Unsubscribe"] == "<https://petitions.example.org/u/token>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<b>Elm</b>" not in html and "&lt;b&gt;Elm&lt;/b&gt;" in html and "<script>" not in html
    assert "reached 200 supporters" in text and "The next goal is 500" in text
    assert "https://petitions.example.org/p/elm/thanks" in text and "https://petitions.example.org/u/token" in text

    page = browser.new_page(viewport={"width": 360, "height": 640})
    page.set_content(html)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
    assert page.get_by_role("link", name="Share the petition").get_attribute("href") == \
        "https://petitions.example.org/p/elm/thanks"
    save(page, tmp_path, "email-supporter-phone.png")
