"""Petitions by id or slug, from memory: signing reads a petition on every signature and view.

An entry is dropped when one of the petition's own lifecycle events passes on NATS (any signing
replica may have changed it), and after `ttl_s` in any case, which bounds staleness if an event
went by while this process was disconnected. Misses are read from the database and not cached.
"""

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.signing.db import petitions
from shared.refs import petition_ref


class PetitionCache:
    def __init__(self, engine: AsyncEngine, ttl_s: float = 60.0, clock=time.monotonic) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_ref: dict[str, tuple[float, object]] = {}  # id or slug, as asked -> (read at, row)
        self._refs: dict[str, set[str]] = {}  # petition id -> the refs it was asked by

    async def get(self, ref: str):
        """The petition row with this id or slug, or None."""
        cached = self._by_ref.get(ref)
        if cached is not None and self.clock() - cached[0] < self.ttl_s:
            return cached[1]
        petition = await self._read(ref)
        if petition is not None:
            self._by_ref[ref] = (self.clock(), petition)
            self._refs.setdefault(petition.id, set()).add(ref)
        return petition

    def forget(self, petition_id: str) -> None:
        """Its next read comes from the database."""
        for ref in self._refs.pop(str(petition_id), ()):
            self._by_ref.pop(ref, None)

    async def _read(self, ref: str):
        if (parsed := petition_ref(ref)) is None:
            return None
        kind, value = parsed
        condition = (petitions.c.id if kind == "id" else petitions.c.slug) == value
        async with self.engine.connect() as conn:
            return (await conn.execute(select(petitions).where(condition))).first()
