"""Issue 11, must show 3: an organizer signs in by an emailed link that works once, expires and
opens only their own petition's dashboard; without a session the dashboard answers 401, with
another petition's 403. Everything through the front door, as a browser would."""

import re

import httpx

from tests.harness import eventually


def sign_in_links(system, address: str) -> list[str]:
    links = []
    for message in list(system.smtp.messages):
        if message["To"].addresses[0].addr_spec == address and str(message["Subject"]).startswith("Sign in to"):
            text = message.get_body(("plain",)).get_content()
            links.append(re.search(r"(http\S+/o/\S+)", text).group(1))
    return links


def ask_for_link(system, client: httpx.Client, slug: str, address: str) -> str:
    before = len(sign_in_links(system, address))
    asked = client.post(f"/p/{slug}/organizer")
    assert asked.status_code == 202 and "Check your inbox" in asked.text
    eventually(lambda: len(sign_in_links(system, address)) > before, message=f"a sign-in link to {address}")
    return sign_in_links(system, address)[-1]


def test_a_sign_in_link_works_once_expires_and_opens_only_its_own_petition(system):
    mine = system.create_petition("mine")
    theirs = system.create_petition("theirs")
    with httpx.Client(base_url=system.web.url, timeout=10) as browser, \
            httpx.Client(base_url=system.web.url, timeout=10) as stranger:
        # No session: 401, and the page offers a sign-in link.
        refused = stranger.get("/dashboard/mine")
        assert refused.status_code == 401 and "/p/mine/organizer" in refused.text
        assert stranger.post("/dashboard/mine/closure", data={"outcome": "won"}).status_code == 401

        # Anyone may ask; only the organizer's address receives the link.
        link = ask_for_link(system, stranger, "mine", "organizer-mine@example.org")
        assert {m["To"].addresses[0].addr_spec for m in system.smtp.messages} == {"organizer-mine@example.org"}
        assert "/o/" in link and link.startswith(system.web.url)

        followed = browser.get(link.removeprefix(system.web.url), follow_redirects=False)
        assert followed.status_code == 303 and followed.headers["location"] == "/dashboard/mine"
        cookie = followed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=43200" in cookie
        dashboard = browser.get("/dashboard/mine")
        assert dashboard.status_code == 200 and 'data-dashboard="' + mine["id"] + '"' in dashboard.text

        # Once only: the same link again signs no one in (a second browser tries it).
        again = stranger.get(link.removeprefix(system.web.url), follow_redirects=False)
        assert again.status_code == 401 and "no longer works" in again.text
        assert stranger.get("/dashboard/mine").status_code == 401
        tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
        assert stranger.get(tampered.removeprefix(system.web.url), follow_redirects=False).status_code == 401

        # Another organizer's petition: 403 to look, and to act.
        assert browser.get("/dashboard/theirs").status_code == 403
        assert browser.post("/dashboard/theirs/closure", data={"outcome": "won"}).status_code == 403
        assert browser.post("/dashboard/theirs/story", data={"story": "Mine now."}).status_code == 403
        public = httpx.get(f"{system.signing.url}/petitions/theirs", timeout=10).json()
        assert public["status"] == "open" and public["story"] == theirs["story"]

        # Expired: a fresh link past its time signs no one in.
        fresh_link = ask_for_link_after_resend_interval(system, stranger)
        system.execute("signing", "UPDATE organizer_links SET expires_at = created_at WHERE used_at IS NULL")
        expired = stranger.get(fresh_link.removeprefix(system.web.url), follow_redirects=False)
        assert expired.status_code == 401 and "set-cookie" not in expired.headers

        # The organizer acts: the story changes, the petition is won and refuses signatures.
        saved = browser.post("/dashboard/mine/story", data={"story": "We are nearly there.\n\nThank you."},
                             follow_redirects=False)
        assert saved.status_code == 303
        assert "We are nearly there." in browser.get("/p/mine").text
        won = browser.post("/dashboard/mine/closure", data={"outcome": "won"}, follow_redirects=False)
        assert won.status_code == 303
        assert system.sign(mine["id"], {"name": "Late One", "email": "late@example.org"}).status_code == 409

        # Signing out ends the session; a session also runs out by itself.
        out = browser.post("/dashboard/sign-out", follow_redirects=False)
        assert out.status_code == 303 and browser.get("/dashboard/mine").status_code == 401
        link = ask_for_link_after_resend_interval(system, stranger)
        assert browser.get(link.removeprefix(system.web.url), follow_redirects=True).status_code == 200
        assert browser.get("/dashboard/mine").status_code == 200
        system.execute("signing", "UPDATE organizer_sessions SET expires_at = created_at")
        assert browser.get("/dashboard/mine").status_code == 401


def ask_for_link_after_resend_interval(system, client: httpx.Client) -> str:
    """Another link to the same organizer: the last was asked for less than the resend interval
    ago, so date the earlier ones back first (as if time had passed)."""
    date_links_back(system)
    return ask_for_link(system, client, "mine", "organizer-mine@example.org")


def date_links_back(system) -> None:
    old = "2000-01-01 00:00:00+00" if system.backend == "postgres" else "2000-01-01 00:00:00.000000"
    system.execute("signing", f"UPDATE organizer_links SET created_at = '{old}'")


def signed_in(system, client: httpx.Client, slug: str, address: str) -> None:
    link = ask_for_link(system, client, slug, address)
    assert client.get(link.removeprefix(system.web.url), follow_redirects=True).status_code == 200


def signed_in_again(system, client: httpx.Client, slug: str, address: str) -> None:
    """Another sign-in to the same petition, as if the resend interval had passed."""
    date_links_back(system)
    signed_in(system, client, slug, address)


def test_the_export_has_every_confirmed_signature_inert_and_no_one_erased(system):
    import csv
    import io

    mine = system.create_petition("export")
    system.create_petition("other-export")
    signers = [{"name": f"Signer {i}", "email": f"export{i}@example.org", "country": "GB", "postcode": f"N{i} 1AA",
                "comment": f"Comment {i}"} for i in range(25)]
    signers[3]["comment"] = '=HYPERLINK("http://evil.example","click")'
    signers[4]["name"] = "+Plus Minus"  # refused: a name may not start like a formula
    for body in signers:
        expected = 422 if body["name"].startswith("+") else 202
        assert system.sign(mine["id"], body).status_code == expected
    system.wait_for_count(mine["id"], 24)
    erased = httpx.post(f"{system.signing.url}/admin/erasure", json={"email": "export7@example.org"}, timeout=10,
                        headers={"Authorization": f"Bearer {system.token}"})
    assert erased.status_code == 200 and erased.json()["signatures"] == 1

    with httpx.Client(base_url=system.web.url, timeout=30) as browser, \
            httpx.Client(base_url=system.web.url, timeout=30) as other:
        assert browser.get("/dashboard/export/signatures.csv").status_code == 401
        signed_in(system, other, "other-export", "organizer-other-export@example.org")
        assert other.get("/dashboard/export/signatures.csv").status_code == 403
        signed_in(system, browser, "export", "organizer-export@example.org")
        response = browser.get("/dashboard/export/signatures.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    kept = [s for i, s in enumerate(signers) if i not in (4, 7)]
    assert sorted(r["name"] for r in rows) == sorted(s["name"] for s in kept)  # 23: erased and refused left out
    assert {r["country"] for r in rows} == {"GB"} and all(r["signed_at"].endswith("Z") for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert by_name["Signer 3"]["comment"] == "'" + signers[3]["comment"]  # inert: a spreadsheet shows it as text
    assert by_name["Signer 5"] == {"name": "Signer 5", "postcode": "N5 1AA", "country": "GB",
                                   "signed_at": by_name["Signer 5"]["signed_at"], "comment": "Comment 5"}
    assert "export7@example.org" not in response.text and "@" not in response.text.replace("=HYPERLINK", "")


def test_an_update_reaches_each_opted_in_supporter_once_and_no_one_else(system):
    petition = system.create_petition("updates")
    signers = [(f"fan{i}@example.org", i < 4) for i in range(6)]  # four asked for updates, two did not
    for address, updates in signers:
        assert system.sign(petition["id"], {"name": f"Fan {address[3]}", "email": address,
                                            "updates": updates}).status_code == 202
    system.wait_for_count(petition["id"], 6)
    token = system.query("signing", "SELECT unsubscribe_token FROM signatures WHERE email = 'fan3@example.org'")[0][0]
    assert httpx.post(f"{system.web.url}/u/{token}", timeout=10).status_code == 200  # one unsubscribes
    expected = {"fan0@example.org", "fan1@example.org", "fan2@example.org"}

    def received(subject: str) -> list[str]:
        return sorted(m["To"].addresses[0].addr_spec for m in list(system.smtp.messages) if str(m["Subject"]) == subject)

    with httpx.Client(base_url=system.web.url, timeout=10) as browser:
        signed_in(system, browser, "updates", "organizer-updates@example.org")
        empty = browser.post("/dashboard/updates/updates", data={"subject": "", "body": "Hello"})
        assert empty.status_code == 422 and "Subject" in empty.text
        posted = browser.post("/dashboard/updates/updates", data={
            "subject": "We met the council", "body": "They listened.\n\nNext week they vote."}, follow_redirects=False)
        assert posted.status_code == 303
        eventually(lambda: len(received("We met the council")) >= 3, message="the update's three emails")
        second = browser.post("/dashboard/updates/updates", data={"subject": "They voted yes", "body": "We won."},
                              follow_redirects=False)
        assert second.status_code == 303
        eventually(lambda: len(received("They voted yes")) >= 3, message="the second update's emails")
        dashboard = browser.get("/dashboard/updates").text
        assert "We met the council" in dashboard and "They voted yes" in dashboard
    system.wait_settled()
    eventually(lambda: system.query("notifier", "SELECT count(*) FROM fanouts WHERE done_at IS NULL")[0][0] == 0,
               message="both fan-outs done")
    assert received("We met the council") == sorted(expected)  # each once; not the unsubscribed, nor the others
    assert received("They voted yes") == sorted(expected)
    # The dashboard's "Emails sent" reads the notifier's ledger: three for each update, none waiting.
    with httpx.Client(base_url=system.web.url, timeout=10) as browser:
        signed_in_again(system, browser, "updates", "organizer-updates@example.org")
        dashboard = browser.get("/dashboard/updates").text
    for number, subject in ((1, "We met the council"), (2, "They voted yes")):
        row = re.search(rf'data-emails="update-{number}">(.*?)</tr>', dashboard, re.S).group(1)
        assert f"Update: <bdi>{subject}</bdi>" in row
        assert re.findall(r"<td[^>]*>(\d+)</td>", row) == ["3", "0", "0"]
    message = next(m for m in system.smtp.messages if str(m["Subject"]) == "We met the council")
    text = message.get_body(("plain",)).get_content()
    assert "They listened." in text and "Next week they vote." in text and "/u/" in text
    assert message["List-Unsubscribe"].startswith("<") and message["List-Unsubscribe-Post"]


def test_the_widget_may_be_framed_and_shows_the_live_count_and_a_sign_button(system):
    petition = system.create_petition("widget")
    assert system.sign(petition["id"], {"name": "Wid Get", "email": "widget@example.org"}).status_code == 202
    system.wait_for_count(petition["id"], 1)
    web = system.web.url
    widget = eventually(lambda: (r := httpx.get(f"{web}/w/widget", timeout=10)) and 'data-count>1<' in r.text and r,
                        message="the widget with the count")
    assert widget.status_code == 200 and "X-Frame-Options" not in widget.headers
    assert "frame-ancestors 'self'" in widget.headers["Content-Security-Policy"]
    assert 'href="' + web + '/p/widget"' in widget.text and "Sign this petition" in widget.text
    script = httpx.get(f"{web}/static/widget.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"] and "/w/" in script.text
    page = httpx.get(f"{web}/p/widget", timeout=10)
    assert page.headers["X-Frame-Options"] == "DENY"  # everything else still refuses to be framed


def emails_to(system, address: str, subject_start: str) -> list:
    return [m for m in list(system.smtp.messages)
            if m["To"].addresses[0].addr_spec == address and str(m["Subject"]).startswith(subject_start)]


def start(system, client: httpx.Client, title: str, name: str, address: str) -> str:
    """Start a petition at /start and follow the emailed link; returns its slug."""
    started = client.post("/start", data={"title": title, "target": "Springfield City Council",
                                          "story": "The library is closing.\n\nKeep it open.", "name": name,
                                          "email": address})
    assert started.status_code == 202 and "Check your inbox" in started.text and address in started.text
    mail = eventually(lambda: emails_to(system, address, "Confirm your petition"), message="the confirm email")
    link = re.search(r"(http\S+/o/\S+)", mail[0].get_body(("plain",)).get_content()).group(1)
    followed = client.get(link.removeprefix(system.web.url), follow_redirects=False)
    assert followed.status_code == 303
    return followed.headers["location"].removeprefix("/dashboard/")


def assert_not_public(system, slug: str) -> None:
    """Every public read of the petition is a 404, through the front door and from the counter,
    and none of its files is in the front door's folder."""
    (petition_id,) = system.query("signing", f"SELECT id FROM petitions WHERE slug = '{slug}'")[0]
    for ref in (slug, petition_id):
        for path in (f"/petitions/{ref}/count", f"/petitions/{ref}/stats", f"/petitions/{ref}/count/events",
                     f"/petitions/{ref}.json", f"/p/{ref}", f"/w/{ref}"):
            for base in (system.web.url, system.counter.url):
                if base == system.counter.url and path.startswith(("/p/", "/w/")):
                    continue
                answer = httpx.get(f"{base}{path}", timeout=10)
                assert answer.status_code == 404, (base, path, answer.status_code, answer.text[:200])
    public = system.workdir / "public"
    leaked = [p.relative_to(public) for p in public.rglob("*") if petition_id in p.name or slug in p.name]
    assert leaked == []


def test_a_started_petition_waits_for_its_organizer_and_a_moderator_who_tells_them_either_way(system):
    web = system.web.url
    admin = ("moderator", system.token)
    with httpx.Client(base_url=web, timeout=10) as rosa, httpx.Client(base_url=web, timeout=10) as ben:
        form = rosa.get("/start")
        assert form.status_code == 200 and 'action="/start"' in form.text
        empty = rosa.post("/start", data={"title": "", "target": "", "story": "", "name": "", "email": "nope"})
        assert empty.status_code == 422
        assert all(f'id="{field}-error"' in empty.text for field in ("title", "target", "story", "name", "email"))

        slug = start(system, rosa, "Save the Elm Street library", "Rosa Diaz", "rosa@example.org")
        assert slug == "save-the-elm-street-library"
        dashboard = rosa.get(f"/dashboard/{slug}")
        assert dashboard.status_code == 200 and "Waiting for a moderator" in dashboard.text
        # Not public while it waits: no page, no signatures, no count, no figures, no live stream,
        # no public JSON, no file (issue 21: the counter answered them, and wrote a count document).
        assert httpx.get(f"{web}/p/{slug}", timeout=10).status_code == 404
        assert system.sign(slug, {"name": "Too Early", "email": "early@example.org"}).status_code == 404
        system.wait_settled()  # the counter has seen its PetitionCreated and OrganizerConfirmed
        assert_not_public(system, slug)

        # The moderators' page is on the service network (signing's own port), not the public
        # origin; it wants the admin token as a password; the API lists it too.
        assert httpx.get(f"{web}/admin/review", auth=admin, timeout=10).status_code == 404
        moderators = system.signing.url
        refused = httpx.get(f"{moderators}/admin/review", timeout=10)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{moderators}/admin/review", auth=("moderator", "wrong"), timeout=10).status_code == 401
        queue = httpx.get(f"{moderators}/admin/review", auth=admin, timeout=10)
        assert queue.status_code == 200 and "Save the Elm Street library" in queue.text
        listed = httpx.get(f"{system.signing.url}/admin/petitions", params={"status": "in_review"}, timeout=10,
                           headers={"Authorization": f"Bearer {system.token}"})
        assert [p["slug"] for p in listed.json()] == [slug]
        petition_id = listed.json()[0]["id"]

        approved = httpx.post(f"{moderators}/admin/review/{petition_id}", data={"decision": "approve"}, auth=admin,
                              timeout=10, follow_redirects=False)
        assert approved.status_code == 303
        live = eventually(lambda: emails_to(system, "rosa@example.org", "“Save the Elm Street library” is live"),
                          message="the approval email")
        assert f"{web}/p/{slug}" in live[0].get_body(("plain",)).get_content()
        assert httpx.get(f"{web}/p/{slug}", timeout=10).status_code == 200
        assert system.sign(slug, {"name": "First Fan", "email": "fan@example.org"}).status_code == 202
        eventually(lambda: (r := httpx.get(f"{web}/petitions/{slug}.json", timeout=10)).status_code == 200
                   and r.json()["status"] == "open" and r.json()["count"] == 1, message="public once approved")

        # Another is rejected, with a note the organizer reads; it never goes public.
        other = start(system, ben, "Ban all the things", "Ben Lee", "ben@example.org")
        other_id = httpx.get(f"{system.signing.url}/admin/petitions", timeout=10,
                             headers={"Authorization": f"Bearer {system.token}"}).json()[0]["id"]
        rejected = httpx.post(f"{system.signing.url}/admin/petitions/{other_id}/review", timeout=10,
                              headers={"Authorization": f"Bearer {system.token}"},
                              json={"decision": "reject", "note": "It asks for nothing a council can do."})
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        told = eventually(lambda: emails_to(system, "ben@example.org", "“Ban all the things” was not approved"),
                          message="the rejection email")
        assert "It asks for nothing a council can do." in told[0].get_body(("plain",)).get_content()
        assert httpx.get(f"{web}/p/{other}", timeout=10).status_code == 404
        system.wait_settled()
        assert_not_public(system, other)
        assert "Not approved by the moderators: <bdi>It asks for nothing a council can do.</bdi>." in \
            ben.get(f"/dashboard/{other}").text
        again = httpx.post(f"{system.signing.url}/admin/petitions/{other_id}/review", timeout=10,
                           headers={"Authorization": f"Bearer {system.token}"}, json={"decision": "approve"})
        assert again.status_code == 409
    system.wait_settled()
    assert len(emails_to(system, "rosa@example.org", "“Save the Elm Street library” is live")) == 1
    assert len(emails_to(system, "ben@example.org", "“Ban all the things” was not approved")) == 1
