"""The files the front door serves: count documents as they are put, pages of viewed petitions
rendered again as the count changes, but not more often than the refresh interval."""

import asyncio
import gzip
import time
from datetime import datetime, timezone
from types import SimpleNamespace

from services.signing.frontdoor import FrontDoor
from contract.counts import count_document
from tests.harness import until

PETITION = SimpleNamespace(id="5f0e8d62-1c4b-4d7e-9a51-2b7c9e0f3a11", slug="save-the-park", status="open")
OTHER = SimpleNamespace(id="0b6f2a7e-8c1d-4f3a-b5e9-7d2c4a6e8f10", slug="fix-the-bridge", status="open")
WAITING = SimpleNamespace(id="9d3c1b2a-4e5f-4a6b-8c7d-0e1f2a3b4c5d", slug="not-yet", status="in_review")


class Petitions:
    def __init__(self, *rows) -> None:
        self.rows = {row.id: row for row in rows}
        self.forgotten: list[str] = []

    async def get(self, ref: str):
        return self.rows.get(ref) or next((r for r in self.rows.values() if r.slug == ref), None)

    def forget(self, petition_id: str) -> None:
        self.forgotten.append(petition_id)


def counted(n: int, petition=PETITION):
    return count_document(petition.id, n, datetime(2026, 11, 25, tzinfo=timezone.utc))


class Renders:
    def __init__(self) -> None:
        self.made: list[tuple[str, int | None]] = []

    def __call__(self, petition, count, keys):
        self.made.append((petition.slug, None if count is None else count.count))
        return {f"pages/{petition.slug}.{key}.html": f"<p lang={key}>{count.count}</p>".encode() for key in sorted(keys)}


async def test_count_documents_are_files_by_id_and_by_slug(tmp_path):
    door = FrontDoor(Petitions(PETITION), Renders(), tmp_path)
    door.prepare()
    await door.on_count(counted(7))
    by_id = tmp_path / "counts" / f"{PETITION.id}.json"
    assert by_id.read_bytes() == counted(7).model_dump_json().encode()
    assert (tmp_path / "counts" / "save-the-park.json").read_bytes() == by_id.read_bytes()
    await door.on_count(counted(8))
    assert (tmp_path / "counts" / "save-the-park.json").read_bytes() == counted(8).model_dump_json().encode()


async def test_no_file_of_a_petition_that_is_not_public(tmp_path):
    """Issue 21: a petition waiting for review had its count document written to the public folder.
    Now a count for one writes nothing, and one taken out of the bucket leaves no file behind."""
    door = FrontDoor(Petitions(PETITION, WAITING), Renders(), tmp_path)
    door.prepare()
    await door.on_count(counted(0, WAITING))
    assert sorted(p.name for p in (tmp_path / "counts").iterdir()) == []
    await door.on_count(counted(2))
    await door.on_removed(PETITION.id)  # the counter took it out of the bucket
    assert sorted(p.name for p in (tmp_path / "counts").iterdir()) == []


async def test_counts_are_unknown_until_the_bucket_is_read_then_zero_for_a_new_petition(tmp_path):
    door = FrontDoor(Petitions(PETITION, OTHER), Renders(), tmp_path)
    await door.on_count(counted(3))
    assert door.count_of(OTHER.id) is None
    door.on_loaded()
    assert door.count_of(OTHER.id).count == 0 and door.count_of(PETITION.id).count == 3


async def test_a_viewed_petition_is_rendered_again_as_its_count_changes_at_most_every_interval(tmp_path):
    renders = Renders()
    door = FrontDoor(Petitions(PETITION, OTHER), renders, tmp_path, refresh_s=0.2)
    door.prepare()
    runner = asyncio.create_task(door.run())
    try:
        await door.on_count(counted(5))
        await door.on_count(counted(1, OTHER))
        door.on_loaded()
        assert renders.made == []  # nobody has viewed anything: no pages
        door.keep(PETITION.id, "default")
        page = tmp_path / "pages" / "save-the-park.default.html"
        await until(page.exists)
        assert page.read_text() == "<p lang=default>5</p>"
        assert gzip.decompress(page.with_name(page.name + ".gz").read_bytes()) == b"<p lang=default>5</p>"

        started = time.monotonic()
        for n in range(6, 60):
            await door.on_count(counted(n))
        await until(lambda: page.read_text() == "<p lang=default>59</p>")
        elapsed = time.monotonic() - started
        renders_of_burst = [c for slug, c in renders.made if slug == "save-the-park"][1:]
        assert renders_of_burst[-1] == 59  # the last count is always rendered
        assert len(renders_of_burst) <= elapsed / 0.2 + 1  # never more often than the interval
        await door.on_count(counted(2, OTHER))
        assert not (tmp_path / "pages" / "fix-the-bridge.default.html").exists()  # still nobody viewed it

        # A reader in another language: that language's page too, from now on, rendered with the rest.
        door.keep(PETITION.id, "fr")
        french = tmp_path / "pages" / "save-the-park.fr.html"
        await until(french.exists)
        await door.on_count(counted(60))
        await until(lambda: french.read_text() == "<p lang=fr>60</p>" and page.read_text() == "<p lang=default>60</p>")
        renders_of_burst = [c for slug, c in renders.made if slug == "save-the-park"][1:]

        door.petition_changed(PETITION.id)  # e.g. its story was edited: read and render it again
        await until(lambda: len([s for s, _ in renders.made if s == "save-the-park"]) == len(renders_of_burst) + 2)
        assert PETITION.id in door.petitions.forgotten
    finally:
        runner.cancel()


async def test_a_restart_drops_pages_it_would_not_keep_current_and_copies_static_assets(tmp_path):
    static = tmp_path / "static-source"
    static.mkdir()
    (static / "page.css").write_text("body { color: black }")
    public = tmp_path / "public"
    (public / "pages").mkdir(parents=True)
    (public / "pages" / "old.html").write_text("stale")
    FrontDoor(Petitions(), Renders(), public, static_dir=static).prepare()
    assert not (public / "pages").exists()
    assert (public / "static" / "page.css").read_text() == "body { color: black }"
    assert gzip.decompress((public / "static" / "page.css.gz").read_bytes()) == b"body { color: black }"


async def test_a_full_disk_never_stops_the_front_door_and_the_files_follow_once_there_is_room(tmp_path, monkeypatch):
    """Issue 21: on a full disk the count follower crashed writing a count document and signing
    exited, then every restart died copying static files. Now nothing raises: the writes are tried
    again every second, and the files are there once space returns."""
    import errno

    from services.signing import frontdoor

    real_write = frontdoor.write_file
    full, refused = [True], [0]

    def write_or_refuse(path, data, **options):
        if full[0]:
            refused[0] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data, **options)

    monkeypatch.setattr(frontdoor, "write_file", write_or_refuse)
    monkeypatch.setattr(frontdoor, "RETRY_S", 0.05)
    static = tmp_path / "assets"
    static.mkdir()
    (static / "page.css").write_text("body{}")
    public = tmp_path / "public"
    door = FrontDoor(Petitions(PETITION), Renders(), public, static_dir=static)
    door.prepare()  # no exception: the start goes on
    await door.on_count(counted(4))
    door.keep(PETITION.id, "de")
    assert door.count_of(PETITION.id).count == 4  # pages rendered by Python show the count meanwhile
    runner = asyncio.create_task(door.run())
    try:
        first = refused[0]
        await until(lambda: refused[0] >= first + 3)  # tried again, and again refused
        assert not (public / "counts" / f"{PETITION.id}.json").exists()
        full[0] = False
        await until(lambda: (public / "counts" / f"{PETITION.id}.json").exists()
                    and (public / "static" / "page.css").exists() and (public / "pages" / "save-the-park.de.html").exists())
        assert (public / "counts" / "save-the-park.json").read_bytes() == counted(4).model_dump_json().encode()
    finally:
        runner.cancel()
