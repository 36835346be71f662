"""The counter's database adapter: full-text search over the discovery list, the one thing it does
differently on SQLite (FTS5) and PostgreSQL (tsvector with a GIN index). Both index and query the
same normalised words (search_words), so a search finds the same petitions on either."""

import re
import unicodedata
from typing import Any

from sqlalchemy import Connection, text

from shared.store import PostgreSQL, SQLite, Store, store_of

WORD = re.compile(r"\w+")
MAX_WORDS = 12


def search_words(value: str) -> list[str]:
    """Lower case, accents taken off (bibliothèque finds bibliotheque and back), words only: what
    the index holds and what a query asks for, the same on both databases."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return WORD.findall(unicodedata.normalize("NFC", plain))


class CounterStore(Store):
    def index_text(self, conn: Connection, petition_id: str, body: str) -> None:
        """Make `body` the petition's searchable text (replacing what it had)."""
        raise NotImplementedError

    def matching(self, words: list[str]):
        """A SELECT of the petition ids whose text has every word (each also as the start of a word)."""
        raise NotImplementedError

    def clear_search(self, conn: Connection) -> None:
        conn.execute(text("DELETE FROM petition_search"))


def counter_store(bind: Any) -> CounterStore:
    return store_of(bind, CounterStore)  # type: ignore[return-value]


class CounterSQLite(CounterStore, SQLite):
    def index_text(self, conn, petition_id, body) -> None:
        conn.execute(text("DELETE FROM petition_search WHERE petition_id = :id"), {"id": petition_id})
        conn.execute(text("INSERT INTO petition_search (petition_id, body) VALUES (:id, :body)"),
                     {"id": petition_id, "body": " ".join(search_words(body))})

    def matching(self, words):
        query = " ".join(f'"{word}"*' for word in words[:MAX_WORDS])
        return text("SELECT petition_id FROM petition_search WHERE petition_search MATCH :query").bindparams(query=query)


class CounterPostgreSQL(CounterStore, PostgreSQL):
    def index_text(self, conn, petition_id, body) -> None:
        conn.execute(text("INSERT INTO petition_search (petition_id, body) VALUES (:id, to_tsvector('simple', :body)) "
                          "ON CONFLICT (petition_id) DO UPDATE SET body = excluded.body"),
                     {"id": petition_id, "body": " ".join(search_words(body))})

    def matching(self, words):
        query = " & ".join(f"{word}:*" for word in words[:MAX_WORDS])
        return text("SELECT petition_id FROM petition_search WHERE body @@ to_tsquery('simple', :query)"
                    ).bindparams(query=query)
