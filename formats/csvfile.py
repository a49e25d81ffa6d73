"""CSV: one row per annotation (or per detection for results), with a header, RFC 4180 quoting.

Coordinates are the records' own ``x1, y1, x2, y2`` written with full precision, so a CSV
round trip is exact. ``attributes`` is a JSON object in one cell.

Text cells (``video_id``, ``label``, ``attributes``) that a spreadsheet would take for a formula
(they start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) are written with a
leading single quote, as OWASP advises against CSV injection; the reader removes it, so the
platform reads its own files back exactly. Number cells are never quoted that way.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from math import isfinite
from typing import IO, Any

from .base import ReadContext, Reader, ReadOptions, open_text_out, option
from .errors import NON_FINITE, STRUCTURE, TYPE, WRONG_FORMAT
from .records import Annotation, Detection, Kind, Record, VideoInfo

ANNOTATION_COLUMNS = ("video_id", "frame_number", "timestamp", "track_id", "label", "x1", "y1", "x2", "y2",
                      "confidence", "keyframe", "outside", "occluded", "visibility", "attributes")
RESULT_COLUMNS = ("video_id", "frame_number", "timestamp", "track_id", "label", "x1", "y1", "x2", "y2", "score")
_REQUIRED = ("frame_number", "label", "x1", "y1", "x2", "y2")
_TRUE = {"1", "true", "True", "TRUE", "yes"}
_FALSE = {"0", "false", "False", "FALSE", "no", ""}


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a CSV file (or a zip holding one) for import."""
    return Reader(_records, path, video=video, classes=classes, options=options)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _quoted_formula(text: str) -> bool:
    return text.startswith("'") and text.lstrip("'").startswith(FORMULA_START)


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not run: a single quote before a formula's first character
    (and before a text that already looks neutralised, so that ``restore`` gives it back as it was)."""
    return "'" + text if text.startswith(FORMULA_START) or _quoted_formula(text) else text


def restore(text: str) -> str:
    """The text ``neutralise`` was given (a file of this platform, or of anyone following OWASP)."""
    return text[1:] if _quoted_formula(text) else text


def _repr(v: float) -> str:
    if not isfinite(v):
        raise ValueError(f"cannot write {v!r}: numbers must be finite")
    return repr(float(v))


def write(dest: str | IO[str] | Any, records: Iterable[Record], *, kind: Kind = "annotations") -> int:
    """Write CSV rows (CRLF line ends, minimal quoting as RFC 4180 allows); returns the count."""
    fp, close = open_text_out(dest)
    try:
        w = csv.writer(fp, lineterminator="\r\n")
        results = kind == "results"
        w.writerow(RESULT_COLUMNS if results else ANNOTATION_COLUMNS)
        n = 0
        rows: list[list[Any]] = []
        for r in records:
            x1, y1, x2, y2 = r.box
            head = ["" if r.video_id is None else neutralise(str(r.video_id)), r.frame_number,
                    "" if r.timestamp is None else _repr(r.timestamp), "" if r.track_id is None else r.track_id,
                    neutralise(r.label), _repr(x1), _repr(y1), _repr(x2), _repr(y2)]
            if results:
                head.append(_repr(r.score if isinstance(r, Detection) else r.confidence))
            else:
                if not isinstance(r, Annotation):
                    raise TypeError("annotation rows need Annotation records; use kind='results' for detections")
                head += [_repr(r.confidence), int(r.keyframe), int(r.outside), int(r.occluded),
                         "" if r.visibility is None else _repr(r.visibility),
                         json.dumps(r.attributes, separators=(",", ":"), allow_nan=False) if r.attributes else ""]
            rows.append(head)
            n += 1
            if len(rows) >= 4096:
                w.writerows(rows)
                rows.clear()
        w.writerows(rows)
        return n
    finally:
        if close:
            fp.close()


def _records(ctx: ReadContext) -> Iterator[Record]:
    names = [n for n in ctx.source.names() if n.lower().endswith(".csv")] or ctx.source.names()
    if len(names) != 1:
        raise ctx.log.fatal(WRONG_FORMAT, f"expected one CSV file, found {len(names)}")
    member = names[0]
    try:
        with ctx.source.open_text(member) as fp:
            yield from _rows(ctx, member, fp)
    except UnicodeDecodeError as exc:
        raise ctx.log.fatal(WRONG_FORMAT, f"not UTF-8 text: {exc.reason}", file=member) from None
    except csv.Error as exc:
        raise ctx.log.fatal(STRUCTURE, f"malformed CSV: {exc}", file=member) from None


def _rows(ctx: ReadContext, member: str, fp: IO[str]) -> Iterator[Record]:
    reader = csv.reader(fp)
    header = next(reader, None)
    if not header:
        raise ctx.log.fatal(WRONG_FORMAT, "empty file: a header row is expected", file=member, line=1)
    header = [h.strip() for h in header]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ctx.log.fatal(WRONG_FORMAT, f"header lacks {', '.join(missing)} (found {', '.join(header)[:200]})",
                            file=member, line=1)
    forced = ctx.options.kind
    results = forced == "results" or (forced is None and "score" in header)
    if results and "score" not in header:
        raise ctx.log.fatal(STRUCTURE, "results need a score column", file=member, line=1)
    known = set(RESULT_COLUMNS if results else ANNOTATION_COLUMNS)
    extra = [h for h in header if h not in known]
    if extra:
        ctx.log.warning(STRUCTURE, f"columns ignored: {', '.join(extra)}", file=member, line=1)
    col = {h: i for i, h in enumerate(header)}
    want_video = ctx.options.video_id
    videos: set[str] = set()
    width = len(header)

    frame_col = col["frame_number"]
    num_cols = [(name, col.get(name)) for name in ("x1", "y1", "x2", "y2", "timestamp", "confidence", "visibility",
                                                    "score")]

    def get(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i].strip() if i is not None else ""

    def text_cell(row: list[str], name: str) -> str:
        """A text cell, with the quote that neutralised a formula removed (and then kept as it was)."""
        i = col.get(name)
        if i is None:
            return ""
        restored = restore(row[i])
        return restored if restored != row[i] else restored.strip()

    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        where = {"file": member, "line": line}
        if len(row) != width:
            ctx.log.error(STRUCTURE, f"expected {width} fields, got {len(row)}", **where)
            continue
        vid = text_cell(row, "video_id") or None
        if want_video is not None and vid is not None and vid != want_video:
            continue
        if want_video is None and vid is not None and vid not in videos:
            videos.add(vid)
            if len(videos) == 2:
                ctx.log.refuse(STRUCTURE, "the file holds rows of several videos; choose one with "
                               f"{option('source_video_id')}", **where,
                               field="video_id")
        try:
            frame = int(row[frame_col])
        except ValueError:
            ctx.log.error(TYPE, f"frame_number must be an integer, got {row[frame_col]!r}", **where,
                          field="frame_number")
            continue
        nums: dict[str, float | None] = {}
        bad = False
        for name, i in num_cols:
            if i is None:
                nums[name] = None
                continue
            try:
                v = float(row[i])
            except ValueError:
                text = row[i].strip()
                if text:
                    ctx.log.error(TYPE, f"{name} must be a number, got {text!r}", **where, field=name)
                elif name in _REQUIRED or (name == "score" and results):
                    ctx.log.error(STRUCTURE, f"{name} is empty", **where, field=name)
                else:
                    nums[name] = None
                    continue
                bad = True
                break
            if not isfinite(v):
                ctx.log.error(NON_FINITE, f"{name} is {v!r}, not a finite number", **where, field=name)
                bad = True
                break
            nums[name] = v
        if bad:
            continue
        track_text = get(row, "track_id")
        try:
            track = int(track_text) if track_text else None
        except ValueError:
            ctx.log.error(TYPE, f"track_id must be an integer, got {track_text!r}", **where, field="track_id")
            continue
        if not ctx.frame(frame, **where, field="frame_number"):
            continue
        box = (nums["x1"], nums["y1"], nums["x2"], nums["y2"])
        if not ctx.box(*box, **where, field="x1,y1,x2,y2"):  # type: ignore[arg-type]
            continue
        label = ctx.label(text_cell(row, "label"), **where, field="label")
        if label is None:
            continue
        if results:
            if not ctx.result_values(nums["score"], track, **where):
                continue
            yield Detection(frame, label, box, nums["score"], track, nums["timestamp"], vid)  # type: ignore[arg-type]
            continue
        flags: dict[str, bool] = {}
        for name, default in (("keyframe", True), ("outside", False), ("occluded", False)):
            text = get(row, name)
            if name not in col or (not text and name == "keyframe"):
                flags[name] = default
            elif text in _TRUE:
                flags[name] = True
            elif text in _FALSE:
                flags[name] = False
            else:
                ctx.log.error(TYPE, f"{name} must be 0/1 or true/false, got {text!r}", **where, field=name)
                bad = True
        attrs_text = get(row, "attributes")
        attrs: dict[str, Any] = {}
        if attrs_text:
            try:
                attrs = json.loads(attrs_text)
            except ValueError:
                attrs = None  # type: ignore[assignment]
            if not isinstance(attrs, dict):
                ctx.log.error(TYPE, "attributes must be a JSON object", **where, field="attributes")
                bad = True
        if bad:
            continue
        conf = nums["confidence"]
        yield Annotation(frame, label, box, track, nums["timestamp"], flags["keyframe"], flags["outside"],  # type: ignore[arg-type]
                         flags["occluded"], 1.0 if conf is None else conf, nums["visibility"], attrs, vid)
