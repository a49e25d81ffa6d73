"""COCO detection JSON: each evaluated video frame is an image; results are the COCO results list.

Reading streams the file (see :mod:`formats.jsonstream`): images and categories are kept in
memory (they grow with the number of frames and classes, not with annotations), annotations
are decoded one at a time. When a file lists annotations before images the file is read
twice rather than buffering annotations.

Image ids we write are ``video_index * IMAGE_ID_STRIDE + frame_number + 1`` so that a results
list exported on its own refers to the same images as the ground truth exported before.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import IO, Any

from .base import ReadContext, Reader, ReadOptions, fmt_num, frame_from_name, open_text_out, option
from .errors import (
    CLASS_MAPPED,
    DUPLICATE,
    REFERENCE,
    STRUCTURE,
    TYPE,
    VIDEO_MISMATCH,
    WRONG_FORMAT,
)
from .jsonstream import JsonArrayWriter, JsonStream, JsonSyntaxError
from .records import Annotation, Detection, FrameInfo, Kind, Record, VideoInfo
from .sources import open_source

IMAGE_ID_STRIDE = 1_000_000_000

# image id -> (frame_number, width, height, timestamp) or None when the image itself is unusable
_Images = dict[int, "tuple[int, int | None, int | None, float | None] | None"]


# ----------------------------------------------------------------------------- reading


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a COCO file (or a zip / folder of them) for import."""
    return Reader(_records, path, video=video, classes=classes, options=options)


def _json_members(ctx: ReadContext) -> list[str]:
    names = [n for n in ctx.source.names() if n.lower().endswith(".json")]
    if not names and len(ctx.source.names()) == 1:
        names = ctx.source.names()
    if not names:
        raise ctx.log.fatal(WRONG_FORMAT, "no .json file found for COCO")
    return sorted(names)


def _records(ctx: ReadContext) -> Iterator[Record]:
    gt: tuple[_Images, dict[int, str | None]] | None = None
    if ctx.options.coco_gt:
        gt = _load_gt(ctx, ctx.options.coco_gt)
    for name in _json_members(ctx):
        yield from _read_member(ctx, name, gt)


class _State:
    def __init__(self) -> None:
        self.images: _Images = {}
        self.categories: dict[int, str | None] = {}
        self.seen: set[str] = set()
        self.video_ids: set[str] = set()
        self.defer = False


def _open_stream(ctx: ReadContext, name: str) -> tuple[Any, JsonStream]:
    cm = ctx.source.open_text(name)
    fp = cm.__enter__()
    return cm, JsonStream(fp)


def _read_member(ctx: ReadContext, name: str, gt: tuple[_Images, dict[int, str | None]] | None) -> Iterator[Record]:
    st = _State()
    cm, js = _open_stream(ctx, name)
    try:
        try:
            top = js.peek()
            if top == "[":
                yield from _results_list(ctx, name, js, gt)
                js.end()
                return
            if top != "{":
                shown = repr(top) if top else "an empty file"
                raise ctx.log.fatal(WRONG_FORMAT, f"not COCO JSON: expected an object or a results list, found {shown}",
                                    file=name, line=js.line)
            for key in js.object():
                st.seen.add(key)
                if key == "images":
                    _images(ctx, name, js, st)
                elif key == "categories":
                    _categories(ctx, name, js, st)
                elif key == "annotations":
                    if {"images", "categories"} <= st.seen:
                        yield from _annotations(ctx, name, js, st)
                    else:
                        st.defer = True
                        for _ in js.values():
                            pass
                else:
                    js.skip()
            js.end()
        except UnicodeDecodeError as exc:
            raise ctx.log.fatal(WRONG_FORMAT, f"not UTF-8 text: {exc.reason}", file=name) from None
        except JsonSyntaxError as exc:
            raise ctx.log.fatal(STRUCTURE if st.seen else WRONG_FORMAT, f"invalid JSON: {exc.reason}",
                                file=name, line=exc.line) from None
    finally:
        cm.__exit__(None, None, None)
    missing = [k for k in ("images", "annotations", "categories") if k not in st.seen]
    if missing:
        raise ctx.log.fatal(STRUCTURE, f"not a COCO detection file: missing {', '.join(missing)}", file=name,
                            pointer="")
    if st.defer:
        cm, js = _open_stream(ctx, name)
        try:
            for key in js.object():
                if key == "annotations":
                    yield from _annotations(ctx, name, js, st)
                else:
                    js.skip()
        finally:
            cm.__exit__(None, None, None)


def _int_field(ctx: ReadContext, obj: dict, key: str, name: str, ptr: str, required: bool = True) -> int | None:
    v = obj.get(key)
    if v is None:
        if required:
            ctx.log.error(STRUCTURE, f"missing {key}", file=name, pointer=ptr, field=key)
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        ctx.log.error(TYPE, f"{key} must be an integer, got {json.dumps(v)[:40]}", file=name, pointer=ptr, field=key)
        return None
    return v


def _image_frame(ctx: ReadContext, img: dict, name: str, ptr: str) -> int | None:
    fn = img.get("frame_number", img.get("frame_id"))
    if fn is not None:
        if isinstance(fn, int) and not isinstance(fn, bool):
            return fn
        ctx.log.error(TYPE, "frame_number must be an integer", file=name, pointer=ptr, field="frame_number")
        return None
    file_name = img.get("file_name")
    if not isinstance(file_name, str):
        ctx.log.error(STRUCTURE, "image has neither frame_number nor file_name", file=name, pointer=ptr)
        return None
    fmap = ctx.options.frame_map
    if fmap:
        base = PurePosixPath(file_name.replace("\\", "/")).name
        for k in (file_name, base, base.rsplit(".", 1)[0]):
            if k in fmap:
                return int(fmap[k])
    n = frame_from_name(file_name)
    if n is None:
        ctx.log.error(STRUCTURE, f"cannot tell which video frame {file_name!r} is: no frame_number field and no "
                                 f"number in the file name; give {option('frame_map')}", file=name, pointer=ptr,
                      field="file_name")
    return n


def _images(ctx: ReadContext, name: str, js: JsonStream, st: _State) -> None:
    video = ctx.video
    want_video = ctx.options.video_id
    if js.peek() != "[":
        ctx.log.error(TYPE, "images must be a list", file=name, pointer="/images")
        js.skip()
        return
    for i, img in js.values():
        ptr = f"/images/{i}"
        if not isinstance(img, dict):
            ctx.log.error(TYPE, "an image must be an object", file=name, pointer=ptr)
            continue
        iid = _int_field(ctx, img, "id", name, ptr)
        if iid is None:
            continue
        if iid in st.images:
            ctx.log.error(DUPLICATE, f"image id {iid} appears twice", file=name, pointer=ptr, field="id")
            continue
        vid = img.get("video_id")
        if vid is not None:
            vid = str(vid)
            if want_video is not None and vid != str(want_video):
                st.images[iid] = None  # another video's frame: its annotations are not ours
                continue
            if want_video is None and vid not in st.video_ids:
                st.video_ids.add(vid)
                if len(st.video_ids) == 2:
                    ctx.log.refuse(STRUCTURE, "the file holds frames of several videos; choose one with "
                                   f"{option('source_video_id')}",
                                   file=name, pointer=ptr, field="video_id")
        ok = True
        w, h = img.get("width"), img.get("height")
        for key, v in (("width", w), ("height", h)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                ctx.log.error(TYPE, f"{key} must be a positive integer", file=name, pointer=ptr, field=key)
                ok = False
        if ok and video is not None and w is not None and h is not None and (w, h) != (video.width, video.height):
            ctx.log.refuse(VIDEO_MISMATCH, f"image declares a {w}x{h} frame; the video is {video.width}x{video.height}",
                           file=name, pointer=ptr, field="width")
            ok = False
        ts = img.get("timestamp")
        if ts is not None and not ctx.finite(ts, file=name, pointer=ptr, field="timestamp"):
            ok = False
        frame = _image_frame(ctx, img, name, ptr)
        if frame is None or not ctx.frame(frame, file=name, pointer=ptr, field="frame_number"):
            ok = False
        st.images[iid] = (frame, w, h, ts) if ok else None  # type: ignore[assignment]


def _categories(ctx: ReadContext, name: str, js: JsonStream, st: _State) -> None:
    if js.peek() != "[":
        ctx.log.error(TYPE, "categories must be a list", file=name, pointer="/categories")
        js.skip()
        return
    for i, cat in js.values():
        ptr = f"/categories/{i}"
        if not isinstance(cat, dict):
            ctx.log.error(TYPE, "a category must be an object", file=name, pointer=ptr)
            continue
        cid = _int_field(ctx, cat, "id", name, ptr)
        cname = cat.get("name")
        if not isinstance(cname, str):
            ctx.log.error(TYPE, "category name must be a string", file=name, pointer=ptr, field="name")
            continue
        if cid is None:
            continue
        if cid in st.categories:
            ctx.log.error(DUPLICATE, f"category id {cid} appears twice", file=name, pointer=ptr, field="id")
            continue
        st.categories[cid] = ctx.label(cname, file=name, pointer=ptr, field="name")


_NUM = (int, float)


def _box(ctx: ReadContext, ann: dict, name: str, ptr: str, w: int | None, h: int | None) -> tuple | None:
    bbox = ann.get("bbox")
    if bbox is None:
        ctx.skip_unsupported("COCO annotations without a bbox (image labels, masks only)", file=name, pointer=ptr)
        return None
    if type(bbox) is not list or len(bbox) != 4:
        ctx.log.error(TYPE, "bbox must be a list [x, y, width, height]", file=name, pointer=ptr, field="bbox")
        return None
    x, y, bw, bh = bbox
    if not (type(x) in _NUM and type(y) in _NUM and type(bw) in _NUM and type(bh) in _NUM):
        ctx.log.error(TYPE, f"bbox values must be numbers, got {json.dumps(bbox)[:80]}", file=name, pointer=ptr,
                      field="bbox")
        return None
    x1, y1 = float(x), float(y)
    x2, y2 = x1 + bw, y1 + bh
    if not ctx.box(x1, y1, x2, y2, w, h, file=name, pointer=ptr, field="bbox"):
        return None
    return (x1, y1, x2, y2)


def _annotations(ctx: ReadContext, name: str, js: JsonStream, st: _State) -> Iterator[Record]:
    forced: Kind | None = ctx.options.kind
    vid = ctx.options.video_id or (next(iter(st.video_ids)) if len(st.video_ids) == 1 else None)
    if js.peek() != "[":
        ctx.log.error(TYPE, "annotations must be a list", file=name, pointer="/annotations")
        js.skip()
        return
    images, categories = st.images, st.categories
    for i, ann in js.values():
        ptr = f"/annotations/{i}"
        if type(ann) is not dict:
            ctx.log.error(TYPE, "an annotation must be an object", file=name, pointer=ptr)
            continue
        iid = ann.get("image_id")
        cid = ann.get("category_id")
        if type(iid) is not int:
            iid = _int_field(ctx, ann, "image_id", name, ptr)
        if type(cid) is not int:
            cid = _int_field(ctx, ann, "category_id", name, ptr)
        if iid is None or cid is None:
            continue
        if iid not in images:
            ctx.log.error(REFERENCE, f"unknown image_id {iid}", file=name, pointer=ptr, field="image_id")
            continue
        if cid not in categories:
            ctx.log.error(REFERENCE, f"unknown category_id {cid}", file=name, pointer=ptr, field="category_id")
            continue
        img = images[iid]
        label = categories[cid]
        if img is None:  # the image was refused (or belongs to another video): already reported
            continue
        if "keypoints" in ann and ann.get("num_keypoints", 1):
            ctx.skip_unsupported("COCO keypoints", file=name, pointer=ptr, field="keypoints")
        box = _box(ctx, ann, name, ptr, img[1], img[2])
        if label is None or box is None:
            continue
        score = ann.get("score")
        if score is not None and forced != "annotations":
            track = ann.get("track_id", ann.get("instance_id"))
            track = track if type(track) is int else None
            if not ctx.result_values(score, track, file=name, pointer=ptr):
                continue
            yield Detection(img[0], label, box, float(score), track, img[3], vid)
            continue
        if forced == "results":
            ctx.log.error(STRUCTURE, "a result needs a score", file=name, pointer=ptr, field="score")
            continue
        if "attributes" not in ann and not ann.get("iscrowd"):
            track = ann.get("track_id", ann.get("instance_id"))  # instance_id: COCO-VID (mmtracking, TAO)
            if track is None or type(track) is int:  # the common case, without per-field checks
                yield Annotation(img[0], label, box, track, img[3], True, False, False, 1.0, None, {}, vid)
                continue
        rec = _annotation(ctx, ann, name, ptr, img, label, box)
        if rec is not None:
            rec.video_id = vid
            yield rec


def _annotation(ctx: ReadContext, ann: dict, name: str, ptr: str, img: tuple, label: str,
                box: tuple) -> Annotation | None:
    attrs = ann.get("attributes") or {}
    if not isinstance(attrs, dict):
        ctx.log.error(TYPE, "attributes must be an object", file=name, pointer=ptr, field="attributes")
        return None
    attrs = dict(attrs)
    track = ann.get("track_id", ann.get("instance_id", attrs.get("track_id")))
    attrs.pop("track_id", None)
    if track is not None and (not isinstance(track, int) or isinstance(track, bool)):
        ctx.log.error(TYPE, "track_id must be an integer", file=name, pointer=ptr, field="track_id")
        return None
    conf = attrs.pop("confidence", 1.0)
    vis = attrs.pop("visibility", None)
    for key, v in (("confidence", conf), ("visibility", vis)):
        if v is not None and not ctx.finite(v, file=name, pointer=ptr, field=f"attributes.{key}"):
            return None
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1):
        ctx.log.error(TYPE, "iscrowd must be 0 or 1", file=name, pointer=ptr, field="iscrowd")
        return None
    if crowd:
        attrs["iscrowd"] = 1
    return Annotation(img[0], label, box, track, img[3], bool(attrs.pop("keyframe", True)),
                      bool(attrs.pop("outside", False)), bool(attrs.pop("occluded", False)), float(conf),
                      None if vis is None else float(vis), attrs)


def _results_list(ctx: ReadContext, name: str, js: JsonStream,
                  gt: tuple[_Images, dict[int, str | None]] | None) -> Iterator[Record]:
    classes = ctx.labels.classes
    if gt is None and classes is None:
        raise ctx.log.fatal(STRUCTURE, "a COCO results list refers to images and categories elsewhere: give the "
                                       "project's classes", file=name)
    # category id -> the name it stands for, from label_map keys that are category ids ({"3": "car"})
    by_id = {int(k): v for k, v in ctx.options.label_map.items() if k.strip().isdigit()}
    told: set[int] = set()
    for i, res in js.values():
        ptr = f"/{i}"
        if not isinstance(res, dict):
            ctx.log.error(TYPE, "a result must be an object", file=name, pointer=ptr)
            continue
        iid = _int_field(ctx, res, "image_id", name, ptr)
        cid = _int_field(ctx, res, "category_id", name, ptr)
        if iid is None or cid is None:
            continue
        if gt is not None:
            if iid not in gt[0]:
                ctx.log.error(REFERENCE, f"unknown image_id {iid}", file=name, pointer=ptr, field="image_id")
                continue
            if cid not in gt[1]:
                ctx.log.error(REFERENCE, f"unknown category_id {cid}", file=name, pointer=ptr, field="category_id")
                continue
            img, label = gt[0][iid], gt[1][cid]
        else:
            assert classes is not None
            label = _result_category(ctx, cid, by_id, classes, told, name, ptr)
            frame = (iid - 1) % IMAGE_ID_STRIDE
            if iid < 1 or not ctx.frame(frame, file=name, pointer=ptr, field="image_id"):
                continue
            img = (frame, None, None, None)
        score = res.get("score")
        if score is None:
            ctx.log.error(STRUCTURE, "a result needs a score", file=name, pointer=ptr, field="score")
            continue
        box = _box(ctx, res, name, ptr, img[1] if img else None, img[2] if img else None)
        track = res.get("track_id")
        track = track if type(track) is int else None
        if img is None or label is None or box is None or not ctx.result_values(score, track, file=name, pointer=ptr):
            continue
        yield Detection(img[0], label, box, float(score), track, img[3], ctx.options.video_id)


def _result_category(ctx: ReadContext, cid: int, by_id: dict[int, str], classes: list[str], told: set[int],
                     name: str, ptr: str) -> str | None:
    """The project label of a bare results list's ``category_id``: never by position silently.

    With category ids in ``label_map`` they are looked up there; without, the ids are the
    platform's own COCO numbering (1..N in the project's label order, as its COCO export of the
    video writes them), and each category read that way is reported once.
    """
    where = {"file": name, "pointer": ptr, "field": "category_id"}
    if by_id:
        if cid not in by_id:
            ctx.log.error(REFERENCE, f"category_id {cid} is not among the category ids in label_map "
                                     f"({', '.join(str(k) for k in sorted(by_id))}); add \"{cid}\": \"<label>\"",
                          **where)
            return None
        return ctx.label(by_id[cid], **where)
    if not 1 <= cid <= len(classes):
        ctx.log.error(REFERENCE, f"unknown category_id {cid}: a results list without categories is read with the "
                                 f"platform's COCO numbering (1..{len(classes)}, the project's labels in order); "
                                 f"give label_map with category ids as keys, e.g. {{\"{cid}\": \"<label>\"}}", **where)
        return None
    label = classes[cid - 1]
    if cid not in told:
        told.add(cid)
        ctx.log.warning(CLASS_MAPPED, f"category_id {cid} read as {label!r}, label {cid} of the project in the "
                                      "platform's COCO numbering; if the file comes from another tool, give "
                                      f"label_map with its category ids, e.g. {{\"{cid}\": \"<label>\"}}", **where)
    return label


def _load_gt(ctx: ReadContext, path: str) -> tuple[_Images, dict[int, str | None]]:
    st = _State()
    with open_source(path, ctx.options.limits) as src:
        names = [n for n in src.names() if n.lower().endswith(".json")] or src.names()
        with src.open_text(names[0]) as fp:
            js = JsonStream(fp)
            try:
                for key in js.object():
                    if key == "images":
                        _images(ctx, names[0], js, st)
                    elif key == "categories":
                        _categories(ctx, names[0], js, st)
                    else:
                        js.skip()
            except JsonSyntaxError as exc:
                raise ctx.log.fatal(WRONG_FORMAT, f"the ground truth file is not COCO JSON: {exc.reason}",
                                    file=names[0], line=exc.line) from None
    return st.images, st.categories


# ----------------------------------------------------------------------------- writing


def image_id(video_index: int, frame_number: int) -> int:
    return video_index * IMAGE_ID_STRIDE + frame_number + 1


def _video_index(videos: Sequence[VideoInfo]) -> dict[str | None, int]:
    index: dict[str | None, int] = {None: 0}
    for i, v in enumerate(videos):
        index[v.video_id] = i
        index.setdefault(v.name, i)
    return index


def write(dest: str | IO[str] | Any, records: Iterable[Record], *, videos: VideoInfo | Sequence[VideoInfo],
          classes: Sequence[str], frames: Iterable[FrameInfo] | None = None, kind: Kind = "annotations") -> int:
    """Write COCO (ground truth document, or the results list when ``kind="results"``); returns the count.

    With ``frames`` every listed frame becomes an image (so frames without objects count in
    evaluation) and is written before the annotations; without, images are the frames that
    have annotations, written after them.
    """
    vids = [videos] if isinstance(videos, VideoInfo) else list(videos)
    if not vids:
        raise ValueError("at least one video is needed")
    cat_ids = {c: i + 1 for i, c in enumerate(classes)}
    vindex = _video_index(vids)
    fp, close = open_text_out(dest)
    try:
        if kind == "results":
            return _write_results(fp, records, cat_ids, vindex)
        return _write_document(fp, records, vids, classes, cat_ids, vindex, frames)
    finally:
        if close:
            fp.close()


def _write_results(fp: IO[str], records: Iterable[Record], cat_ids: dict[str, int],
                   vindex: dict[str | None, int]) -> int:
    out = JsonArrayWriter(fp)
    n = 0
    for r in records:
        x1, y1, x2, y2 = r.box
        score = r.score if isinstance(r, Detection) else r.confidence
        iid = image_id(vindex[r.video_id], r.frame_number)
        extra = f',"track_id":{r.track_id}' if r.track_id is not None else ""
        out.add_encoded(f'{{"image_id":{iid},"category_id":{cat_ids[r.label]},"bbox":[{fmt_num(x1)},{fmt_num(y1)},'
                        f'{fmt_num(x2 - x1)},{fmt_num(y2 - y1)}],"score":{fmt_num(score)}{extra}}}')
        n += 1
    out.close()
    return n


def _image_json(video: VideoInfo, vi: int, frame: int, ts: float | None) -> str:
    vid = video.video_id if video.video_id is not None else video.name
    return json.dumps({
        "id": image_id(vi, frame), "width": video.width, "height": video.height,
        "file_name": f"{video.name}/frame_{frame:06d}.jpg", "video_id": vid, "frame_number": frame,
        "timestamp": ts,
    }, separators=(",", ":"), allow_nan=False)


def _write_document(fp: IO[str], records: Iterable[Record], vids: list[VideoInfo], classes: Sequence[str],
                    cat_ids: dict[str, int], vindex: dict[str | None, int],
                    frames: Iterable[FrameInfo] | None) -> int:
    head = {
        "info": {"description": "VRU validation platform export", "version": "1.0"},
        "licenses": [],
        "categories": [{"id": cat_ids[c], "name": c, "supercategory": ""} for c in classes],
        "videos": [{"id": i + 1, "video_id": v.video_id, "name": v.name, "width": v.width, "height": v.height,
                    "frame_count": v.frame_count, "fps": v.fps} for i, v in enumerate(vids)],
    }
    text = json.dumps(head, separators=(",", ":"), allow_nan=False)
    fp.write(text[:-1])
    written_images: set[int] | None = None
    if frames is not None:
        written_images = set()
        fp.write(',"images":')
        out = JsonArrayWriter(fp)
        for f in frames:
            vi = vindex[f.video_id]
            iid = image_id(vi, f.frame_number)
            if iid in written_images:
                continue
            written_images.add(iid)
            out.add_encoded(_image_json(vids[vi], vi, f.frame_number, f.timestamp))
        out.close()
    fp.write(',"annotations":')
    out = JsonArrayWriter(fp)
    seen: dict[int, tuple[int, int, float | None]] = {}
    n = 0
    for r in records:
        if isinstance(r, Annotation) and r.outside:
            continue
        vi = vindex[r.video_id]
        iid = image_id(vi, r.frame_number)
        if written_images is not None:
            if iid not in written_images:
                raise ValueError(f"annotation on frame {r.frame_number} which is not among the frames given")
        elif iid not in seen:
            seen[iid] = (vi, r.frame_number, r.timestamp)
        x1, y1, x2, y2 = r.box
        w, h = x2 - x1, y2 - y1
        n += 1
        extra = ""
        if r.track_id is not None:
            extra += f',"track_id":{r.track_id}'
        if isinstance(r, Detection):
            extra += f',"score":{fmt_num(r.score)}'
            crowd = 0
        else:
            attrs = r.attributes
            crowd = 1 if attrs.get("iscrowd") else 0
            if attrs or r.occluded or not r.keyframe or r.confidence != 1.0 or r.visibility is not None:
                a = {k: v for k, v in attrs.items() if k != "iscrowd"}
                if r.occluded:
                    a["occluded"] = True
                if not r.keyframe:
                    a["keyframe"] = False
                if r.confidence != 1.0:
                    a["confidence"] = r.confidence
                if r.visibility is not None:
                    a["visibility"] = r.visibility
                if a:
                    extra += ',"attributes":' + json.dumps(a, separators=(",", ":"), allow_nan=False)
        out.add_encoded(f'{{"id":{n},"image_id":{iid},"category_id":{cat_ids[r.label]},"bbox":[{fmt_num(x1)},'
                        f'{fmt_num(y1)},{fmt_num(w)},{fmt_num(h)}],"area":{fmt_num(w * h)},"iscrowd":{crowd},'
                        f'"segmentation":[]{extra}}}')
    out.close()
    if written_images is None:
        fp.write(',"images":')
        imgs = JsonArrayWriter(fp)
        for iid in sorted(seen):
            vi, frame, ts = seen[iid]
            imgs.add_encoded(_image_json(vids[vi], vi, frame, ts))
        imgs.close()
    fp.write("}\n")
    return n

