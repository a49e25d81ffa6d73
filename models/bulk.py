"""Rows written in bulk: one ``COPY`` per batch on PostgreSQL, one ``executemany`` INSERT elsewhere.

The caller owns the transaction; these functions only move rows. A batch is a list of dicts
with the same keys (column names of ``table``).
"""
from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Float, Integer, String, Table, Text, Uuid, insert

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
# The C encoder behind _JSON.encode, made once rather than on every call (what encode does for
# anything but a plain string); None where the interpreter has no C accelerator.
_C_ENCODE = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    {}, _JSON.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)


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
    if value == {}:
        return "{}"
    if _C_ENCODE is None or isinstance(value, str):
        return _JSON.encode(value).translate(_COPY_ESCAPES)
    return "".join(_C_ENCODE(value, 0)).translate(_COPY_ESCAPES)


def _column_text(column: Any, values: list[Any]) -> list[str]:
    """One column of a batch in COPY text format, converted column-wise (what :func:`copy_text`
    and :func:`copy_json` give, value by value)."""
    kind = column.type
    first = values[0]
    if all(v is first for v in values):  # the same value on every row (the parent's id, the time)
        return [copy_json(first) if isinstance(kind, JSON) else copy_text(first)] * len(values)
    if isinstance(kind, JSON):
        return [copy_json(v) for v in values]
    if None not in values:
        if isinstance(kind, Float) and all(type(v) is float for v in values):
            return list(map(float.__repr__, values))
        if isinstance(kind, Integer) and all(type(v) is int for v in values):
            return list(map(int.__repr__, values))
        if isinstance(kind, Uuid) and all(type(v) is uuid.UUID for v in values):
            return [f"{v.int:032x}" for v in values]  # PostgreSQL reads a uuid without its hyphens too
    if isinstance(kind, String | Text) or hasattr(values[0], "isoformat"):  # few distinct values per batch
        try:
            texts = {v: copy_text(v) for v in set(values)}
        except TypeError:  # an unhashable value: the database refuses it below
            return [copy_text(v) for v in values]
        return [texts[v] for v in values]
    return [copy_text(v) for v in values]


def copy_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """PostgreSQL: the rows in one COPY inside the caller's transaction."""
    if not rows:
        return
    columns = list(rows[0])
    texts = [_column_text(table.c[c], [row[c] for row in rows]) for c in columns]
    buf = io.StringIO()
    buf.write("\n".join(map("\t".join, zip(*texts, strict=True))))
    buf.write("\n")
    buf.seek(0)
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.copy_expert(f'COPY "{table.name}" ({names}) FROM STDIN', buf, size=1 << 20)


class OrderedIds:
    """New primary keys in increasing order, laid out as UUID version 7 (the time in milliseconds
    when the sequence starts, a 34-bit counter, 40 random bits): rows written together land next
    to each other in the primary key's index rather than on random pages, which keeps a large
    import's index writes in memory."""

    __slots__ = ("base", "count")

    def __init__(self) -> None:
        ms = time.time_ns() // 1_000_000 & (1 << 48) - 1
        self.base = ms << 80 | 0x7 << 76 | 0b10 << 62 | int.from_bytes(os.urandom(5), "big")
        self.count = 0

    def __call__(self) -> uuid.UUID:
        c = self.count
        self.count = c + 1
        return uuid.UUID(int=self.base | (c >> 22 & 0xFFF) << 64 | (c & 0x3FFFFF) << 40)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The rows in one statement: COPY on PostgreSQL (several times faster), else an executemany INSERT."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        copy_rows(conn, table, rows)
    else:
        conn.execute(insert(table), list(rows))


__all__ = ["OrderedIds", "copy_json", "copy_rows", "copy_text", "insert_rows"]
