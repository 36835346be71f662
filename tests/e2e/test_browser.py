"""The petition page in headless Chromium (Debian's, driven by Playwright), through Caddy.

One origin: the page, the signing API and the count API all answer on the Caddy port."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.databases import sqlite_only
from tests.harness import ROOT, eventually

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


def fill_and_sign(page, name: str, email: str, country: str, *, comment: str = "", updates: bool = False) -> None:
    page.get_by_label("Full name").fill(name)
    page.locator("#email").fill(email)
    page.get_by_label("Country").select_option(country)
    if comment:
        page.get_by_label("I am signing because").fill(comment)
    if updates:
        page.get_by_label("Email me updates about this petition").check()
    page.get_by_role("button", name="Sign this petition").click()


def counts_shown(page) -> list[str]:
    return page.locator("[data-count]").all_inner_texts()


@sqlite_only
def test_sign_in_place_and_a_second_browser_sees_the_count_live(system, browser, tmp_path):
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
    save(first, tmp_path, "petition-desktop.png")
    save(second, tmp_path, "petition-phone.png")

    # An API error appears next to its field, and nothing is signed.
    fill_and_sign(first, "Ada Lovelace", "ada@example", "GB")
    email_error = first.locator("#email-error")
    email_error.wait_for(state="visible")
    assert email_error.inner_text() == "Enter an email address in the right form, like name@example.com."
    assert first.locator("#email").get_attribute("aria-invalid") == "true"

    first.locator("#email").fill("ada@example.org")
    first.get_by_label("I am signing because").fill("The bridge is my way to school.")
    first.get_by_role("button", name="Sign this petition").click()
    first.get_by_role("heading", name="Thank you for signing!").wait_for()
    assert first.get_by_role("button", name="Copy link").is_visible()
    assert first.get_by_role("link", name="WhatsApp").get_attribute("href").startswith("https://wa.me/?text=")

    # The count rises on both pages without a reload: the second one only through SSE or polling.
    # (Polled from here: a string predicate given to wait_for_function is evaluated in the page,
    # which the page's CSP refuses once the first look finds it false, as it does on a busy machine.)
    for page in (first, second):
        eventually(lambda: set(counts_shown(page)) == {"1"}, timeout_s=20, message="the page shows 1")
        assert page.evaluate("window.notReloaded") is True
    assert system.count(petition["id"]) == 1
    assert counts_shown(second) == ["1", "1"]
    save(first, tmp_path, "petition-signed-desktop.png")


@sqlite_only
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


@sqlite_only
def test_the_form_works_without_javascript(system, browser):
    petition = system.create_petition("no-js")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{system.web.url}/p/{petition['slug']}")
    page.get_by_label("Full name").fill("Grace Hopper")
    page.locator("#email").fill("not-an-email")
    page.get_by_role("button", name="Sign this petition").click()
    assert page.locator("#email-error").inner_text() == "Enter an email address in the right form, like name@example.com."
    assert page.locator("#country-error").inner_text() == "Choose your country."
    assert page.get_by_label("Full name").input_value() == "Grace Hopper"  # what was typed stays

    page.locator("#email").fill("grace@example.org")
    page.get_by_label("Country").select_option("US")
    page.get_by_role("button", name="Sign this petition").click()
    page.wait_for_url(re.compile(r"/p/no-js/thanks$"))
    assert page.get_by_role("heading", name="Thank you for signing!").is_visible()
    system.wait_for_count(petition["id"], 1)
    page.reload()
    assert "1 person has signed" in re.sub(r"\s+", " ", page.locator("body").inner_text())
    context.close()


def test_supporter_email_is_escaped_and_fits_a_phone(browser, tmp_path):
    import email
    import email.policy
    from types import SimpleNamespace

    from services.notifier.emails import supporter_milestone_email

    from services.notifier.contacts import Organizer

    petition = SimpleNamespace(title='Save <b>Elm</b> Street & "the bridge"', slug="elm")
    organizer = Organizer(name="Patrick <script>alert(1)</script> Leonard", email="patrick@example.org")
    fanout = SimpleNamespace(petition_id="00000000-0000-4000-8000-000000000001", milestone=200, next_goal=500,
                             correlation_id="corr-1")
    recipient = SimpleNamespace(name="Ada Lovelace", email="ada@example.org",
                                unsubscribe_url="https://petitions.example.org/u/token", language="en")
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


# --- Issue 11, must show 1: an organizer's whole walk, in Chromium --------------------------------

LINK = re.compile(r"(https?://\S+/(?:o|c)/[A-Za-z0-9_.-]+)")


@pytest.fixture
def news_site():
    """Another site (another origin: its own port) whose article embeds the widget with the one
    script tag; GET /?petition=<slug>&groundswell=<origin>."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    class Article(BaseHTTPRequestHandler):
        def do_GET(self):
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            body = ("<!doctype html><meta charset=utf-8><title>Springfield News</title>"
                    "<body style='font-family:Georgia,serif;margin:16px;max-width:520px'>"
                    "<h1 style='font-size:22px'>Springfield News</h1>"
                    "<p>Parents start a petition to keep the Elm Street library open.</p>"
                    f"<script src='{query['groundswell']}/static/widget.js' data-petition='{query['petition']}' "
                    "data-width='480' async></script>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Article)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def walk(tmp_path, news_site):
    """The whole system with the product's defaults where the walk needs them: signatures count
    once their emailed link is followed, started petitions wait for a moderator; and the news
    site allowed to embed the widget."""
    from tests.system import System

    running = System(tmp_path, "sqlite")
    running.signing.env.update({"GROUNDSWELL_CONFIRM_SIGNATURES": "true", "GROUNDSWELL_MODERATE_PETITIONS": "true",
                                "GROUNDSWELL_EMBED_ORIGINS": news_site})
    try:
        yield running.start()
    finally:
        running.stop()


def emailed_text(system, address: str, subject_start: str) -> str:
    """The text of the newest email to `address` whose subject starts so (polled with a deadline)."""
    def found():
        return [m for m in list(system.smtp.messages)
                if m["To"].addresses[0].addr_spec == address and str(m["Subject"]).startswith(subject_start)]

    return eventually(found, message=f"an email '{subject_start}...' to {address}")[-1].get_body(("plain",)).get_content()


def emailed_link(system, address: str, subject_start: str) -> str:
    """The sign-in (/o/) or confirmation (/c/) link in that email."""
    return LINK.search(emailed_text(system, address, subject_start)).group(1)


def subjects_to(system, address: str) -> list[str]:
    return [str(m["Subject"]) for m in list(system.smtp.messages) if m["To"].addresses[0].addr_spec == address]


def dashboard_figures(page) -> dict:
    """What the dashboard shows: the count, the country table, the chart's bars."""
    return {
        "count": page.locator(".figures [data-count]").inner_text(),
        "countries": {row.get_attribute("data-country"): row.locator("td").nth(1).inner_text()
                      for row in page.locator("tr[data-country]").all()},
        "bars": sum(int(bar.get_attribute("data-bucket-count")) for bar in page.locator("svg[data-chart] rect.bar").all()),
    }


def test_an_organizer_starts_runs_and_closes_a_petition_in_chromium(walk, news_site, browser, tmp_path):
    import csv
    import io

    system = walk
    web = system.web.url
    organizer = browser.new_context(viewport={"width": 1280, "height": 900})
    page = organizer.new_page()

    # 1. Start a petition at /start (a plain form).
    page.goto(f"{web}/start")
    page.get_by_label("Petition title").fill("Keep the Elm Street library open")
    page.get_by_label("Who can make the decision?").fill("Springfield City Council")
    page.get_by_label("Why it matters").fill("The library is where our children read.\n\nThe council wants to close it.")
    page.get_by_label("Your name").fill("Rosa Diaz")
    page.get_by_label("Your email").fill("rosa@example.org")
    page.get_by_label("The decision maker's email (optional)").fill("council@springfield.example")
    save(page, tmp_path, "organizer-start.png")
    page.get_by_role("button", name="Start my petition").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    slug = "keep-the-elm-street-library-open"

    # 2. Confirm the organizer's email: the emailed link opens the dashboard, waiting for review.
    page.goto(emailed_link(system, "rosa@example.org", "Confirm your petition"))
    assert page.url == f"{web}/dashboard/{slug}"
    assert "Waiting for a moderator" in page.locator("[data-status]").inner_text()
    assert browser.new_page().goto(f"{web}/p/{slug}").status == 404  # not public yet

    # 3. A moderator approves it on the admin page (HTTP Basic: the admin token as the password), on
    #    signing's own port: the public origin does not serve /admin/*.
    moderator = browser.new_context(http_credentials={"username": "moderator", "password": system.token})
    review = moderator.new_page()
    assert review.goto(f"{web}/admin/review").status == 404
    review.goto(f"{system.signing.url}/admin/review")
    # The moderator checks the decision maker's address (never public) before approving.
    assert "council@springfield.example" in review.locator("section.review", has_text="Keep the Elm Street").inner_text()
    review.locator("section.review", has_text="Keep the Elm Street library open").get_by_role(
        "button", name="Approve: it goes live").click()
    review.get_by_role("status").filter(has_text="approved").wait_for()
    told = emailed_text(system, "rosa@example.org", "“Keep the Elm Street library open” is live")
    assert f"{web}/p/{slug}" in told
    assert "springfield.example" not in browser.new_page().goto(f"{web}/p/{slug}").text()  # never public

    # The dashboard before anyone signs: nothing counted, no countries, no bars.
    page.reload()
    assert page.locator("[data-status]").get_attribute("data-status") == "open"
    assert dashboard_figures(page) == {"count": "0", "countries": {}, "bars": 0}

    # 4. Supporters sign from other browsers (one on a phone, who asks for updates; one not), and
    #    follow the links emailed to them. A third opens the page now and signs only after the close.
    supporters = [("Ada Lovelace", "ada@example.org", "FR", True, '=HYPERLINK("http://evil.example","click")'),
                  ("Ben Okri", "ben@example.org", "GB", False, "For my daughter.")]
    late = browser.new_context(viewport=PHONE).new_page()
    late.goto(f"{web}/p/{slug}")
    for name, address, country, updates, comment in supporters:
        context = browser.new_context(viewport=PHONE)
        signer = context.new_page()
        signer.goto(f"{web}/p/{slug}")
        fill_and_sign(signer, name, address, country, comment=comment, updates=updates)
        signer.get_by_role("heading", name="Check your inbox").wait_for()
        signer.goto(emailed_link(system, address, "Confirm your signature on"))
        signer.wait_for_url(re.compile(rf"/p/{slug}/thanks$"))
        context.close()
    system.wait_for_count(system.query("signing", f"SELECT id FROM petitions WHERE slug = '{slug}'")[0][0], 2)
    # The dashboard left open meanwhile shows the live count without a reload (the chart and tables
    # are drawn on the server: they change on the next view).
    eventually(lambda: page.locator(".figures [data-count]").inner_text() == "2", timeout_s=20,
               message="the open dashboard shows 2")

    # 5. Open the dashboard from an emailed sign-in link, in a fresh browser (the organizer's
    #    first session stays valid too): the count, the chart and the country table have changed.
    page.close()
    organizer.close()
    system.execute("signing", "UPDATE organizer_links SET created_at = '2000-01-01 00:00:00.000000'")  # resend interval
    organizer = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = organizer.new_page()
    page.goto(f"{web}/p/{slug}/organizer")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(emailed_link(system, "rosa@example.org", "Sign in to"))
    assert page.url == f"{web}/dashboard/{slug}"
    assert dashboard_figures(page) == {"count": "2", "countries": {"FR": "1", "GB": "1"}, "bars": 2}

    # 6. Post an update: only the supporter who asked for updates gets it, once.
    page.get_by_label("Subject").fill("The council will vote on Monday")
    page.get_by_label("Message").fill("Come to the town hall at 6pm.\n\nBring a library book.")
    page.get_by_role("button", name="Send the update").click()
    page.get_by_role("status").filter(has_text="Your update is on its way").wait_for()
    eventually(lambda: "The council will vote on Monday" in subjects_to(system, "ada@example.org"),
               message="the update to the supporter who asked for updates")
    system.wait_settled()
    eventually(lambda: system.query("notifier", "SELECT count(*) FROM fanouts WHERE done_at IS NULL")[0][0] == 0,
               message="the update's fan-out done")
    assert subjects_to(system, "ada@example.org").count("The council will vote on Monday") == 1
    assert "The council will vote on Monday" not in subjects_to(system, "ben@example.org")
    page.reload()
    update_row = page.locator('tr[data-emails="update-1"]')
    assert update_row.locator("th").inner_text() == "Update: The council will vote on Monday"
    assert update_row.locator("td").all_inner_texts() == ["1", "0", "0"]  # sent, on their way, refused
    assert page.locator('tr[data-emails="confirmations"] td').all_inner_texts() == ["2", "0", "0"]
    save(page, tmp_path, "organizer-dashboard.png")

    # 7. Export the signatures: a row per confirmed signature, the formula inert.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the signatures (CSV)").click()
    exported = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert download.value.suggested_filename == f"{slug}-signatures.csv"
    assert sorted((r["name"], r["country"], r["comment"]) for r in rows) == [
        ("Ada Lovelace", "FR", "'" + supporters[0][4]), ("Ben Okri", "GB", "For my daughter.")]

    # 8. The widget, embedded by an allowed site, shows the live count and a sign button.
    host = browser.new_page(viewport={"width": 520, "height": 360})
    host.goto(f"{news_site}/?petition={slug}&groundswell={web}")
    widget = host.frame_locator("iframe")
    widget.locator("[data-count]").first.wait_for()
    assert widget.locator("[data-count]").first.inner_text() == "2"
    assert widget.get_by_role("link", name="Sign this petition").get_attribute("href") == f"{web}/p/{slug}"
    save(host, tmp_path, "widget.png")

    # 9. Close the petition: its page says so, and a supporter whose page was open is refused.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Close it").click()
    page.wait_for_url(re.compile(r"saved=closure"))
    assert page.locator("[data-status]").get_attribute("data-status") == "closed"
    fill_and_sign(late, "Cy Twombly", "cy@example.org", "US")
    refused = late.locator('[data-error="form"]')
    refused.wait_for(state="visible")
    assert refused.inner_text() == "This petition is closed: it takes no more signatures."
    late.reload()
    assert late.get_by_role("heading", name="This petition is closed").is_visible()
    assert system.query("signing", "SELECT count(*) FROM signatures WHERE email = 'cy@example.org'") == [(0,)]
    system.wait_settled()
    petition_id = system.query("signing", f"SELECT id FROM petitions WHERE slug = '{slug}'")[0][0]
    assert system.count(petition_id) == 2
