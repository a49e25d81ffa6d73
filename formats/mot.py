"""MOTChallenge text files, in the layouts the benchmarks and the trackers write.

Lines are ``frame,id,x,y,w,h,...`` with 1-based frames; ``#`` lines, blank lines, CRLF and a
missing final newline are accepted. What follows ``h`` depends on the number of values:

* 9 (MOT16/17/20 ground truth, this platform's results): ``conf,class,visibility``;
* 10 (MOT15 ground truth, benchmark results, ``det.txt``): ``conf`` then world ``x,y,z``,
  which are ignored; there is no class;
* 7 or 8: ``conf`` and optionally ``class``.

Class numbers index ``labels.txt`` (1-based, one name a line, as datumaro writes it) when the
sequence has one, else the MOT17/MOT20 class list (with a warning saying so). Lines without a
class (or class ``-1``) take ``ReadOptions.default_label``. In ground truth ``conf`` 0 marks a
box the benchmark does not evaluate: it is kept, with the ``mot_ignore`` attribute, and
evaluation protocols decide what it means. In results a ``conf`` of -1 (:data:`NO_SCORE`) is
MOT's "no score": it is stored as -1, the one value outside the score range MOT may hold, ranks
below every real score and is never dropped by a score threshold. ``seqinfo.ini`` declares the
frame size and length, which must fit the target video.
"""
from __future__ import annotations

import configparser
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

from .base import ReadContext, Reader, ReadOptions, fmt_num, option
from .errors import FRAME_RANGE, REFERENCE, STRUCTURE, TYPE, UNKNOWN_CLASS, VIDEO_MISMATCH, WRONG_FORMAT
from .records import Annotation, Detection, Kind, Record, VideoInfo

MOT17_CLASSES = (
    "pedestrian", "person_on_vehicle", "car", "bicycle", "motorbike", "non_motorized_vehicle", "static_person",
    "distractor", "occluder", "occluder_on_ground", "occluder_full", "reflection", "crowd",
)
#: A result's ``conf`` of -1: the tracker gave no score.
NO_SCORE = -1.0
#: Annotation attributes that keep what the MOT columns said where the record's fields cannot.
IGNORE_ATTRIBUTE = "mot_ignore"   # ground truth ``conf`` 0: not to be evaluated
CLASS_ATTRIBUTE = "mot_class"     # the MOT class name when label_map renamed it
# Issue codes of this format (warnings).
ASSUMED = "assumed_class_list"
NO_SCORE_CODE = "no_score"
_NO_CLASS = ("the line has no class (MOT results, det.txt and MOT15 ground truth carry none, or class is -1); "
             "set default_label to the project class these boxes are")


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a MOT sequence (zip, folder, or a bare gt.txt / results file) for import."""
    return Reader(_records, path, video=video, classes=classes, options=options)


def _pick(ctx: ReadContext) -> tuple[str, Kind]:
    """The file holding the boxes: ``gt/gt.txt`` for annotations; for results the single other
    ``.txt`` (a tracker's ``<seq>.txt`` or ``det/det.txt``), else ``gt.txt`` itself."""
    names = ctx.source.names()
    forced = ctx.options.kind
    gts = [n for n in names if PurePosixPath(n).name == "gt.txt"]
    if ctx.options.video_id and len(gts) > 1:
        gts = [n for n in gts if ctx.options.video_id in PurePosixPath(n).parts]
    txts = [n for n in names if n.endswith(".txt") and PurePosixPath(n).name not in ("labels.txt", "gt.txt")]
    if ctx.options.video_id and len(txts) > 1:
        txts = [n for n in txts if ctx.options.video_id in PurePosixPath(n).parts
                or PurePosixPath(n).stem == ctx.options.video_id]
    if forced == "results" and len(txts) == 1:
        return txts[0], "results"
    if forced == "results" and txts:
        raise ctx.log.fatal(STRUCTURE, f"several result files ({', '.join(txts[:5])}); choose one with video_id")
    if len(gts) > 1:
        raise ctx.log.fatal(STRUCTURE, f"several sequences ({', '.join(gts)}); choose one with "
                                             f"{option('source_video_id')}")
    if gts:
        return gts[0], forced or "annotations"
    if len(txts) == 1:
        return txts[0], forced or "results"
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
_WORLD = ("frame", "id", "x", "y", "w", "h", "conf", "world x", "world y", "world z")


def _layout(n: int) -> str:
    """What a line of ``n`` values holds: MOT16/17/20 ground truth and this platform's results have
    9 (``conf,class,visibility``); MOT15 ground truth, benchmark results and ``det.txt`` have 10
    (``conf`` then world coordinates, no class); 6 to 8 end after ``h``, ``conf`` or ``class``."""
    return "world" if n == 10 else "class" if n >= 8 else "plain"


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
    resolved: dict[int | None, str | None] = {}
    vid = ctx.options.video_id
    first = True
    assumed_list = lab is None
    no_score: list[int] = []
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
                                             f"visibility or frame,id,x,y,w,h,conf,x,y,z), got {len(parts)}",
                                  file=member, line=lineno)
                    continue
                layout = _layout(len(parts))
                cols = _WORLD if layout == "world" else _COLS
                ints = (0, 1) if layout == "world" else (0, 1, 7)
                vals: list[float] = []
                bad = False
                for i, p in enumerate(parts):
                    try:
                        vals.append(_int(p) if i in ints else float(p))
                    except ValueError:
                        ctx.log.error(TYPE, f"{cols[i]} must be {'an integer' if i in ints else 'a number'}, "
                                            f"got {p!r}", file=member, line=lineno, field=cols[i])
                        bad = True
                        break
                if bad:
                    continue
                frame, tid, x, y, w, h = vals[:6]
                conf = vals[6] if len(vals) > 6 else 1.0
                cls = int(vals[7]) if layout == "class" else None
                vis = vals[8] if layout == "class" and len(vals) > 8 else -1.0
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
                key = cls if cls is not None and cls > 0 else None
                if key in resolved:
                    label = resolved[key]
                    if label is None:
                        if key is None:
                            ctx.log.error(UNKNOWN_CLASS, _NO_CLASS, file=member, line=lineno, field="class")
                        else:
                            ctx.log.error(UNKNOWN_CLASS, f"class {cls} maps to no project class", file=member,
                                          line=lineno, field="class")
                        continue
                else:
                    if key is None:
                        if default is None:
                            resolved[key] = None
                            ctx.log.error(UNKNOWN_CLASS, _NO_CLASS, file=member, line=lineno, field="class")
                            continue
                        name = default
                    elif cls > len(label_names):
                        ctx.log.error(REFERENCE, f"class {cls} is not in the {len(label_names)} known class names",
                                      file=member, line=lineno, field="class")
                        continue
                    else:
                        name = label_names[cls - 1]
                        if assumed_list:
                            assumed_list = False
                            ctx.log.warning(ASSUMED, "no labels.txt beside the boxes: class numbers are read with "
                                                     "the MOT17/MOT20 list (" + ", ".join(
                                                         f"{i} {n}" for i, n in enumerate(MOT17_CLASSES, 1)) +
                                            "); for another list put a labels.txt (one name a line, line 1 is "
                                            "class 1) beside the file, or rename classes with label_map",
                                            file=member, line=lineno, field="class")
                    label = ctx.label(name, file=member, line=lineno, field="class")
                    resolved[key] = label
                    if label is None:
                        continue
                track = None if tid < 0 else int(tid)
                box = (x, y, x + w, y + h)
                if kind == "results":
                    if not ctx.result_values(conf, track, "conf", no_score=NO_SCORE, file=member, line=lineno):
                        continue
                    if conf == NO_SCORE:
                        no_score.append(lineno)
                    yield Detection(fn, label, box, conf, track, None, vid)
                else:
                    attrs: dict[str, Any] = {}
                    if int(conf) == 0:
                        attrs[IGNORE_ATTRIBUTE] = True  # the benchmark's "not to be evaluated" mark
                    if key is not None and label_names[cls - 1] != label:
                        attrs[CLASS_ATTRIBUTE] = label_names[cls - 1]
                    yield Annotation(fn, label, box, track, None, True, False, False, conf,
                                     None if vis < 0 else vis, attrs, vid)
    except UnicodeDecodeError as exc:
        raise ctx.log.fatal(WRONG_FORMAT, f"not a MOT text file: {exc.reason}", file=member) from None
    if no_score:
        ctx.log.warning(NO_SCORE_CODE, f"{len(no_score)} result(s) have conf -1, MOT's \"no score\" (first on line "
                                       f"{no_score[0]}): stored as -1, ranked below every scored result and kept "
                                       "at any score threshold", file=member, line=no_score[0], field="conf")


def write(dest: Any, records: Iterable[Record], *, video: VideoInfo, classes: Sequence[str],
          kind: Kind = "annotations") -> int:
    """Write a zipped MOT sequence: ``<name>/gt/gt.txt`` + labels + seqinfo, or ``<name>.txt`` for results."""
    mot17 = {c.casefold().replace(" ", "_"): i + 1 for i, c in enumerate(MOT17_CLASSES)}
    if classes and all(c.casefold().replace(" ", "_") in mot17 for c in classes):
        # MOT17's own labels keep MOT17's numbers (pedestrian 1, car 3...), and labels.txt lists them all
        cls = {c: mot17[c.casefold().replace(" ", "_")] for c in classes}
        classes = MOT17_CLASSES
    else:
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
                    conf = 0 if r.attributes.get(IGNORE_ATTRIBUTE) else r.confidence
                    buf.append(f"{head},{fmt_num(conf)},{cls[r.label]},{vis}\n")
                n += 1
                if len(buf) >= 4096:
                    out.write("".join(buf))
                    buf.clear()
            out.write("".join(buf))
    return n
