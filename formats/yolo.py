"""YOLO detection labels: Ultralytics layout (``data.yaml`` + ``labels/**.txt``) and darknet (``obj.names``).

Each label file is one frame; each line ``class cx cy w h`` (normalized to the frame size),
with ``conf`` appended for results. Which frame a file is comes from ``frame_map`` or from
the number in its name (``frame_000012.txt`` and ``12.txt`` are frame 12 of the video).
Coordinates are normalized, so reading needs the target video's frame size.

Pose (``kpt_shape``), classification folders, oriented boxes and segmentation polygons are
other Ultralytics tasks: they are skipped or refused with a message saying so.

A zip keeps its whole member directory in memory (reading and writing alike), so memory
grows with the number of frames (a few hundred bytes each), not with the number of boxes.
"""
from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

from .base import ReadContext, Reader, ReadOptions, frame_from_name, option
from .errors import REFERENCE, STRUCTURE, TYPE, UNSUPPORTED, WRONG_FORMAT
from .records import Annotation, Detection, FrameInfo, Kind, Record, VideoInfo

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_SIDE_FILES = {"obj.names", "labels.txt", "classes.txt"}


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a YOLO dataset (zip or folder) for import into ``video``."""
    return Reader(_records, path, video=video, classes=classes, options=options)


def _yaml_names(ctx: ReadContext, member: str) -> tuple[list[str] | None, bool]:
    """(class names, is pose) from a data.yaml, or (None, False) when it is not a dataset file."""
    text = ctx.source.read_small_text(member, ctx.options.limits.max_text_file_bytes)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        ctx.log.error(STRUCTURE, f"not valid YAML: {exc}".splitlines()[0], file=member)
        return None, False
    if not isinstance(doc, dict) or "names" not in doc:
        return None, False
    raw = doc["names"]
    names: list[str] = []
    values = raw if isinstance(raw, list) else list(raw.values()) if isinstance(raw, dict) else []
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        # never str() arbitrary YAML: aliases can make a small file a huge nested structure
        ctx.log.error(TYPE, "class names must be strings", file=member, field="names")
        return None, False
    if isinstance(raw, list):
        names = [str(n) for n in raw]
    elif isinstance(raw, dict):
        try:
            idx = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            ctx.log.error(TYPE, "names keys must be class indices", file=member, field="names")
            return None, False
        if sorted(idx) != list(range(len(idx))):
            ctx.log.error(STRUCTURE, "names must number the classes 0..n-1 without gaps", file=member, field="names")
            return None, False
        names = [idx[i] for i in range(len(idx))]
    else:
        ctx.log.error(TYPE, "names must be a list or a mapping of index to name", file=member, field="names")
        return None, False
    return names, "kpt_shape" in doc


def _is_image_list(ctx: ReadContext, member: str) -> bool:
    """A subset list (``train.txt`` naming image files), not a label file."""
    try:
        with ctx.source.open_text(member) as fp:
            first = fp.readline().strip()
    except UnicodeDecodeError:
        return False
    return PurePosixPath(first).suffix.lower() in _IMAGE_EXT


def _layout(ctx: ReadContext) -> tuple[list[str], list[str]]:
    """(class names, label files) for whichever layout the dataset uses."""
    names = ctx.source.names()
    yamls = sorted((n for n in names if n.lower().endswith((".yaml", ".yml"))), key=lambda n: (n.count("/"), n))
    for y in yamls:
        classes, pose = _yaml_names(ctx, y)
        if classes is None:
            continue
        if pose:
            raise ctx.log.fatal(UNSUPPORTED, "YOLO pose datasets (kpt_shape in the YAML) are not supported; only "
                                             "detection boxes can be imported", file=y, field="kpt_shape")
        labels = [n for n in names if n.endswith(".txt") and "labels" in PurePosixPath(n).parts[:-1]]
        if not labels:  # label files in a folder of another name (Labels/, annotations/, obj_train_data/...)
            labels = [n for n in names if n.endswith(".txt") and "/" in n and PurePosixPath(n).name not in _SIDE_FILES
                      and not _is_image_list(ctx, n)]
            if labels:
                folders = sorted({str(PurePosixPath(n).parent) for n in labels})
                ctx.log.warning(STRUCTURE, f"no labels/ folder: the .txt files in {', '.join(folders[:5])} are read "
                                           "as detection labels", file=y)
        if not labels:
            if any(PurePosixPath(n).suffix.lower() in _IMAGE_EXT for n in names):
                raise ctx.log.fatal(UNSUPPORTED, "a YOLO classification dataset (folders of images per class, no "
                                                 "label .txt files) is not supported; only detection boxes", file=y)
        return classes, sorted(labels)
    obj = [n for n in names if PurePosixPath(n).name == "obj.names"]
    if obj:
        text = ctx.source.read_small_text(obj[0], ctx.options.limits.max_text_file_bytes)
        classes = [ln.strip() for ln in text.splitlines() if ln.strip()]
        labels = [n for n in names if n.endswith(".txt") and "/" in n and PurePosixPath(n).name not in _SIDE_FILES]
        return classes, sorted(labels)
    if any(PurePosixPath(n).suffix.lower() in _IMAGE_EXT for n in names) and \
            not any(n.endswith(".txt") for n in names):
        raise ctx.log.fatal(UNSUPPORTED, "folders of images without label files look like a YOLO classification "
                                         "dataset, which is not supported")
    raise ctx.log.fatal(WRONG_FORMAT, "not a YOLO dataset: no data.yaml with names and no obj.names")


def _frame_of(ctx: ReadContext, member: str) -> int | None:
    fmap = ctx.options.frame_map
    p = PurePosixPath(member)
    if fmap:
        for k in (member, p.name, p.stem):
            if k in fmap:
                return int(fmap[k])
        for ext in _IMAGE_EXT:
            if p.stem + ext in fmap:
                return int(fmap[p.stem + ext])
    n = frame_from_name(p.name)
    if n is None:
        ctx.log.error(STRUCTURE, f"cannot tell which video frame {p.name!r} is: no number in the name; give "
                               f"{option('frame_map')}",
                      file=member)
    return n


def _records(ctx: ReadContext) -> Iterator[Record]:
    classes, labels = _layout(ctx)
    video = ctx.video
    if video is None:
        raise ctx.log.fatal(STRUCTURE, "YOLO coordinates are normalized: the target video's frame size is needed")
    W, H = float(video.width), float(video.height)  # noqa: N806
    forced: Kind | None = ctx.options.kind
    vid = ctx.options.video_id
    mapped: dict[int, str | None] = {}
    for member in labels:
        frame = _frame_of(ctx, member)
        if frame is None or not ctx.frame(frame, file=member):
            continue
        try:
            with ctx.source.open_text(member) as fp:
                for lineno, line in enumerate(fp, 1):
                    parts = line.split()
                    if not parts:
                        continue
                    n = len(parts)
                    where = {"file": member, "line": lineno}
                    if n not in (5, 6):
                        if n == 9:
                            ctx.skip_unsupported("YOLO oriented boxes / 4-point polygons (OBB or segmentation "
                                                 "labels)", **where)
                        elif n >= 7 and n % 2 == 1:
                            ctx.skip_unsupported("YOLO polygons (segmentation labels)", **where)
                        else:
                            ctx.log.error(STRUCTURE, f"expected 'class cx cy w h [conf]', got {n} values", **where)
                        continue
                    try:
                        cls = int(parts[0])
                    except ValueError:
                        ctx.log.error(TYPE, f"class must be an integer, got {parts[0]!r}", **where, field="class")
                        continue
                    try:
                        cx, cy, w, h = (float(v) for v in parts[1:5])
                        conf = float(parts[5]) if n == 6 else None
                    except ValueError:
                        ctx.log.error(TYPE, "coordinates must be numbers", **where, field="cx,cy,w,h")
                        continue
                    if not (math.isfinite(cx) and math.isfinite(cy) and math.isfinite(w) and math.isfinite(h)):
                        ctx.log.error("non_finite", "a coordinate is NaN or infinite", **where, field="cx,cy,w,h")
                        continue
                    if conf is not None and not ctx.finite(conf, **where, field="conf"):
                        continue
                    if not 0 <= cls < len(classes):
                        ctx.log.error(REFERENCE, f"class {cls} is not among the {len(classes)} names", **where,
                                      field="class")
                        continue
                    if cls in mapped:
                        label = mapped[cls]
                        if label is None:
                            ctx.label(classes[cls], **where, field="class")
                            continue
                    else:
                        label = mapped[cls] = ctx.label(classes[cls], **where, field="class")
                        if label is None:
                            continue
                    box = ((cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H)
                    if not ctx.box(*box, **where, field="cx,cy,w,h"):
                        continue
                    if conf is not None and forced != "annotations":
                        if not ctx.result_values(conf, None, **where):
                            continue
                        yield Detection(frame, label, box, conf, None, None, vid)
                    elif forced == "results":
                        ctx.log.error(STRUCTURE, "a result needs a confidence (6th value)", **where, field="conf")
                    else:
                        yield Annotation(frame, label, box, None, None, True, False, False,
                                         1.0 if conf is None else conf, None, {}, vid)
        except UnicodeDecodeError as exc:
            ctx.log.error(WRONG_FORMAT, f"not a text label file: {exc.reason}", file=member)


def _norm(v: float) -> str:
    if not math.isfinite(v):
        raise ValueError(f"cannot write {v!r}: coordinates must be finite")
    return f"{v:.6f}"


FrameImages = Callable[[int], "bytes | None"]


def write(dest: Any, records: Iterable[Record], *, video: VideoInfo, classes: Sequence[str],
          frames: Iterable[FrameInfo] | None = None, kind: Kind = "annotations", split: str = "train",
          images: FrameImages | None = None) -> int:
    """Write a zipped Ultralytics dataset; records must come ordered by frame.

    ``labels/<split>/frame_NNNNNN.txt`` per frame (empty for a listed frame without objects,
    a negative frame in YOLO terms); with ``images`` (frame number -> encoded JPEG, asked in
    frame order) ``images/<split>/frame_NNNNNN.jpg`` beside each, so that the dataset loads in
    Ultralytics and datumaro as it is. ``data.yaml`` names the folders relative to itself
    (no ``path`` key: Ultralytics then resolves them against the YAML's own folder) and the
    classes in order. Outside markers and track ids have no place in YOLO.
    """
    cls = {c: i for i, c in enumerate(classes)}
    W, H = float(video.width), float(video.height)  # noqa: N806
    header: dict[str, Any] = {"train": f"images/{split}", "val": f"images/{split}", "nc": len(classes),
                              "names": {i: c for i, c in enumerate(classes)}}
    written: set[int] = set()
    n = 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.yaml", yaml.safe_dump(header, sort_keys=False, allow_unicode=True))
        # the folder exists in the archive even when no frame has an image
        zf.writestr(zipfile.ZipInfo(f"images/{split}/"), b"")

        def flush(frame: int, lines: list[str]) -> None:
            if frame in written:
                raise ValueError(f"frame {frame} appears again after other frames: order records by frame")
            written.add(frame)
            zf.writestr(f"labels/{split}/frame_{frame:06d}.txt", "".join(lines))
            if images is not None:
                data = images(frame)
                if data is not None:  # already JPEG: stored, not deflated again
                    zf.writestr(f"images/{split}/frame_{frame:06d}.jpg", data, compress_type=zipfile.ZIP_STORED)

        current: int | None = None
        lines: list[str] = []
        for r in records:
            if isinstance(r, Annotation) and r.outside:
                continue
            if r.frame_number != current:
                if current is not None:
                    flush(current, lines)
                current, lines = r.frame_number, []
            x1, y1, x2, y2 = r.box
            text = (f"{cls[r.label]} {_norm((x1 + x2) / 2 / W)} {_norm((y1 + y2) / 2 / H)} "
                    f"{_norm((x2 - x1) / W)} {_norm((y2 - y1) / H)}")
            if kind == "results":
                score = r.score if isinstance(r, Detection) else r.confidence
                text += f" {_norm(score)}"
            lines.append(text + "\n")
            n += 1
        if current is not None:
            flush(current, lines)
        for f in frames or ():
            if f.frame_number not in written:
                flush(f.frame_number, [])
    return n
