"""Streaming JSON: walk a large document's top-level object and arrays one element at a time.

The standard library only parses whole documents, and a COCO file is one big object. Here the
outer structure (objects, arrays, separators) is walked by hand while each element (an image,
an annotation, a row) is decoded by the C scanner behind ``json.JSONDecoder.raw_decode`` from
a sliding text buffer. Memory is bounded by the largest single element (``max_value_chars``),
not by the file.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import IO, Any

#: Objects nested deeper than this are refused where this module walks them itself; the C decoder
#: refuses a value nesting past the interpreter's recursion limit, reported the same way.
MAX_DEPTH = 200
_NUMBER_TAIL = frozenset("0123456789.eE+-")
_WS_RE = re.compile(r"[ \t\r\n]*")


class JsonSyntaxError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"{message} (line {line})")
        self.line = line
        self.reason = message


class JsonStream:
    """Pull parser over a text stream; the caller consumes each value it is positioned on."""

    def __init__(self, fp: IO[str], chunk_chars: int = 1 << 20, max_value_chars: int = 64 << 20) -> None:
        self.fp = fp
        self.chunk = chunk_chars
        self.max_value = max_value_chars
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._lines_before = 1  # line number of buf[0]
        self.set_decoder(json.JSONDecoder(parse_constant=self._no_constant))

    def set_decoder(self, decoder: json.JSONDecoder) -> None:
        self._decoder = decoder
        self._scan = decoder.scan_once

    @staticmethod
    def _no_constant(name: str) -> Any:
        # NaN / Infinity are not JSON; keep them as floats so validation can point at them.
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]

    # --- buffer ---

    def _fill(self, want: int | None = None) -> bool:
        if self.eof:
            return False
        if self.pos:
            self._lines_before += self.buf.count("\n", 0, self.pos)
            self.buf = self.buf[self.pos:]
            self.pos = 0
        data = self.fp.read(max(want or 0, self.chunk))
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    @property
    def line(self) -> int:
        return self._lines_before + self.buf.count("\n", 0, self.pos)

    def _error(self, message: str) -> JsonSyntaxError:
        return JsonSyntaxError(message, self.line)

    def _skip_ws(self) -> str:
        """Skip whitespace; return the next character without consuming it ('' at the end)."""
        while True:
            pos = _WS_RE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            self.pos = pos
            if pos < len(self.buf):
                return self.buf[pos]
            if not self._fill():
                return ""

    def peek(self) -> str:
        return self._skip_ws()

    def _expect(self, ch: str) -> None:
        got = self._skip_ws()
        if got != ch:
            raise self._error(f"expected {ch!r}, found {got!r}" if got else f"expected {ch!r}, found end of input")
        self.pos += 1

    # --- values ---

    def value(self) -> Any:
        """Decode the complete value at the current position."""
        if not self._skip_ws():
            raise self._error("expected a value, found end of input")
        scan = self._scan
        while True:
            buf, pos = self.buf, self.pos
            try:
                obj, end = scan(buf, pos)
            except RecursionError:
                raise self._error("a value nests too deeply to decode") from None
            except StopIteration as stop:
                if not self.eof and stop.value >= len(buf) - 16:
                    self._grow()
                    continue
                raise self._error("expected a value") from None
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(buf) - 16 or exc.msg.startswith("Unterminated string")
                if self.eof or not near_end:
                    self.pos = min(exc.pos, len(buf))
                    raise self._error(exc.msg) from None
                self._grow()
                continue
            if not self.eof and (end >= len(buf) or (buf[end] in _NUMBER_TAIL and isinstance(obj, int | float))):
                # a number may continue in the next chunk ("0." decodes as 0 followed by ".")
                self._grow()
                continue
            self.pos = end
            return obj

    def values(self) -> Iterator[tuple[int, Any]]:
        """Each element of the array here, decoded: the fast path for long arrays of small objects.

        Same results as ``array()`` + ``value()``; decoding and separators are handled inline
        while the buffer holds whole elements, and the general code runs at buffer edges.
        """
        self._expect("[")
        if self._skip_ws() == "]":
            self.pos += 1
            return
        scan, ws = self._scan, _WS_RE.match
        i = 0
        while True:
            buf, pos = self.buf, self.pos
            try:
                obj, end = scan(buf, pos)
            except (StopIteration, json.JSONDecodeError, RecursionError):
                obj = self.value()  # at a buffer edge or an error: the general path grows or reports
            else:
                if end >= len(buf) - 1 or (type(obj) in (int, float) and buf[end] in _NUMBER_TAIL):
                    obj = self.value()  # may continue past the buffer: decode again with more text
                else:
                    self.pos = end
            yield i, obj
            i += 1
            buf = self.buf
            p = ws(buf, self.pos).end()
            if p + 1 < len(buf):
                ch = buf[p]
                if ch == ",":
                    self.pos = ws(buf, p + 1).end()
                    if self.pos < len(buf):
                        continue
                    if not self._skip_ws():
                        raise self._error("unexpected end of input in array")
                    continue
                if ch == "]":
                    self.pos = p + 1
                    return
                self.pos = p
                raise self._error(f"expected ',' or ']', found {ch!r}")
            self.pos = p
            ch = self._skip_ws()
            self.pos += 1
            if ch == "]":
                return
            if ch != ",":
                self.pos -= 1
                raise self._error(f"expected ',' or ']', found {ch!r}" if ch else "unexpected end of input in array")
            if not self._skip_ws():
                raise self._error("unexpected end of input in array")

    def _grow(self) -> None:
        pending = len(self.buf) - self.pos
        if pending > self.max_value:
            raise self._error(f"a single value is larger than {self.max_value} characters")
        self._fill(want=pending)  # geometric growth keeps retries linear

    def skip(self, _depth: int = 0) -> None:
        """Skip the value at the current position without keeping it."""
        if _depth >= MAX_DEPTH:
            raise self._error(f"a value nests deeper than {MAX_DEPTH} levels")
        ch = self._skip_ws()
        if ch == "[":
            for _ in self.values():
                pass
        elif ch == "{":
            for _ in self.object():
                self.skip(_depth + 1)
        else:
            self.value()

    def object(self) -> Iterator[str]:
        """Yield each key of the object here; the caller must consume the value before resuming."""
        self._expect("{")
        if self._skip_ws() == "}":
            self.pos += 1
            return
        while True:
            if self._skip_ws() != '"':
                raise self._error("expected a string key")
            key = self.value()
            self._expect(":")
            yield key
            ch = self._skip_ws()
            self.pos += 1
            if ch == "}":
                return
            if ch != ",":
                self.pos -= 1
                raise self._error(f"expected ',' or '}}', found {ch!r}" if ch else "unexpected end of input in object")

    def array(self) -> Iterator[int]:
        """Yield the index of each element; the caller must consume the element before resuming."""
        self._expect("[")
        if self._skip_ws() == "]":
            self.pos += 1
            return
        i = 0
        while True:
            yield i
            i += 1
            ch = self._skip_ws()
            self.pos += 1
            if ch == "]":
                return
            if ch != ",":
                self.pos -= 1
                raise self._error(f"expected ',' or ']', found {ch!r}" if ch else "unexpected end of input in array")

    def end(self) -> None:
        """Check nothing but whitespace follows the document."""
        ch = self._skip_ws()
        if ch:
            raise self._error(f"unexpected data after the end of the document: {ch!r}")


def pointer_token(key: str | int) -> str:
    """One JSON-pointer reference token (RFC 6901 escaping)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def pointer(*keys: str | int) -> str:
    return "".join("/" + pointer_token(k) for k in keys)


class JsonArrayWriter:
    """Writes ``[elem, elem, ...]`` incrementally; elements are pre-encoded strings or values."""

    def __init__(self, fp: IO[str], indent_items: bool = True) -> None:
        self.fp = fp
        self.first = True
        self.sep = ",\n" if indent_items else ","
        self._pending: list[str] = []
        fp.write("[")

    def add_encoded(self, text: str) -> None:
        if self.first:
            self.first = False
            self._pending.append("\n" if self.sep == ",\n" else "")
        else:
            self._pending.append(self.sep)
        self._pending.append(text)
        if len(self._pending) >= 8192:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.fp.write("".join(self._pending))
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.fp.write("\n]" if not self.first and self.sep == ",\n" else "]")
