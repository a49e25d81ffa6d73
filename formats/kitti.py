"""KITTI tracking labels (``label_02/<sequence>.txt``), and KITTI object labels (``label_2/<frame>.txt``).

Tracking: one line per object and frame, space separated::

    frame track_id type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]

``frame`` is 0-based, the box is in pixels (``left top right bottom``), ``track_id`` is -1 for
``DontCare`` regions. The object layout has the same fields without ``frame`` and ``track_id``,
one file per image, the frame taken from the file's name (or ``frame_map``).

``occluded`` (0 visible .. 3 unknown) sets the record's ``occluded`` flag for 1 and 2;
``truncated``, ``occluded``, ``alpha`` and the 3D fields (``dimensions`` h w l, ``location``
x y z, ``rotation_y``) are kept as attributes and written back. ``DontCare`` regions are
not objects: they are skipped and counted in a warning unless ``label_map`` maps them.

Reading streams line by line; writing needs records ordered by frame.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

from .base import ReadContext, Reader, ReadOptions, fmt_num, frame_from_name, open_text_out, option
from .errors import STRUCTURE, TYPE, UNSUPPORTED, WRONG_FORMAT
from .mot import _looks_numeric as _is_num
from .records import Annotation, Detection, Kind, Record, VideoInfo

_NUMERIC = ("truncated", "occluded", "alpha", "left", "top", "right", "bottom", "h", "w", "l", "x", "y", "z",
            "rotation_y")
# What the KITTI devkit writes for a field it does not know.
_UNKNOWN = {"truncated": 0, "occluded": 3, "alpha": -10, "dimensions": (-1, -1, -1),
            "location": (-1000, -1000, -1000), "rotation_y": -10}


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open KITTI tracking (one sequence file) or object labels (a folder / zip of per-frame files)."""
    return Reader(_records, path, video=video, classes=classes, options=options)


def _files(ctx: ReadContext) -> tuple[list[str], bool]:
    """(label files, tracking layout?) of the source."""
    names = [n for n in ctx.source.names() if n.lower().endswith(".txt")]
    if not names and len(ctx.source.names()) == 1:  # one file, whatever its name
        names = ctx.source.names()
    tracking = [n for n in names if "label_02" in PurePosixPath(n).parts[:-1]]
    objects = [n for n in names if "label_2" in PurePosixPath(n).parts[:-1]]
    if tracking:
        names = tracking
    elif objects:
        return sorted(objects), False
    if len(names) > 1:
        want = ctx.options.video_id
        if want is not None:
            picked = [n for n in names if PurePosixPath(n).stem == str(want)]
            if picked:
                return picked, True
        # one file per frame (object layout) or several sequences?
        if not tracking and (ctx.options.frame_map or all(frame_from_name(n) is not None for n in names)):
            return sorted(names), False
        raise ctx.log.fatal(STRUCTURE, f"several sequences ({', '.join(sorted(names)[:5])}); choose one with "
                                       f"{option('source_video_id')} (the file's name without .txt)")
    if not names:
        raise ctx.log.fatal(WRONG_FORMAT, "no KITTI label .txt file found")
    return names, True


def _records(ctx: ReadContext) -> Iterator[Record]:
    files, tracking = _files(ctx)
    forced: Kind | None = ctx.options.kind
    vid = ctx.options.video_id
    dontcare: list[Any] = [0, None]
    for member in files:
        file_frame = None
        if not tracking:
            file_frame = _frame_of(ctx, member)
            if file_frame is None or not ctx.frame(file_frame, file=member):
                continue
        try:
            with ctx.source.open_text(member) as fp:
                for lineno, line in enumerate(fp, 1):
                    parts = line.split()
                    if not parts:
                        continue
                    yield from _line(ctx, parts, member, lineno, tracking, file_frame, forced, vid, dontcare)
        except UnicodeDecodeError as exc:
            raise ctx.log.fatal(WRONG_FORMAT, f"not a KITTI text file: {exc.reason}", file=member) from None
    if dontcare[0]:
        ctx.log.warning(UNSUPPORTED, f"{dontcare[0]} DontCare regions skipped: they mark areas to ignore, not "
                                     f"objects (map 'DontCare' with {option('label_map')} to import them)",
                        **dontcare[1])


def _frame_of(ctx: ReadContext, member: str) -> int | None:
    p = PurePosixPath(member)
    fmap = ctx.options.frame_map
    if fmap:
        for k in (member, p.name, p.stem):
            if k in fmap:
                return int(fmap[k])
    n = frame_from_name(p.name)
    if n is None:
        ctx.log.error(STRUCTURE, f"cannot tell which video frame {p.name!r} is: no number in the name; give "
                                 f"{option('frame_map')}", file=member)
    return n


def _line(ctx: ReadContext, parts: list[str], member: str, lineno: int, tracking: bool, file_frame: int | None,
          forced: Kind | None, vid: str | None, dontcare: list[Any]) -> Iterator[Record]:
    where = {"file": member, "line": lineno}
    head = 2 if tracking else 0
    # the type may hold spaces (other tools write "bicycle with space"): numbers are counted from the end
    tail = 15 if len(parts) - head >= 16 and _is_num(parts[-15]) else 14
    if len(parts) - head > tail + 1:
        parts = [*parts[:head], " ".join(parts[head:len(parts) - tail]), *parts[len(parts) - tail:]]
    n = len(parts) - head
    if n not in (15, 16):
        layout = "frame track_id type truncated occluded alpha left top right bottom h w l x y z rotation_y" \
            if tracking else "type truncated occluded alpha left top right bottom h w l x y z rotation_y"
        ctx.log.error(STRUCTURE, f"expected {15 + head} values ({layout}) or {16 + head} with a score, got "
                                 f"{len(parts)}", **where)
        return
    if tracking:
        try:
            frame, tid = int(parts[0]), int(parts[1])
        except ValueError:
            ctx.log.error(TYPE, "frame and track_id must be integers", **where, field="frame")
            return
        if not ctx.frame(frame, **where, field="frame"):
            return
    else:
        assert file_frame is not None
        frame, tid = file_frame, -1
    kind_name = parts[head]
    try:
        nums = dict(zip(_NUMERIC, (float(v) for v in parts[head + 1:head + 15]), strict=True))
        score = float(parts[head + 15]) if n == 16 else None
    except ValueError:
        ctx.log.error(TYPE, "truncated .. rotation_y and score must be numbers", **where, field="truncated")
        return
    if not all(math.isfinite(v) for v in nums.values()) or (score is not None and not math.isfinite(score)):
        ctx.log.error("non_finite", "a value is NaN or infinite", **where)
        return
    if kind_name == "DontCare" and "DontCare" not in ctx.options.label_map:
        dontcare[0] += 1
        dontcare[1] = dontcare[1] or where
        return
    label = ctx.label(kind_name, **where, field="type")
    box = (nums["left"], nums["top"], nums["right"], nums["bottom"])
    if label is None or not ctx.box(*box, **where, field="left,top,right,bottom"):
        return
    track = None if tid < 0 else tid
    if score is not None and forced != "annotations":
        yield Detection(frame, label, box, score, track, None, vid)
        return
    if forced == "results":
        ctx.log.error(STRUCTURE, "a result needs a score (the last value)", **where, field="score")
        return
    occ = nums["occluded"]
    attrs = {"truncated": _num(nums["truncated"]), "occluded": _num(occ), "alpha": nums["alpha"],
             "dimensions": [nums["h"], nums["w"], nums["l"]], "location": [nums["x"], nums["y"], nums["z"]],
             "rotation_y": nums["rotation_y"]}
    yield Annotation(frame, label, box, track, None, True, False, occ in (1, 2), 1.0, None, {"kitti": attrs}, vid)


def _num(v: float) -> int | float:
    return int(v) if v.is_integer() else v


# ----------------------------------------------------------------------------- writing


def write(dest: Any, records: Iterable[Record], *, video: VideoInfo, kind: Kind = "annotations") -> int:
    """One KITTI tracking sequence file; records ordered by frame. Results get the score column.

    Fields the records do not hold (the 3D ones, for boxes that did not come from KITTI) are
    written as the devkit's unknown values; an untracked box gets track id -1. Outside
    markers have no place in KITTI and are not written.
    """
    fp, close = open_text_out(dest)
    n = 0
    buf: list[str] = []
    try:
        for r in records:
            if isinstance(r, Annotation) and r.outside:
                continue
            k = r.attributes.get("kitti") if isinstance(r, Annotation) else None
            k = k if isinstance(k, dict) else {}
            occluded = k.get("occluded", 1 if getattr(r, "occluded", False) else 0)
            dims = k.get("dimensions", _UNKNOWN["dimensions"])
            loc = k.get("location", _UNKNOWN["location"])
            x1, y1, x2, y2 = r.box
            tid = -1 if r.track_id is None else r.track_id
            label = r.label.replace(" ", "_")
            fields = [str(r.frame_number), str(tid), label, fmt_num(k.get("truncated", _UNKNOWN["truncated"])),
                      fmt_num(occluded), fmt_num(k.get("alpha", _UNKNOWN["alpha"])), fmt_num(x1), fmt_num(y1),
                      fmt_num(x2), fmt_num(y2), *(fmt_num(v) for v in dims), *(fmt_num(v) for v in loc),
                      fmt_num(k.get("rotation_y", _UNKNOWN["rotation_y"]))]
            if kind == "results":
                fields.append(fmt_num(r.score if isinstance(r, Detection) else r.confidence))
            buf.append(" ".join(fields) + "\n")
            n += 1
            if len(buf) >= 4096:
                fp.write("".join(buf))
                buf.clear()
        fp.write("".join(buf))
        return n
    finally:
        if close:
            fp.close()


__all__ = ["read", "write"]
