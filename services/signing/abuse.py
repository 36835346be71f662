"""Abuse held back silently: which client a request comes from, how often it has signed a
petition, and whether its mailbox is a throwaway one.

An abuser is answered exactly like anyone else (the same 202); their signatures are *held*: no
email, not counted, visible to moderators, who can release them (services/signing/moderation.py).

- The client is the peer address, or the one a trusted proxy (GROUNDSWELL_TRUSTED_PROXIES: the
  front door; by default only on the Unix socket) put in `X-Forwarded-For`. It is kept only as a keyed hash (BLAKE2b keyed
  from GROUNDSWELL_MAILBOX_KEY: about a microsecond, where Pytition's bcrypt costs most of a CPU),
  and only for GROUNDSWELL_CLIENT_KEY_RETENTION_DAYS.
- GROUNDSWELL_SIGN_RATE_LIMIT is written in the `limits` library's notation ("5/minute;30/hour")
  and counted in fixed windows in the signing database, in the same transaction as the
  signatures (the group commit), so every replica sees the same counts and a burst costs one
  upsert per client and window, not one per signature.
- Throwaway domains come from the `disposable-email-domains` package's list.
"""

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from disposable_email_domains import blocklist
from limits import RateLimitItem, parse_many
import structlog
from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table

from services.signing.store import signing_store


log = structlog.get_logger("abuse")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNIX = "unix"  # a peer on a Unix socket: the front door on the same host


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class Trusted:
    """GROUNDSWELL_TRUSTED_PROXIES, parsed."""

    unix: bool  # a peer on the Unix socket
    networks: tuple[Network, ...]
    hostnames: tuple[str, ...]  # resolved now and again (compose: the front door's service name)


def parse_networks(setting: str) -> Trusted:
    """GROUNDSWELL_TRUSTED_PROXIES: comma-separated addresses, networks or host names, and `unix`
    for a Unix socket peer; raises ValueError naming a bad entry."""
    unix, networks, hostnames = False, [], []
    for entry in (part.strip() for part in setting.split(",")):
        if not entry:
            continue
        if entry == UNIX:
            unix = True
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if not _HOSTNAME.match(entry) or entry.replace(".", "").isdigit():
                raise ValueError(f"'{entry}' is not an address, a network, a host name or 'unix'") from None
            hostnames.append(entry.lower())
    return Trusted(unix, tuple(networks), tuple(hostnames))


class ClientAddresses:
    """Who a request comes from: the peer, unless it is a trusted proxy, in which case the
    right-most address in X-Forwarded-For that is not itself a trusted proxy. Host names are
    trusted at the addresses they resolve to (`refresh`), so compose can name its front door
    (`web`) instead of trusting a whole private range."""

    REFRESH_S = 30.0

    def __init__(self, trusted: str) -> None:
        parsed = parse_networks(trusted)
        self.unix, self.networks, self.hostnames = parsed.unix, parsed.networks, parsed.hostnames
        self.resolved: frozenset[str] = frozenset()
        self._trusted = functools.lru_cache(maxsize=1024)(self._is_trusted)  # the same few proxies ask

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks) or ip.compressed in self.resolved

    async def refresh(self) -> bool:
        """Resolve the trusted host names again (a name that does not resolve keeps its addresses);
        whether every name resolved."""
        if not self.hostnames:
            return True
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        resolved_all = True
        for hostname in self.hostnames:
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(hostname, None, type=socket.SOCK_STREAM), 5.0)
            except (OSError, TimeoutError) as exc:
                log.info("trusted_proxy_unresolved", hostname=hostname, error=str(exc) or type(exc).__name__)
                found |= {a for a in self.resolved}  # keep what it had
                resolved_all = False
                continue
            found |= {ipaddress.ip_address(info[4][0]).compressed for info in infos}
        if found != self.resolved:
            self.resolved = frozenset(found)
            self._trusted.cache_clear()
            log.info("trusted_proxies_resolved", addresses=sorted(found))
        return resolved_all

    async def keep_resolved(self) -> None:
        """Forever: resolve the host names every REFRESH_S (a recreated container has a new
        address), and every second while one does not resolve yet (compose starts the front door
        after signing, so at first its name is unknown)."""
        while self.hostnames:
            await asyncio.sleep(self.REFRESH_S if await self.refresh() else 1.0)

    def of(self, peer: tuple[str, int] | None, forwarded_for: bytes | None) -> str:
        host = peer[0] if peer else ""
        trusted = self.unix if not host else self._trusted(host)
        if not trusted or not forwarded_for:
            return host or UNIX
        hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop[:64]
        return hops[0][:64] if hops else host or UNIX


@functools.lru_cache(maxsize=4)
def _client_hash_key(secret: bytes) -> bytes:
    """The BLAKE2b key, derived from the mailbox secret (one setting fewer to keep safe)."""
    return hmac.new(secret, b"groundswell client address", hashlib.sha256).digest()


def client_key(secret: bytes, address: str) -> str:
    """A keyed hash of the client address: the same address gives the same key, and without
    the secret the key names no one (16 bytes of BLAKE2b, hex; about a microsecond)."""
    return hashlib.blake2b(address.encode(), key=_client_hash_key(secret), digest_size=16).hexdigest()


def is_disposable(email: str) -> bool:
    """The address's domain, or a domain it is under, is on the throwaway list."""
    domain = email.rpartition("@")[2].strip().lower()
    parts = domain.split(".")
    return any(".".join(parts[i:]) in blocklist for i in range(len(parts) - 1))


def rate_windows_table(metadata: MetaData) -> Table:
    return Table(
        "rate_windows",
        metadata,
        Column("key", String(200), primary_key=True),  # limits' key for (client key, petition), and the window
        Column("hits", Integer, nullable=False),
        Column("expires_at", Float, nullable=False, index=True),  # unix time; purged after
    )


@dataclass(frozen=True)
class Hit:
    """One signature attempt to count against the limits."""

    client_key: str
    petition_id: str


class RateLimits:
    """Hits per (key, scope) in fixed windows, counted in the database every replica shares: the
    signature rate limit (per client address per petition), the start limit and the mailbox email
    budget. A batch's hits cost two statements per limit, however many keys it holds."""

    def __init__(self, notation: str, table: Table, database: Any, clock=time.time) -> None:
        self.items: list[RateLimitItem] = parse_many(notation) if notation.strip() else []
        self.table = table
        self.clock = clock
        self.store = signing_store(database)

    def over(self, conn: Connection, hits: Sequence[Hit | None]) -> list[bool]:
        """Count these attempts (in order) and say which go over a limit. None is not counted."""
        over = [False] * len(hits)
        if not self.items:
            return over
        groups: dict[tuple[str, str], list[int]] = {}
        for index, hit in enumerate(hits):
            if hit is not None:
                groups.setdefault((hit.client_key, hit.petition_id), []).append(index)
        if not groups:
            return over
        now = self.clock()
        for item in self.items:
            window = int(now // item.get_expiry())
            expires_at = (window + 1) * item.get_expiry()
            rows = [{"key": f"{item.key_for(key, scope)}/{window}", "hits": len(indexes), "expires_at": expires_at}
                    for (key, scope), indexes in sorted(groups.items())]  # one lock order across replicas
            totals = self._add(conn, rows)
            for row, indexes in zip(rows, (indexes for _, indexes in sorted(groups.items()))):
                first = totals[row["key"]] - len(indexes) + 1  # the hit number of the first of these
                for offset, index in enumerate(indexes):
                    if first + offset > item.amount:
                        over[index] = True
        return over

    def _add(self, conn: Connection, rows: list[dict]) -> dict[str, int]:
        """Add the rows' hits to their windows; each window's total after."""
        return self.store.add_hits(conn, self.table, rows)


def mail_budget_table(metadata: MetaData) -> Table:
    return Table(
        "mail_budget",
        metadata,
        # 16 hex digits of the mailbox's keyed hash: short, so the one row a new mailbox costs is
        # small (two mailboxes sharing a prefix would share a budget: one in 2^64)
        Column("key", String(16), primary_key=True),
        Column("hour", Integer, nullable=False),  # hours since 1970 of the hour counted in hour_hits
        Column("hour_hits", Integer, nullable=False),
        Column("day", Integer, nullable=False),  # days since 1970; purged after (a scan: no index to keep up)
        Column("day_hits", Integer, nullable=False),
        sqlite_with_rowid=False,  # the row lives in its key's B-tree: one write for a new mailbox, not two
    )


class MailBudget:
    """GROUNDSWELL_MAILBOX_EMAILS_PER_HOUR and _PER_DAY: the emails that anyone could have sent to a
    mailbox by typing its address, counted in the signing database every replica shares. One row
    per mailbox holds its current hour's and day's counts; a batch's mailboxes cost two statements
    (an upsert and a read), and a new mailbox one small row: this is on the signing hot path."""

    def __init__(self, per_hour: int, per_day: int, table: Table, database: Any, clock=time.time) -> None:
        self.per_hour, self.per_day = per_hour, per_day
        self.table = table
        self.store = signing_store(database)
        self.clock = clock

    @staticmethod
    def key_of(mailbox_key: str) -> str:
        return mailbox_key.removeprefix("k1:")[:16]

    def over(self, conn: Connection, mailboxes: Sequence[str | None]) -> list[bool]:
        """Count one email to each of these mailboxes (in order; None counts nothing) and say which
        would go over the budget."""
        over = [False] * len(mailboxes)
        if self.per_hour <= 0 and self.per_day <= 0:
            return over
        groups: dict[str, list[int]] = {}
        for index, mailbox in enumerate(mailboxes):
            if mailbox is not None:
                groups.setdefault(self.key_of(mailbox), []).append(index)
        if not groups:
            return over
        now = self.clock()
        hour, day = int(now // 3600), int(now // 86400)
        rows = [{"key": key, "hour": hour, "hour_hits": len(groups[key]), "day": day, "day_hits": len(groups[key])}
                for key in sorted(groups)]  # one lock order across replicas
        totals = self._add(conn, rows)
        for key, indexes in groups.items():
            hour_total, day_total = totals[key]
            for offset, index in enumerate(indexes):
                number = offset - len(indexes) + 1  # this hit's number, counted back from the totals
                over[index] = (0 < self.per_hour < hour_total + number) or (0 < self.per_day < day_total + number)
        return over

    def _add(self, conn: Connection, rows: list[dict]) -> dict[str, tuple[int, int]]:
        return self.store.add_mail(conn, self.table, rows)
