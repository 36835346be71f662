"""Many rows in one statement on SQLite: the rows travel as one JSON parameter (json_each).

Why: the group committer's thread runs while the event loop serves HTTP, and Python's sqlite3
releases the GIL around every step of a statement. An executemany of N rows, or the N rows a
RETURNING hands back, is N releases, and each time the thread waits to get the GIL back from the
busy loop (up to the 5 ms switch interval). Measured with a busy main thread, 32 rows a batch:
executemany 271 ms, one json_each statement 27 ms. On PostgreSQL a batch already goes in one round
trip through the driver, so these helpers are for SQLite only.

Values are written exactly as SQLAlchemy would bind them (each column type's bind processor), so
the rows read back the same whichever way they went in.
"""

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, LargeBinary, Table, text


def _dialect(conn):
    """A Connection's dialect, or a Session's (both can run these statements)."""
    return getattr(conn, "dialect", None) or conn.get_bind().dialect


def _column_expression(table: Table, name: str, index: int) -> str:
    value = f"json_extract(value, '$[{index}]')"
    if isinstance(table.c[name].type, LargeBinary):
        return f"CAST({value} AS BLOB)"  # bytes travel as UTF-8 text
    return value


def insert_json(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *,
                conflict: Sequence[str] | None = None) -> None:
    """INSERT these rows (every row with the same keys), ON CONFLICT (conflict) DO NOTHING if given."""
    if not rows:
        return
    names = list(rows[0])
    insert_records(conn, table, names, [[row[name] for name in names] for row in rows], conflict=conflict)


def insert_records(conn: Connection, table: Table, names: Sequence[str], records: Sequence[Sequence[Any]], *,
                   conflict: Sequence[str] | None = None) -> None:
    """insert_json for rows given as sequences of values, in the order of `names`."""
    if not records:
        return
    dialect = _dialect(conn)
    processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    if any(processors) or any(isinstance(table.c[n].type, LargeBinary) for n in names):
        values = []
        for record in records:
            encoded = []
            for value, process in zip(record, processors):
                value = process(value) if process else value
                encoded.append(bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray, memoryview))
                               else value)
            values.append(encoded)
    else:
        values = records  # plain text and numbers (a replay's rows): as they are
    statement = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT {', '.join(_column_expression(table, n, i) for i, n in enumerate(names))} "
        "FROM json_each(:rows) WHERE true"
    )
    if conflict:
        statement += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    conn.execute(text(statement), {"rows": json.dumps(values)})


def present(conn: Connection, table: Table, column: str, values: Sequence[str]) -> set[str]:
    """Which of these values the column holds (one row back, however many values)."""
    found = conn.execute(
        text(f"SELECT json_group_array({column}) FROM {table.name} "
             f"WHERE {column} IN (SELECT value FROM json_each(:values))"),
        {"values": json.dumps(list(values))},
    ).scalar_one()
    return set(json.loads(found))


def mark_json(conn: Connection, table: Table, column: str, values: Sequence[str], assignments: str) -> None:
    """UPDATE the rows whose column holds one of these values: SET assignments."""
    conn.execute(
        text(f"UPDATE {table.name} SET {assignments} WHERE {column} IN (SELECT value FROM json_each(:values))"),
        {"values": json.dumps(list(values))},
    )
