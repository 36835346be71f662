"""Signing's database adapter: its statements that differ between SQLite and PostgreSQL, each kind in
one class (the platform's differences are shared/store.py). Each runs inside the group committer's
transaction, on its thread (a sync Connection): the signing hot path."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, text, update

from shared.store import PostgreSQL, SQLite, Store, store_of


class SigningStore(Store):
    def add_hits(self, conn: Connection, table: Table, rows: list[dict]) -> dict[str, int]:
        """Add the rows' hits (key, hits, expires_at) to their rate windows; each window's total after."""
        raise NotImplementedError

    def add_mail(self, conn: Connection, table: Table, rows: list[dict]) -> dict[str, tuple[int, int]]:
        """Add the rows' emails (key, hour, hour_hits, day, day_hits) to their mailboxes' budgets;
        each mailbox's (hour, day) totals after."""
        raise NotImplementedError

    def resend(self, conn: Connection, table: Table, due: Any, now: datetime) -> list[tuple[str, str, str, int]]:
        """Count one more confirmation link for the signatures (`table`) that `due` selects: (id,
        petition id, mailbox key, links sent) of each."""
        raise NotImplementedError

    def confirm(self, conn: Connection, table: Table, statement: Any, pending: list[str]) -> set[str]:
        """Run `statement` (pending -> confirmed, for the `pending` ids of `table`): the ids it confirmed."""
        raise NotImplementedError


def signing_store(bind: Any) -> SigningStore:
    return store_of(bind, SigningStore)  # type: ignore[return-value]


class SigningSQLite(SigningStore, SQLite):
    """One statement each way, many rows as one JSON parameter (shared/bulk.py says why); one
    writer, so a read and the write after it see the same rows."""

    def add_hits(self, conn, table, rows):
        keys = [row["key"] for row in rows]
        conn.execute(text(
            f"INSERT INTO {table.name} (key, hits, expires_at) SELECT json_extract(value, '$[0]'), "
            "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(:rows) WHERE true "
            "ON CONFLICT (key) DO UPDATE SET hits = hits + excluded.hits"),
            {"rows": json.dumps([[r["key"], r["hits"], r["expires_at"]] for r in rows])})
        found = conn.execute(text(
            f"SELECT json_group_array(json_array(key, hits)) FROM {table.name} "
            "WHERE key IN (SELECT value FROM json_each(:keys))"), {"keys": json.dumps(keys)}).scalar_one()
        return dict(json.loads(found))

    def add_mail(self, conn, table, rows):
        keys = [row["key"] for row in rows]
        t = table.name
        conn.execute(text(
            f"INSERT INTO {t} (key, hour, hour_hits, day, day_hits) SELECT json_extract(value, '$[0]'), "
            ":hour, json_extract(value, '$[1]'), :day, json_extract(value, '$[1]') FROM json_each(:rows) "
            f"WHERE true ON CONFLICT (key) DO UPDATE SET "
            f"hour_hits = CASE WHEN {t}.hour = excluded.hour THEN {t}.hour_hits + excluded.hour_hits "
            "ELSE excluded.hour_hits END, "
            f"day_hits = CASE WHEN {t}.day = excluded.day THEN {t}.day_hits + excluded.day_hits "
            "ELSE excluded.day_hits END, hour = excluded.hour, day = excluded.day"),
            {"rows": json.dumps([[r["key"], r["hour_hits"]] for r in rows]), "hour": rows[0]["hour"],
             "day": rows[0]["day"]})
        found = conn.execute(text(
            f"SELECT json_group_array(json_array(key, hour_hits, day_hits)) FROM {t} "
            "WHERE key IN (SELECT value FROM json_each(:keys))"), {"keys": json.dumps(keys)}).scalar_one()
        return {key: (hour_hits, day_hits) for key, hour_hits, day_hits in json.loads(found)}

    def resend(self, conn, table, due, now):
        s = table
        rows = conn.execute(select(s.c.id, s.c.petition_id, s.c.mailbox_key, s.c.confirm_requests).where(due)).all()
        conn.execute(update(s).where(s.c.id.in_([r.id for r in rows])).values(
            confirm_requests=s.c.confirm_requests + 1, confirm_requested_at=now))
        return [(r.id, r.petition_id, r.mailbox_key, r.confirm_requests + 1) for r in rows]

    def confirm(self, conn, table, statement, pending):
        conn.execute(statement)  # every pending row read in this transaction is still pending
        return set(pending)


class SigningPostgreSQL(SigningStore, PostgreSQL):
    """Many writers: each claim is one statement that says what it changed (RETURNING); a batch
    goes as arrays (unnest), one statement, one round trip, no per-row binding in Python."""

    def add_hits(self, conn, table, rows):
        t = table.name
        return dict(conn.execute(text(
            f"INSERT INTO {t} (key, hits, expires_at) SELECT * FROM unnest(CAST(:keys AS text[]), "
            "CAST(:hits AS integer[]), CAST(:expires AS double precision[])) "
            f"ON CONFLICT (key) DO UPDATE SET hits = {t}.hits + excluded.hits RETURNING key, hits"),
            {"keys": [r["key"] for r in rows], "hits": [r["hits"] for r in rows],
             "expires": [r["expires_at"] for r in rows]}).all())

    def add_mail(self, conn, table, rows):
        t = table.name
        found = conn.execute(text(
            f"INSERT INTO {t} (key, hour, hour_hits, day, day_hits) "
            "SELECT k, :hour, n, :day, n FROM unnest(CAST(:keys AS text[]), CAST(:hits AS integer[])) AS b(k, n) "
            f"ON CONFLICT (key) DO UPDATE SET "
            f"hour_hits = CASE WHEN {t}.hour = excluded.hour THEN {t}.hour_hits + excluded.hour_hits "
            "ELSE excluded.hour_hits END, "
            f"day_hits = CASE WHEN {t}.day = excluded.day THEN {t}.day_hits + excluded.day_hits "
            "ELSE excluded.day_hits END, hour = excluded.hour, day = excluded.day "
            "RETURNING key, hour_hits, day_hits"),
            {"keys": [r["key"] for r in rows], "hits": [r["hour_hits"] for r in rows], "hour": rows[0]["hour"],
             "day": rows[0]["day"]})
        return {key: (hour_hits, day_hits) for key, hour_hits, day_hits in found.all()}

    def resend(self, conn, table, due, now):
        s = table
        return [tuple(row) for row in conn.execute(
            update(s).where(due).values(confirm_requests=s.c.confirm_requests + 1, confirm_requested_at=now)
            .returning(s.c.id, s.c.petition_id, s.c.mailbox_key, s.c.confirm_requests)
        ).all()]

    def confirm(self, conn, table, statement, pending):
        # another replica may have confirmed some meanwhile
        return set(conn.execute(statement.returning(table.c.id)).scalars().all())
