"""Issue 11, must show 2: the figures an organizer sees are the events added up. 1,000 signatures
spread over countries and hours (SignatureAdded events with chosen times, on the real stream),
some invalidated (SignatureInvalidated, saying where and when each had counted), and a few signed
and invalidated through signing itself: the counter's country table and its hour and day buckets
each sum to the count and equal what the events say, and `counter rebuild` gives the same."""

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import httpx
import nats

from contract.events import SignatureAdded, SignatureInvalidated, encode_event, event_subject
from tests.harness import eventually

COUNTRIES = ["GB", "US", "FR", "DE", "IN", "BR", None]  # None: the signer gave no country
START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)


def publish(system, events) -> None:
    async def run() -> None:
        nc = await nats.connect(system.nats.url)
        js = nc.jetstream()
        for event in events:
            await js.publish(event_subject(event.petition_id, event.type), encode_event(event),
                             headers={"Nats-Msg-Id": str(event.event_id)})
        await nc.close()

    asyncio.run(run())


def stats(system, petition_id: str, bucket: str) -> dict:
    response = httpx.get(f"{system.counter.url}/petitions/{petition_id}/stats", params={"bucket": bucket}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    return {key: body[key] for key in ("count", "bucket", "countries", "buckets")}


def test_the_country_table_and_the_chart_add_up_to_the_count_and_survive_a_rebuild(system):
    petition = system.create_petition("figures")
    pid = petition["id"]
    rng = random.Random(11)
    added = [SignatureAdded(petition_id=pid, signature_id=uuid4(), country=rng.choice(COUNTRIES),
                            occurred_at=START + timedelta(minutes=rng.randrange(0, 72 * 60)))
             for _ in range(1000)]
    invalid = rng.sample(added, 37)
    invalidated = [SignatureInvalidated(petition_id=pid, signature_id=a.signature_id, moderation_id=uuid4(),
                                        country=a.country, counted_at=a.occurred_at) for a in invalid]
    publish(system, added)
    publish(system, invalidated)

    # Five more through signing, now, from France; a moderator invalidates two of them by domain.
    for i in range(5):
        domain = "spam.example" if i < 2 else "example.org"
        body = {"name": f"Signer {i}", "email": f"signer{i}@{domain}", "country": "FR"}
        assert system.sign(pid, body).status_code == 202
    system.wait_for_count(pid, 1000 - 37 + 5)
    moderation = httpx.post(f"{system.signing.url}/admin/petitions/{pid}/invalidations", timeout=10,
                            headers={"Authorization": f"Bearer {system.token}"},
                            json={"filter": {"email_domain": "spam.example"}})
    assert moderation.status_code == 200, moderation.text
    expected_count = 1000 - 37 + 3
    system.wait_for_count(pid, expected_count)
    system.wait_settled()

    # What the events say, worked out here from the events themselves.
    kept = [a for a in added if a not in invalid]
    countries = Counter(a.country for a in kept)
    countries["FR"] += 3
    signed_now = system.query("signing", f"SELECT confirmed_at FROM signatures WHERE petition_id = '{pid}' "
                                         "AND state = 'confirmed'")
    now_hours = Counter(_hour(at) for (at,) in signed_now)
    hours = Counter(a.occurred_at.replace(minute=0, second=0, microsecond=0) for a in kept) + now_hours
    days = Counter()
    for hour, n in hours.items():
        days[hour.replace(hour=0)] += n

    expected = {
        "hour": {"count": expected_count, "bucket": "hour",
                 "countries": sorted(({"country": c, "count": n} for c, n in countries.items()),
                                     key=lambda r: (-r["count"], r["country"] or "")),
                 "buckets": [{"start": _iso(h), "count": n} for h, n in sorted(hours.items())]},
        "day": {"count": expected_count, "bucket": "day",
                "countries": None, "buckets": [{"start": _iso(d), "count": n} for d, n in sorted(days.items())]},
    }
    expected["day"]["countries"] = expected["hour"]["countries"]

    def figures() -> dict:
        return {bucket: stats(system, pid, bucket) for bucket in ("hour", "day")}

    live = eventually(lambda: (f := figures()) == expected and f, timeout_s=30,
                      message="the figures the events say")
    for bucket in ("hour", "day"):
        assert sum(r["count"] for r in live[bucket]["countries"]) == expected_count
        assert sum(r["count"] for r in live[bucket]["buckets"]) == expected_count
    assert len(live["hour"]["buckets"]) > 60 and len(live["day"]["buckets"]) >= 3  # spread, not one lump

    # Damage every projection, then rebuild them from the stream alone: the same figures.
    for table in ("processed_events", "petition_countries", "petition_hours"):
        system.execute("counter", f"DELETE FROM {table}")
    system.execute("counter", "UPDATE petition_counts SET count = 7")
    system.rebuild()
    assert figures() == expected
    assert "counter_figures_missing" not in system.counter.logs()

    # A database upgraded from before these projections has counts but no buckets: the counter
    # says, when it starts, to run the rebuild.
    system.execute("counter", "DELETE FROM petition_countries")
    system.execute("counter", "DELETE FROM petition_hours")
    system.counter.stop()
    system.counter.start()
    eventually(lambda: "counter_figures_missing" in system.counter.logs(), message="the counter's advice to rebuild")


def _hour(value) -> datetime:
    if isinstance(value, str):  # SQLite hands timestamps back as text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_the_public_json_says_the_count_the_countries_and_that_it_won_even_after_a_rebuild(system):
    petition = system.create_petition("public-data")
    pid = petition["id"]
    for i, country in enumerate(["GB", "GB", "US", None]):
        body = {"name": f"Signer {i}", "email": f"public{i}@example.org", **({"country": country} if country else {})}
        assert system.sign(pid, body).status_code == 202
    system.wait_for_count(pid, 4)

    def public() -> dict:
        response = httpx.get(f"{system.counter.url}/petitions/public-data.json", timeout=10)
        assert response.status_code == 200 and "max-age" in response.headers["cache-control"], response.text
        body = response.json()
        return {key: body[key] for key in ("petition_id", "slug", "count", "goal", "status", "signatures_by_country")}

    expected = {"petition_id": pid, "slug": "public-data", "count": 4, "goal": 100, "status": "open",
                "signatures_by_country": [{"country": "GB", "count": 2}, {"country": None, "count": 1},
                                          {"country": "US", "count": 1}]}
    eventually(lambda: public() == expected, message="the public JSON")
    assert httpx.get(f"{system.counter.url}/petitions/nope.json", timeout=10).status_code == 404

    won = httpx.post(f"{system.signing.url}/petitions/{pid}/closure", json={"outcome": "won"}, timeout=10,
                     headers={"Authorization": f"Bearer {system.token}"})
    assert won.status_code == 200, won.text
    refused = system.sign(pid, {"name": "Late Comer", "email": "late@example.org"})
    assert refused.status_code == 409 and "won" in refused.json()["detail"]
    expected["status"] = "won"
    eventually(lambda: public() == expected, message="status won")
    system.wait_settled()

    system.execute("counter", "DELETE FROM processed_events")
    system.execute("counter", "UPDATE petition_counts SET count = 7, status = 'open'")
    system.rebuild()
    assert public() == expected
