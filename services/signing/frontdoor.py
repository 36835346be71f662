"""What the front door serves without asking Python: files under GROUNDSWELL_PUBLIC_DIR.

    counts/<petition id>.json      each petition's count document, as the counter put it in the
    counts/<slug>.json             COUNTS bucket (the slug's file is a link to the id's)
    pages/<slug>.<key>.html        the page and thank-you page of each petition someone has viewed
    pages/<slug>/thanks.<key>.html since this process started, in each language its readers asked
                                   for (key: en, fr, es, de, ar, or `default`: the petition's own
                                   language, for readers who ask for none of those), with the count
                                   in them; rendered again when the count changes, at most every
                                   `refresh_s`
    static/                        the pages' stylesheet and script

Caddy (deploy/Caddyfile) serves a file when there is one and asks signing or the counter only
when there is not: the first view of a petition renders it here and writes its pages. Counts come
from following the COUNTS bucket, never from a call to the counter, so every page this process
renders, file or not, shows the count in memory. Without a public folder (the setting unset)
nothing is written and pages are rendered per request from the same memory.
"""

import asyncio
import gzip
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import structlog

from services.signing.db import PUBLIC
from services.signing.service import PetitionCache
from contract.counts import Count, count_document

log = structlog.get_logger("frontdoor")

RenderFiles = Callable[[object, Count | None, set[str]], dict[str, bytes]]  # petition, count, keys -> path -> HTML
RETRY_S = 1.0  # a write refused (a full disk) is tried again this often
REFRESH_ALL_S = 3600.0  # every page file is rendered again this often: "awaiting a response for N days" moves on


def write_file(path: Path, data: bytes, *, precompressed: bool = False) -> None:
    """Replace `path` atomically (a reader sees the old file or the new one, never half of one);
    `path.gz` beside it for clients that take gzip (Caddy's `precompressed`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if precompressed:
        write_file(path.with_name(path.name + ".gz"), gzip.compress(data, 6, mtime=0))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
    except OSError:
        temporary.unlink(missing_ok=True)  # half a file on a full disk: give its space back
        raise
    os.replace(temporary, path)


def link_file(link: Path, target_name: str) -> None:
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target_name)
    os.replace(temporary, link)


class FrontDoor:
    def __init__(self, petitions: PetitionCache, render_files: RenderFiles, public_dir: Path | None,
                 *, refresh_s: float = 0.25, static_dir: Path | None = None) -> None:
        self.petitions = petitions
        self.render_files = render_files
        self.public_dir = public_dir
        self.refresh_s = refresh_s
        self.static_dir = static_dir
        self.counts: dict[str, Count] = {}
        self.loaded = False  # every document in the bucket at start has arrived
        self.hot: dict[str, set[str]] = {}  # petitions whose pages are files -> their file keys (languages)
        self._rendered_at: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()
        # Files a full disk (or any refused write) kept from being written: tried again every
        # RETRY_S until they are. Python never stops serving because a file could not be written.
        self._unwritten: set[str] = set()  # petition ids whose count document is missing or stale
        self._static_pending = False
        self._write_failed_logged_at = 0.0
        self._retry_at = 0.0
        self._refresh_all_at = time.monotonic() + REFRESH_ALL_S

    # --- counts -------------------------------------------------------------------------------

    def count_of(self, petition_id: str) -> Count | None:
        """The petition's count; None while the bucket has not been read yet."""
        petition_id = str(petition_id)
        if (count := self.counts.get(petition_id)) is not None:
            return count
        if self.loaded:  # not counted yet: the counter has not seen the petition
            return count_document(petition_id, 0, datetime.now(timezone.utc))
        return None

    def on_loaded(self) -> None:
        if not self.loaded:
            log.info("counts_loaded", petitions=len(self.counts))
        self.loaded = True

    async def on_count(self, count: Count) -> None:
        """A count document was put (or is there at start). Only a public petition's goes into
        the public folder (the counter puts no other; this holds whatever a bucket holds)."""
        petition_id = str(count.petition_id)
        previous = self.counts.get(petition_id)
        self.counts[petition_id] = count
        if self.public_dir is None:
            return
        if not await self._write_count(petition_id, linked=previous is not None):
            return
        if petition_id in self.hot and (previous is None or previous.count != count.count):
            self._schedule(petition_id)

    async def _write_count(self, petition_id: str, *, linked: bool = True) -> bool:
        """Write the petition's count document (and its slug's link); False if it is not public
        or the write failed (then it is tried again)."""
        petition = await self.petitions.get(petition_id)
        if petition is None or petition.status not in PUBLIC:
            await self.on_removed(petition_id)
            return False
        folder = self.public_dir / "counts"
        try:
            write_file(folder / f"{petition_id}.json", self.counts[petition_id].model_dump_json().encode())
            if not linked or not (folder / f"{petition.slug}.json").is_symlink():
                link_file(folder / f"{petition.slug}.json", f"{petition_id}.json")
        except OSError as exc:
            self._write_failed(exc)
            self._unwritten.add(petition_id)
            self._wake.set()
            return True  # the count is in memory: pages rendered from it are current
        self._unwritten.discard(petition_id)
        return True

    def _write_failed(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._write_failed_logged_at >= 10.0:
            self._write_failed_logged_at = now
            log.error("public_file_write_failed", error=exc.strerror or type(exc).__name__,
                      retry_in_s=RETRY_S, unwritten=len(self._unwritten) + 1)

    async def on_removed(self, petition_id: str) -> None:
        """The petition has no public count (not public yet, or rejected): no file of it stays."""
        self.counts.pop(petition_id, None)
        self.hot.pop(petition_id, None)
        if self.public_dir is None:
            return
        folder = self.public_dir / "counts"
        target = f"{petition_id}.json"
        (folder / target).unlink(missing_ok=True)
        petition = await self.petitions.get(petition_id)
        links = [folder / f"{petition.slug}.json"] if petition is not None else folder.glob("*.json")
        for link in links:
            if link.is_symlink() and os.readlink(link) == target:
                link.unlink(missing_ok=True)

    # --- pages --------------------------------------------------------------------------------

    def petition_changed(self, petition_id: str) -> None:
        """One of the petition's own events passed: read it again, render its pages again."""
        self.petitions.forget(petition_id)
        if petition_id in self.hot:
            self._schedule(petition_id)

    def keep(self, petition_id: str, key: str) -> None:
        """Someone viewed this petition through Python: keep its pages in this language (`key`,
        services/signing/pages.py file_key) as files from now on."""
        if self.public_dir is None or self.count_of(petition_id) is None:
            return
        petition_id = str(petition_id)
        keys = self.hot.setdefault(petition_id, set())
        if key not in keys:
            keys.add(key)
            self._schedule(petition_id)

    def _schedule(self, petition_id: str) -> None:
        earliest = self._rendered_at.get(petition_id, 0.0) + self.refresh_s
        self._due.setdefault(petition_id, max(time.monotonic(), earliest))
        self._wake.set()

    async def run(self) -> None:
        """Forever: render the pages that are due, and write again what a refused write left out."""
        while True:
            self._wake.clear()
            now = time.monotonic()
            for petition_id in [p for p, at in self._due.items() if at <= now]:
                del self._due[petition_id]
                try:
                    await self._render(petition_id)
                except OSError as exc:  # a full disk: the page is rendered again in a moment
                    self._write_failed(exc)
                    self._due[petition_id] = time.monotonic() + RETRY_S
                except Exception:  # noqa: BLE001 - a page stays as it was; the next change renders it
                    log.exception("page_render_failed", petition_id=petition_id)
            if self._behind() and now >= self._retry_at:
                self._retry_at = now + RETRY_S
                await self._write_again()
            if now >= self._refresh_all_at:
                self._refresh_all_at = now + REFRESH_ALL_S
                for petition_id in list(self.hot):
                    self._schedule(petition_id)
                continue
            wake_at = min([*self._due.values(), *([self._retry_at] if self._behind() else []), self._refresh_all_at])
            try:
                async with asyncio.timeout(max(0.0, wake_at - time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _behind(self) -> bool:
        return bool(self._unwritten) or self._static_pending

    async def _write_again(self) -> None:
        if self._static_pending:
            self._copy_static()
        for petition_id in list(self._unwritten):
            if petition_id not in self.counts:
                self._unwritten.discard(petition_id)
                continue
            await self._write_count(petition_id)
            if petition_id in self._unwritten:
                return  # still refused: the rest waits for the next try
        if not self._behind():
            log.info("public_files_written_again")

    async def _render(self, petition_id: str) -> None:
        petition = await self.petitions.get(petition_id)
        keys = self.hot.get(petition_id)
        if petition is None or self.public_dir is None or not keys:
            self.hot.pop(petition_id, None)
            return
        self._rendered_at[petition_id] = time.monotonic()
        for relative, html in self.render_files(petition, self.count_of(petition_id), set(keys)).items():
            write_file(self.public_dir / relative, html, precompressed=True)

    # --- start --------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Pages on disk from an earlier process are not kept current by this one: remove them.
        Count documents are rewritten as the bucket is read. Static assets are copied."""
        if self.public_dir is None:
            return
        shutil.rmtree(self.public_dir / "pages", ignore_errors=True)
        self._copy_static()

    def _copy_static(self) -> None:
        """The pages' assets into the public folder; on a full disk, again later (never a failed start)."""
        try:
            (self.public_dir / "counts").mkdir(parents=True, exist_ok=True)
            if self.static_dir is not None:
                for source in self.static_dir.iterdir():
                    if source.is_file():
                        write_file(self.public_dir / "static" / source.name, source.read_bytes(), precompressed=True)
        except OSError as exc:
            self._write_failed(exc)
            self._static_pending = True
            self._wake.set()
        else:
            self._static_pending = False
