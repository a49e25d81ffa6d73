"""MOTChallenge: ``gt.txt`` lines ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based frames.

Class numbers index ``labels.txt`` (1-based, one name a line, as datumaro writes it) when the
sequence has one, else the MOT17 class list. ``seqinfo.ini`` declares the frame size and
length, which must fit the target video. Results (tracker output) use the same columns with
the score in ``conf``.
"""
from __future__ import annotations

import configparser
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

from .base import ReadContext, Reader, ReadOptions, fmt_num
from .errors import FRAME_RANGE, REFERENCE, STRUCTURE, TYPE, UNKNOWN_CLASS, VIDEO_MISMATCH, WRONG_FORMAT
from .records import Annotation, Detection, Kind, Record, VideoInfo

MOT17_CLASSES = (
    "pedestrian", "person_on_vehicle", "car", "bicycle", "motorbike", "non_motorized_vehicle", "static_person",
    "distractor", "occluder", "occluder_on_ground", "occluder_full", "reflection", "crowd",
)


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a MOT sequence (zip, folder, or a bare gt.txt / results file) for import."""
    return Reader(_records, path, video=video, classes=classes, options=options)


def _pick(ctx: ReadContext) -> tuple[str, Kind]:
    names = ctx.source.names()
    forced = ctx.options.kind
    gts = [n for n in names if PurePosixPath(n).name == "gt.txt"]
    if ctx.options.video_id and len(gts) > 1:
        gts = [n for n in gts if ctx.options.video_id in PurePosixPath(n).parts]
    if len(gts) > 1:
        raise ctx.log.fatal(STRUCTURE, f"several sequences ({', '.join(gts)}); choose one with video_id")
    if gts:
        return gts[0], forced or "annotations"
    txts = [n for n in names if n.endswith(".txt") and PurePosixPath(n).name not in ("labels.txt",)]
    if len(txts) == 1:
        kind: Kind = "annotations" if PurePosixPath(txts[0]).name == "gt.txt" else "results"
        return txts[0], forced or kind
    raise ctx.log.fatal(WRONG_FORMAT, "no MOT gt/gt.txt (or single results .txt) found" if not txts
                        else f"several .txt files ({', '.join(txts[:5])}); which one holds the boxes is unclear")


def _sibling(names: list[str], path: PurePosixPath, name: str) -> str | None:
    for cand in (path.parent / name, path.parent.parent / name):
        s = cand.as_posix()
        if s in names:
            return s
    return None


def _seqinfo(ctx: ReadContext, member: str) -> None:
    text = ctx.source.read_small_text(member, ctx.options.limits.max_text_file_bytes)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
        seq = parser["Sequence"]
    except (configparser.Error, KeyError) as exc:
        ctx.log.error(STRUCTURE, f"seqinfo.ini has no readable [Sequence] section: {exc}", file=member)
        return
    video = ctx.video
    vals: dict[str, int] = {}
    for key in ("imWidth", "imHeight", "seqLength"):
        if key in seq:
            try:
                vals[key] = int(seq[key])
            except ValueError:
                ctx.log.error(TYPE, f"{key} must be an integer, got {seq[key]!r}", file=member, field=key)
    if video is None:
        return
    if "imWidth" in vals and "imHeight" in vals and (vals["imWidth"], vals["imHeight"]) != (video.width, video.height):
        ctx.log.refuse(VIDEO_MISMATCH, f"the sequence is {vals['imWidth']}x{vals['imHeight']}; the video is "
                                       f"{video.width}x{video.height}", file=member, field="imWidth")
    if "seqLength" in vals and video.frame_count is not None and vals["seqLength"] > video.frame_count:
        ctx.log.refuse(VIDEO_MISMATCH, f"the sequence has {vals['seqLength']} frames; the video has "
                                       f"{video.frame_count}", file=member, field="seqLength")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        f = float(text)
        if not f.is_integer():
            raise
        return int(f)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_COLS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility")


def _records(ctx: ReadContext) -> Iterator[Record]:
    member, kind = _pick(ctx)
    names = ctx.source.names()
    path = PurePosixPath(member)
    label_names: Sequence[str] = MOT17_CLASSES
    lab = _sibling(names, path, "labels.txt")
    if lab:
        label_names = [ln.strip() for ln in ctx.source.read_small_text(lab, ctx.options.limits.max_text_file_bytes)
                       .splitlines() if ln.strip()]
    ini = _sibling(names, path, "seqinfo.ini")
    if ini:
        _seqinfo(ctx, ini)
    default = ctx.options.default_label
    resolved: dict[int, str | None] = {}
    vid = ctx.options.video_id
    first = True
    try:
        with ctx.source.open_text(member) as fp:
            for lineno, line in enumerate(fp, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = [p.strip() for p in line.split(",")] if "," in line else line.split()
                if first:
                    first = False
                    if len(parts) < 6 or not all(_looks_numeric(p) for p in parts[:6]):
                        raise ctx.log.fatal(WRONG_FORMAT, f"does not look like MOT ({line[:60]!r} is not "
                                                          "frame,id,x,y,w,h,...)", file=member, line=lineno)
                if len(parts) < 6 or len(parts) > 10:
                    ctx.log.error(STRUCTURE, f"expected 6 to 10 comma-separated values (frame,id,x,y,w,h,conf,class,"
                                             f"visibility), got {len(parts)}", file=member, line=lineno)
                    continue
                vals: list[float] = []
                bad = False
                for i, p in enumerate(parts[:9]):
                    try:
                        vals.append(_int(p) if i in (0, 1, 7) else float(p))
                    except ValueError:
                        ctx.log.error(TYPE, f"{_COLS[i]} must be {'an integer' if i in (0, 1, 7) else 'a number'}, "
                                            f"got {p!r}", file=member, line=lineno, field=_COLS[i])
                        bad = True
                        break
                if bad:
                    continue
                frame, tid, x, y, w, h = vals[:6]
                conf = vals[6] if len(vals) > 6 else 1.0
                cls = int(vals[7]) if len(vals) > 7 else -1
                vis = vals[8] if len(vals) > 8 else -1.0
                if not ctx.finite(conf, file=member, line=lineno, field="conf") or \
                        not ctx.finite(vis, file=member, line=lineno, field="visibility"):
                    continue
                if frame < 1:
                    ctx.log.error(FRAME_RANGE, f"MOT frames start at 1, got {frame}", file=member, line=lineno,
                                  field="frame")
                    continue
                fn = int(frame) - 1
                if not ctx.frame(fn, file=member, line=lineno, field="frame"):
                    continue
                if not ctx.box(x, y, x + w, y + h, file=member, line=lineno, field="x,y,w,h"):
                    continue
                if cls in resolved:
                    label = resolved[cls]
                    if label is None:
                        ctx.log.error(UNKNOWN_CLASS, f"class {cls} maps to no project class", file=member,
                                      line=lineno, field="class")
                        continue
                else:
                    if cls <= 0:
                        if default is None:
                            ctx.log.error(UNKNOWN_CLASS, f"line has no class ({cls}); set default_label", file=member,
                                          line=lineno, field="class")
                            continue
                        name = default
                    elif cls > len(label_names):
                        ctx.log.error(REFERENCE, f"class {cls} is not in the {len(label_names)} known class names",
                                      file=member, line=lineno, field="class")
                        continue
                    else:
                        name = label_names[cls - 1]
                    label = ctx.label(name, file=member, line=lineno, field="class")
                    resolved[cls] = label
                    if label is None:
                        continue
                track = None if tid < 0 else int(tid)
                box = (x, y, x + w, y + h)
                if kind == "results":
                    if not ctx.result_values(conf, track, "conf", file=member, line=lineno):
                        continue
                    yield Detection(fn, label, box, conf, track, None, vid)
                else:
                    yield Annotation(fn, label, box, track, None, True, False, False, conf,
                                     None if vis < 0 else vis, {}, vid)
    except UnicodeDecodeError as exc:
        raise ctx.log.fatal(WRONG_FORMAT, f"not a MOT text file: {exc.reason}", file=member) from None


def write(dest: Any, records: Iterable[Record], *, video: VideoInfo, classes: Sequence[str],
          kind: Kind = "annotations") -> int:
    """Write a zipped MOT sequence: ``<name>/gt/gt.txt`` + labels + seqinfo, or ``<name>.txt`` for results."""
    cls = {c: i + 1 for i, c in enumerate(classes)}
    seq = video.name
    n = 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        labels = "".join(c + "\n" for c in classes)
        if kind == "results":
            zf.writestr("labels.txt", labels)
            member = f"{seq}.txt"
        else:
            zf.writestr(f"{seq}/gt/labels.txt", labels)
            ini = ["[Sequence]", f"name={seq}", "imDir=img1", f"imWidth={video.width}", f"imHeight={video.height}",
                   "imExt=.jpg"]
            if video.fps:
                ini.append(f"frameRate={fmt_num(video.fps)}")
            if video.frame_count is not None:
                ini.append(f"seqLength={video.frame_count}")
            zf.writestr(f"{seq}/seqinfo.ini", "\n".join(ini) + "\n")
            member = f"{seq}/gt/gt.txt"
        with zf.open(member, "w", force_zip64=True) as raw, io.TextIOWrapper(raw, "utf-8", newline="") as out:
            buf: list[str] = []
            for r in records:
                if isinstance(r, Annotation) and r.outside:
                    continue
                x1, y1, x2, y2 = r.box
                tid = -1 if r.track_id is None else r.track_id
                head = f"{r.frame_number + 1},{tid},{fmt_num(x1)},{fmt_num(y1)},{fmt_num(x2 - x1)},{fmt_num(y2 - y1)}"
                if isinstance(r, Detection):
                    buf.append(f"{head},{fmt_num(r.score)},{cls[r.label]},-1\n")
                else:
                    vis = "-1" if r.visibility is None else fmt_num(r.visibility)
                    buf.append(f"{head},{fmt_num(r.confidence)},{cls[r.label]},{vis}\n")
                n += 1
                if len(buf) >= 4096:
                    out.write("".join(buf))
                    buf.clear()
            out.write("".join(buf))
    return n
