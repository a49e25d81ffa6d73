"""The platform's own lossless JSON document, written and read one row at a time.

Envelope::

    {"format": "vru-platform", "version": 1,
     "meta": {...},
     "sections": {"projects": [row, ...], "videos": [row, ...], "annotations": [row, ...], ...}}

A section is a named list of rows (JSON objects, nested as deep as needed). ``format`` comes
first so that wrong content is refused before anything else is read. Values JSON cannot hold
travel as one-key tagged objects so that they come back with their type: ``{"$datetime":
iso}``, ``{"$date": iso}``, ``{"$uuid": str}``, ``{"$decimal": str}``, ``{"$bytes": base64}``;
NaN and infinities are refused. Rows are the caller's (the schema of each section belongs to
the code that produces and consumes it); this module guarantees the structure and the types.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .base import ReadContext, Reader, ReadOptions, open_text_out
from .errors import STRUCTURE, TYPE, WRONG_FORMAT
from .jsonstream import JsonArrayWriter, JsonStream, JsonSyntaxError, pointer

FORMAT_NAME = "vru-platform"
VERSION = 1


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a section, with its JSON pointer for error messages."""

    section: str
    index: int
    data: dict[str, Any]

    @property
    def pointer(self) -> str:
        return pointer("sections", self.section, self.index)


def _default(o: Any) -> Any:
    if isinstance(o, dt.datetime):
        return {"$datetime": o.isoformat()}
    if isinstance(o, dt.date):
        return {"$date": o.isoformat()}
    if isinstance(o, uuid.UUID):
        return {"$uuid": str(o)}
    if isinstance(o, decimal.Decimal):
        return {"$decimal": str(o)}
    if isinstance(o, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(o)).decode("ascii")}
    if isinstance(o, set | frozenset):
        raise TypeError("sets have no order; give a list")
    raise TypeError(f"cannot write a {type(o).__name__} value")


_DECODERS = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$uuid": uuid.UUID,
    "$decimal": decimal.Decimal,
    "$bytes": lambda s: base64.b64decode(s.encode("ascii"), validate=True),
}


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        (k, v), = obj.items()
        dec = _DECODERS.get(k)
        if dec is not None and isinstance(v, str):
            try:
                return dec(v)
            except (ValueError, decimal.InvalidOperation):
                raise ValueError(f"{k} value {v!r} is not valid") from None
    return obj


_encoder = json.JSONEncoder(default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def encode(value: Any) -> str:
    """One value in the document's JSON (tagged types, no NaN)."""
    return _encoder.encode(value)


def write_document(dest: str | IO[str] | Any, sections: Iterable[tuple[str, Iterable[Mapping[str, Any]]]], *,
                   meta: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Stream a document; ``sections`` yields ``(name, rows)`` pairs and each ``rows`` is consumed lazily.

    Returns the row count per section. A section name given twice is an error (readers would
    have to merge them).
    """
    fp, close = open_text_out(dest)
    counts: dict[str, int] = {}
    try:
        fp.write(f'{{"format":"{FORMAT_NAME}","version":{VERSION},"meta":{encode(dict(meta or {}))},"sections":{{')
        first = True
        for name, rows in sections:
            if not isinstance(name, str) or not name:
                raise ValueError("a section needs a non-empty name")
            if name in counts:
                raise ValueError(f"section {name!r} given twice")
            fp.write(("" if first else ",\n") + encode(name) + ":")
            first = False
            out = JsonArrayWriter(fp)
            n = 0
            for row in rows:
                if not isinstance(row, Mapping):
                    raise TypeError(f"rows are mappings; section {name!r} row {n} is a {type(row).__name__}")
                out.add_encoded(encode(dict(row)))
                n += 1
            out.close()
            counts[name] = n
        fp.write("}}\n")
        return counts
    finally:
        if close:
            fp.close()


class DocumentReader(Reader):
    """Iterate :class:`Row` objects; ``meta`` and ``version`` are set once the header is read."""

    meta: dict[str, Any]
    version: int | None

    def __init__(self, path: Any, options: ReadOptions | None = None) -> None:
        super().__init__(self._rows, path, options=options)
        self.meta = {}
        self.version = None

    def _rows(self, ctx: ReadContext) -> Iterator[Row]:  # type: ignore[override]
        names = [n for n in ctx.source.names() if n.lower().endswith(".json")] or ctx.source.names()
        if len(names) != 1:
            raise ctx.log.fatal(WRONG_FORMAT, f"expected one JSON document, found {len(names)} files")
        member = names[0]
        with ctx.source.open_text(member) as fp:
            js = JsonStream(fp)
            js.set_decoder(json.JSONDecoder(object_hook=_hook, parse_constant=js._no_constant))
            try:
                yield from self._walk(ctx, member, js)
            except UnicodeDecodeError as exc:
                raise ctx.log.fatal(WRONG_FORMAT, f"not UTF-8 text: {exc.reason}", file=member) from None
            except JsonSyntaxError as exc:
                code = WRONG_FORMAT if self.version is None else STRUCTURE
                raise ctx.log.fatal(code, f"invalid JSON: {exc.reason}", file=member, line=exc.line) from None
            except ValueError as exc:  # a tagged value that does not decode
                raise ctx.log.fatal(TYPE, str(exc), file=member, line=js.line) from None

    def _walk(self, ctx: ReadContext, member: str, js: JsonStream) -> Iterator[Row]:
        if js.peek() != "{":
            raise ctx.log.fatal(WRONG_FORMAT, f"not a {FORMAT_NAME} document: it does not start with an object",
                                file=member, pointer="")
        seen: set[str] = set()
        for key in js.object():
            if not seen and key != "format":
                raise ctx.log.fatal(WRONG_FORMAT, f"not a {FORMAT_NAME} document: the first key is {key!r}, "
                                                  "not 'format'", file=member, pointer="")
            seen.add(key)
            if key == "format":
                value = js.value()
                if value != FORMAT_NAME:
                    raise ctx.log.fatal(WRONG_FORMAT, f"format is {value!r}, not {FORMAT_NAME!r}", file=member,
                                        pointer="/format")
            elif key == "version":
                value = js.value()
                if type(value) is not int or value != VERSION:
                    raise ctx.log.fatal(STRUCTURE, f"version {value!r} is not supported (this reader reads {VERSION})",
                                        file=member, pointer="/version")
                self.version = value
            elif key == "meta":
                value = js.value()
                if not isinstance(value, dict):
                    ctx.log.error(TYPE, "meta must be an object", file=member, pointer="/meta")
                else:
                    self.meta = value
            elif key == "sections":
                if self.version is None:
                    raise ctx.log.fatal(STRUCTURE, "version must come before sections", file=member,
                                        pointer="/version")
                if js.peek() != "{":
                    raise ctx.log.fatal(TYPE, "sections must be an object", file=member, pointer="/sections")
                for name in js.object():
                    if js.peek() != "[":
                        ctx.log.error(TYPE, "a section must be a list of rows", file=member,
                                      pointer=pointer("sections", name))
                        js.skip()
                        continue
                    for i, data in js.values():
                        if not isinstance(data, dict):
                            ctx.log.error(TYPE, "a row must be an object", file=member,
                                          pointer=pointer("sections", name, i))
                            continue
                        yield Row(name, i, data)
            else:
                ctx.log.warning(STRUCTURE, f"unknown key {key!r} ignored", file=member, pointer=pointer(key))
                js.skip()
        js.end()
        if "sections" not in seen:
            ctx.log.error(STRUCTURE, "no sections", file=member, pointer="")


def read_document(path: Any, options: ReadOptions | None = None) -> DocumentReader:
    """Open a platform document for import (iterate it for :class:`Row` objects)."""
    return DocumentReader(path, options)
