"""Rows written in bulk: one ``COPY`` per batch on PostgreSQL, one ``executemany`` INSERT elsewhere.

The caller owns the transaction; these functions only move rows. A batch is a list of dicts
with the same keys (column names of ``table``).
"""
from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table, insert

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def copy_json(value: Any) -> str:
    """A JSON column's value in COPY text format (compact, no NaN)."""
    if value is None:
        return "\\N"
    return _JSON.encode(value).translate(_COPY_ESCAPES)


def _converters(table: Table, columns: Sequence[str]) -> list[Callable[[Any], str]]:
    return [copy_json if isinstance(table.c[c].type, JSON) else copy_text for c in columns]


def copy_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """PostgreSQL: the rows in one COPY inside the caller's transaction."""
    if not rows:
        return
    columns = list(rows[0])
    convert = list(zip(columns, _converters(table, columns), strict=True))
    buf = io.StringIO()
    write = buf.write
    for row in rows:
        write("\t".join([fn(row[c]) for c, fn in convert]))
        write("\n")
    buf.seek(0)
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.copy_expert(f'COPY "{table.name}" ({names}) FROM STDIN', buf, size=1 << 16)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The rows in one statement: COPY on PostgreSQL (several times faster), else an executemany INSERT."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        copy_rows(conn, table, rows)
    else:
        conn.execute(insert(table), list(rows))


__all__ = ["copy_json", "copy_rows", "copy_text", "insert_rows"]
