"""CVAT for video 1.1 XML: tracks of boxes with keyframe / outside / occluded flags.

CVAT writes each shape's ``frame`` as the video's own 0-based frame number; a task that
starts at ``start_frame`` and keeps every ``step``-th frame (``frame_filter`` ``step=N``) only
has shapes on ``start_frame + k * step``, which is checked. Shapes other than boxes (points,
polylines, polygons, skeletons, masks...) are skipped and reported.

The file is parsed incrementally with defusedxml's SAX parser: entity declarations and
external references are refused, and memory does not grow with the file.
"""
from __future__ import annotations

import json
import xml.sax
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any
from xml.sax.expatreader import ExpatLocator
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.sax import make_parser

from .base import ReadContext, Reader, ReadOptions, fmt_num, open_text_out
from .errors import (
    DUPLICATE,
    END_BEFORE_START,
    FRAME_RANGE,
    REFERENCE,
    STRUCTURE,
    TYPE,
    UNSAFE_XML,
    UNSUPPORTED,
    VIDEO_MISMATCH,
    WRONG_FORMAT,
)
from .records import Annotation, Record, VideoInfo

_META_FIELDS = {"start_frame", "stop_frame", "frame_filter", "size", "mode", "width", "height", "name"}


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a CVAT for video 1.1 file (XML, or a zip holding one) for import."""
    return Reader(_records, path, video=video, classes=classes, options=options)


class _Handler(xml.sax.ContentHandler):
    def __init__(self, ctx: ReadContext, member: str) -> None:
        super().__init__()
        self.ctx, self.member = ctx, member
        self.out: list[Annotation] = []
        self.stack: list[str] = []
        self.text: list[str] | None = None
        self.meta: dict[str, str] = {}
        self.declared: set[str] = set()
        self.meta_done = False
        self.start, self.stop, self.step = 0, None, 1
        self.track: tuple[int | None, str | None] | None = None  # (id, project label) of the open track
        self.track_ids: set[int] = set()
        self.box: dict[str, Any] | None = None
        self.attr_name: str | None = None
        self.locator: Any = None
        self.saw_root = False
        self.unsupported = 0
        self.skipped_tracks: set[int | None] = set()
        self.track_label: str | None = None  # the open track's label as the file names it
        self.track_where: dict[str, Any] = {}
        self.label_resolved = False

    def _skip(self, what: str) -> None:
        """A shape or track of a kind we do not import: a warning where it is, and reading goes on."""
        self.unsupported += 1
        self.ctx.log.warning(UNSUPPORTED, f"{what}; skipped: only bounding boxes are imported", **self._where())

    def setDocumentLocator(self, locator: Any) -> None:  # noqa: N802 (SAX API)
        self.locator = locator

    def _where(self, field: str | None = None) -> dict[str, Any]:
        line = self.locator.getLineNumber() if self.locator else None
        return {"file": self.member, "line": line, "field": field}

    # --- meta ---

    def _finish_meta(self) -> None:
        if self.meta_done:
            return
        self.meta_done = True
        ctx, m = self.ctx, self.meta
        where = {"file": self.member}
        try:
            self.start = int(m.get("start_frame") or 0)
            self.stop = int(m["stop_frame"]) if m.get("stop_frame") else None
        except ValueError:
            ctx.log.error(TYPE, "start_frame and stop_frame must be integers", **where, field="start_frame")
        ff = (m.get("frame_filter") or "").strip()
        if ff:
            if ff.startswith("step=") and ff[5:].strip().isdigit() and int(ff[5:]) > 0:
                self.step = int(ff[5:])
            else:
                ctx.log.error(STRUCTURE, f"frame_filter {ff!r} is not understood (expected step=N)", **where,
                              field="frame_filter")
        if self.stop is not None and self.stop < self.start:
            ctx.log.refuse(END_BEFORE_START, f"stop_frame {self.stop} is before start_frame {self.start}", **where,
                           field="stop_frame")
        video = ctx.video
        if video is None:
            return
        try:
            w, h = int(m["width"]), int(m["height"])
        except (KeyError, ValueError):
            w = h = None  # type: ignore[assignment]
        if w is not None and (w, h) != (video.width, video.height):
            ctx.log.refuse(VIDEO_MISMATCH, f"the task's frames are {w}x{h}; the video is {video.width}x{video.height}",
                           **where, field="original_size")
        if self.stop is not None and video.frame_count is not None and self.stop >= video.frame_count:
            ctx.log.refuse(VIDEO_MISMATCH, f"the task runs to frame {self.stop}; the video has {video.frame_count} "
                                           f"frames (0..{video.frame_count - 1})", **where, field="stop_frame")

    # --- SAX events ---

    def startElement(self, name: str, attrs: Any) -> None:  # noqa: N802 (SAX API)
        stack = self.stack
        depth = len(stack)
        stack.append(name)
        if depth == 0:
            self.saw_root = True
            if name != "annotations":
                raise _NotCvat(f"root element is <{name}>, not <annotations>")
            return
        if stack[1] == "meta":
            if name in _META_FIELDS and (name != "name" or (depth >= 2 and stack[-2] in ("task", "job"))):
                self.text = []
            if name == "name" and depth >= 2 and stack[-2] == "label":
                self.text = []
            return
        if depth == 1:
            if name in ("version", "meta"):
                return
            self._finish_meta()
            if name == "image":
                raise _NotCvat("this is CVAT for images (it has <image> elements); export the task as CVAT for video")
            if name == "track":
                self._open_track(attrs)
            elif name in ("tag", "shape"):
                self._skip(f"a <{name}> element (frame {attrs.get('frame')!r}, label {attrs.get('label')!r}) is not "
                           "a track of boxes")
            return
        if depth == 2 and stack[1] == "track" and self.track is not None:
            if name == "box":
                self.box = dict(attrs.items())
                self.box["_line"] = self.locator.getLineNumber() if self.locator else None
                self.box["_attrs"] = {}
            elif name != "track" and self.track[0] not in self.skipped_tracks:
                # a skeleton's parts are tracks nested in it: skipped with it
                self.skipped_tracks.add(self.track[0])
                self._skip(f"track {self.track[0]} (label {self.track_label!r}) holds {name} shapes, not boxes")
            return
        if depth == 3 and self.box is not None and name == "attribute":
            self.attr_name = attrs.get("name")
            self.text = []

    def characters(self, content: str) -> None:
        if self.text is not None:
            self.text.append(content)

    def endElement(self, name: str) -> None:  # noqa: N802 (SAX API)
        stack = self.stack
        depth = len(stack) - 1
        stack.pop()
        text = "".join(self.text).strip() if self.text is not None else None
        self.text = None
        if depth == 1 and name == "meta":
            self._finish_meta()
            return
        if text is not None and depth >= 1 and len(stack) >= 2 and stack[1] == "meta":
            if name == "name" and stack[-1] == "label":
                self.declared.add(text)
            elif name in _META_FIELDS and name not in self.meta:
                self.meta[name] = text
            return
        if depth == 3 and name == "attribute" and self.box is not None and self.attr_name is not None:
            self.box["_attrs"][self.attr_name] = text or ""
            self.attr_name = None
        elif depth == 2 and name == "box" and self.box is not None:
            self._close_box()
        elif depth == 1 and name == "track":
            self.track = None

    def endDocument(self) -> None:
        self._finish_meta()

    # --- tracks and boxes ---

    def _open_track(self, attrs: Any) -> None:
        ctx = self.ctx
        where = self._where()
        tid_text, label_name = attrs.get("id"), attrs.get("label")
        self.track_label, self.track_where, self.label_resolved = label_name, where, False
        try:
            tid = int(tid_text)
        except (TypeError, ValueError):
            ctx.log.error(TYPE, f"track id must be an integer, got {tid_text!r}", **{**where, "field": "id"})
            self.track = (None, None)
            self.label_resolved = True
            return
        if tid in self.track_ids:
            ctx.log.error(DUPLICATE, f"track id {tid} appears twice", **{**where, "field": "id"})
        self.track_ids.add(tid)
        self.track = (tid, None)  # the label is resolved at the track's first box: other kinds are skipped

    def _track_label(self) -> str | None:
        """The project class of the open track, checked once (tracks of skipped kinds never are)."""
        assert self.track is not None
        if self.label_resolved:
            return self.track[1]
        self.label_resolved = True
        ctx, where, label_name = self.ctx, {**self.track_where, "field": "label"}, self.track_label
        label: str | None = None
        if label_name is None:
            ctx.log.error(STRUCTURE, "track has no label", **where)
        elif self.declared and label_name not in self.declared:
            ctx.log.error(REFERENCE, f"label {label_name!r} is not declared in the task's labels", **where)
        else:
            label = ctx.label(label_name, **where)
        self.track = (self.track[0], label)
        return label

    def _close_box(self) -> None:
        box, self.box = self.box, None
        assert box is not None and self.track is not None
        ctx = self.ctx
        where = {"file": self.member, "line": box.pop("_line"), "field": None}
        attrs = box.pop("_attrs")
        label = self._track_label()
        tid = self.track[0]
        nums: dict[str, float] = {}
        for key in ("xtl", "ytl", "xbr", "ybr"):
            try:
                nums[key] = float(box[key])
            except KeyError:
                ctx.log.error(STRUCTURE, f"box has no {key}", **{**where, "field": key})
                return
            except ValueError:
                ctx.log.error(TYPE, f"{key} must be a number, got {box[key]!r}", **{**where, "field": key})
                return
        flags: dict[str, bool] = {}
        for key, default in (("outside", "0"), ("occluded", "0"), ("keyframe", "1")):
            v = box.get(key, default)
            if v not in ("0", "1", "true", "false", "True", "False"):
                ctx.log.error(TYPE, f"{key} must be 0 or 1, got {v!r}", **{**where, "field": key})
                return
            flags[key] = v in ("1", "true", "True")
        try:
            frame = int(box["frame"])
        except (KeyError, ValueError):
            ctx.log.error(TYPE, f"frame must be an integer, got {box.get('frame')!r}", **{**where, "field": "frame"})
            return
        rotation = box.get("rotation")
        if rotation not in (None, "0", "0.0", "0.00"):
            ctx.skip_unsupported("CVAT rotated boxes", **{**where, "field": "rotation"})
            return
        if frame < self.start or (self.stop is not None and frame > self.stop) or (frame - self.start) % self.step:
            stop = self.stop if self.stop is not None else "end"
            ctx.log.error(FRAME_RANGE, f"frame {frame} is not one of the task's frames ({self.start}..{stop} "
                                       f"step {self.step})", **{**where, "field": "frame"})
            return
        if not ctx.frame(frame, **{**where, "field": "frame"}):
            return
        x1, y1, x2, y2 = nums["xtl"], nums["ytl"], nums["xbr"], nums["ybr"]
        if not ctx.box(x1, y1, x2, y2, **{**where, "field": "xtl,ytl,xbr,ybr"}):
            return
        if label is None:
            return
        self.out.append(Annotation(frame, label, (x1, y1, x2, y2), tid, None, flags["keyframe"], flags["outside"],
                                   flags["occluded"], 1.0, None, attrs, self.ctx.options.video_id))


class _NotCvat(Exception):
    pass


def _records(ctx: ReadContext) -> Iterator[Annotation]:
    names = [n for n in ctx.source.names() if n.lower().endswith(".xml")] or ctx.source.names()
    if len(names) != 1:
        raise ctx.log.fatal(WRONG_FORMAT, "expected one CVAT XML file" + (f", found {len(names)}" if names else ""))
    member = names[0]
    handler = _Handler(ctx, member)
    parser = make_parser()
    parser.setContentHandler(handler)
    handler.setDocumentLocator(ExpatLocator(parser))  # feed() alone never hands one over
    parser.setFeature(xml.sax.handler.feature_namespaces, False)
    try:
        with ctx.source.open_binary(member) as fp:
            while True:
                chunk = fp.read(1 << 16)
                if not chunk:
                    break
                parser.feed(chunk)
                if handler.out:
                    yield from handler.out
                    handler.out.clear()
            parser.close()
    except DefusedXmlException as exc:
        raise ctx.log.fatal(UNSAFE_XML, f"refused: {exc}", file=member) from None
    except _NotCvat as exc:
        raise ctx.log.fatal(WRONG_FORMAT, str(exc), file=member,
                            line=handler.locator.getLineNumber() if handler.locator else None) from None
    except xml.sax.SAXParseException as exc:
        code = WRONG_FORMAT if not handler.saw_root else STRUCTURE
        raise ctx.log.fatal(code, f"not well-formed XML: {exc.getMessage()}", file=member,
                            line=exc.getLineNumber()) from None
    yield from handler.out
    handler.out.clear()
    if handler.unsupported and ctx.emitted == 0:
        ctx.log.error(UNSUPPORTED, f"the file holds no boxes: {handler.unsupported} tracks or shapes of other kinds "
                                   "were skipped; only bounding boxes can be imported", file=member)


# ----------------------------------------------------------------------------- writing


def write(dest: str | IO[str] | Any, records: Iterable[Record], *, video: VideoInfo, classes: Sequence[str]) -> int:
    """Write CVAT for video 1.1; records must come ordered by track id (untracked ones last), then frame.

    Untracked annotations become one-box tracks numbered after the largest track id seen.
    Confidence and visibility have no place in CVAT and are not written.
    """
    fp, close = open_text_out(dest)
    count = video.frame_count
    # without a known length, leave the task open-ended rather than claim frame 0 is the last
    extent = (f"      <size>{count}</size>\n" if count else "") + "      <mode>interpolation</mode>\n" \
        "      <start_frame>0</start_frame>\n" + (f"      <stop_frame>{count - 1}</stop_frame>\n" if count else "")
    try:
        labels = "".join(f"\n        <label>\n          <name>{escape(c)}</name>\n          <attributes>\n"
                         f"          </attributes>\n        </label>" for c in classes)
        fp.write(
            '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  <meta>\n    <task>\n'
            f"      <name>{escape(video.name)}</name>\n{extent}"
            f"      <frame_filter></frame_filter>\n      <labels>{labels}\n      </labels>\n"
            f"      <original_size>\n        <width>{video.width}</width>\n        <height>{video.height}</height>\n"
            f"      </original_size>\n    </task>\n    <source>{escape(video.name)}</source>\n  </meta>\n")
        n = 0
        current: int | None = None
        current_label: str | None = None
        finished: set[int] = set()
        next_free = 0
        buf: list[str] = []
        for r in records:
            if not isinstance(r, Annotation):
                raise TypeError("CVAT for video holds annotations, not detection results")
            tid = r.track_id
            if tid is None:
                tid = next_free
                next_free += 1
            elif tid in finished:
                raise ValueError(f"track {tid} appears again after other tracks: order records by track id")
            if tid != current:
                if current is not None:
                    buf.append("  </track>\n")
                    finished.add(current)
                current, current_label = tid, r.label
                next_free = max(next_free, tid + 1)
                buf.append(f"  <track id=\"{tid}\" label={quoteattr(r.label)} source=\"manual\">\n")
            elif r.label != current_label:
                raise ValueError(f"track {tid} changes label from {current_label!r} to {r.label!r}")
            x1, y1, x2, y2 = r.box
            buf.append(f'    <box frame="{r.frame_number}" outside="{int(r.outside)}" occluded="{int(r.occluded)}" '
                       f'keyframe="{int(r.keyframe)}" xtl="{fmt_num(x1)}" ytl="{fmt_num(y1)}" xbr="{fmt_num(x2)}" '
                       f'ybr="{fmt_num(y2)}" z_order="0">\n')
            for k, v in r.attributes.items():
                text = json.dumps(v, allow_nan=False) if isinstance(v, dict | list) else str(v)  # KITTI's 3D fields
                buf.append(f"      <attribute name={quoteattr(str(k))}>{escape(text)}</attribute>\n")
            buf.append("    </box>\n")
            n += 1
            if len(buf) >= 4096:
                fp.write("".join(buf))
                buf.clear()
        if current is not None:
            buf.append("  </track>\n")
        buf.append("</annotations>\n")
        fp.write("".join(buf))
        return n
    finally:
        if close:
            fp.close()
