"""Label Studio video: the JSON export of tasks whose results are ``videorectangle`` regions.

A region is one track; its ``value.sequence`` lists keyframes ``{frame, enabled, x, y, width,
height, rotation, time}`` with ``frame`` 1-based and the box in percent of the frame. Label
Studio interpolates between consecutive keyframes; a keyframe with ``enabled: false`` ends a
segment (the object is shown on that frame, then gone until the next keyframe), and a region
whose last keyframe is enabled runs to the end of the video.

Reading converts to the records' conventions and says so: 1-based frames become 0-based,
percent becomes pixels of the target video (so its frame size is needed), a gap becomes an
``outside`` record on the frame after a segment's end, and a region running to the end gets a
record on the video's last frame. Text region ids become track numbers (reported). Results are
the tasks' ``predictions`` (with ``score``); annotations their ``annotations``.

Reading streams: tasks, annotations and regions are walked one at a time (see
:mod:`formats.jsonstream`); memory holds one region's keyframes.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import IO, Any

from .base import ReadContext, Reader, ReadOptions, fmt_num, is_number, open_text_out, option
from .errors import FRAME_BASE, STRUCTURE, TYPE, UNSUPPORTED, WRONG_FORMAT
from .jsonstream import JsonStream, JsonSyntaxError, pointer
from .records import Annotation, Detection, Kind, Record, VideoInfo


def read(path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
         options: ReadOptions | None = None) -> Reader:
    """Open a Label Studio JSON export (a list of tasks, or one task) for import."""
    return Reader(_records, path, video=video, classes=classes, options=options)


def _member(ctx: ReadContext) -> str:
    names = [n for n in ctx.source.names() if n.lower().endswith(".json")] or ctx.source.names()
    if len(names) != 1:
        raise ctx.log.fatal(WRONG_FORMAT, "expected one Label Studio JSON export" +
                            (f", found {len(names)} files" if names else ""))
    return names[0]


def _task_names(task_id: Any, data: Any) -> set[str]:
    """What ``source_video_id`` may name a task by: its id, its video's file name and stem."""
    names = {str(task_id)} if task_id is not None else set()
    if isinstance(data, dict):
        for v in data.values():
            if isinstance(v, str) and v:
                base = PurePosixPath(v.split("?", 1)[0]).name
                names |= {v, base, base.rsplit(".", 1)[0]}
    return names


def _skip(js: JsonStream, key: str | None = None) -> None:
    """Skip the value here element by element: an annotation holding every track is never one value
    (a keyframe ``sequence`` is a list of small objects, skipped by the fast path)."""
    ch = js.peek()
    if ch == "[" and key == "sequence":
        for _ in js.values():
            pass
    elif ch == "[":
        for _ in js.array():
            _skip(js)
    elif ch == "{":
        for k in js.object():
            _skip(js, k)
    else:
        js.value()


def _tasks(js: JsonStream) -> Iterator[int]:
    """Each task's index with the stream on it; a single task object is a list of one."""
    if js.peek() == "{":
        yield 0
        return
    yield from js.array()


def _choose(ctx: ReadContext, member: str) -> int | None:
    """Which task to read: the only one, or the one ``source_video_id`` names (a first, light pass)."""
    want = ctx.options.video_id
    found: list[tuple[int, set[str]]] = []
    with ctx.source.open_text(member) as fp:
        js = JsonStream(fp)
        if js.peek() not in ("[", "{"):
            raise ctx.log.fatal(WRONG_FORMAT, "not a Label Studio export: expected a list of tasks", file=member)
        for i in _tasks(js):
            if js.peek() != "{":
                ctx.log.error(TYPE, "a task must be an object", file=member, pointer=pointer(i))
                _skip(js)
                continue
            task_id = data = None
            for key in js.object():
                if key == "id":
                    task_id = js.value()
                elif key == "data":
                    data = js.value()
                else:
                    _skip(js)
            found.append((i, _task_names(task_id, data)))
    if want is not None:
        picked = [i for i, names in found if str(want) in names]
        if not picked:
            raise ctx.log.fatal(STRUCTURE, f"no task has id or video {want!r} ({option('source_video_id')})",
                                file=member)
        return picked[0]
    if len(found) > 1:
        ctx.log.refuse(STRUCTURE, f"the export holds {len(found)} tasks (videos); choose one with "
                                  f"{option('source_video_id')} (a task id or its video's file name)", file=member)
        return None
    return found[0][0] if found else None


def _records(ctx: ReadContext) -> Iterator[Record]:
    member = _member(ctx)
    video = ctx.video
    if video is None:
        raise ctx.log.fatal(STRUCTURE, "Label Studio boxes are in percent: the target video's frame size is needed")
    try:
        chosen = _choose(ctx, member)
        if chosen is None:
            return
        kind: Kind = ctx.options.kind or "annotations"
        section = "predictions" if kind == "results" else "annotations"
        reader = _RegionReader(ctx, member, kind)
        with ctx.source.open_text(member) as fp:
            js = JsonStream(fp)
            for i in _tasks(js):
                if i != chosen or js.peek() != "{":
                    _skip(js)
                    continue
                for key in js.object():
                    if key != section or js.peek() != "[":
                        _skip(js)
                        continue
                    for a in js.array():
                        if js.peek() != "{":
                            _skip(js)
                            continue
                        score = None
                        for akey in js.object():
                            if akey == "score":
                                score = js.value()
                            elif akey == "result" and js.peek() == "[":
                                for r in js.array():
                                    ptr = pointer(i, section, a, "result", r)
                                    yield from reader.region(*reader.walk(js, ptr), ptr, score)
                            else:
                                _skip(js)
        if reader.frames_seen:
            ctx.log.warning(FRAME_BASE, "Label Studio numbers frames from 1: frame N was read as video frame N - 1",
                            file=member)
        if reader.renumbered:
            shown = ", ".join(f"{k!r} -> {v}" for k, v in list(reader.renumbered.items())[:5])
            ctx.log.warning(STRUCTURE, f"{len(reader.renumbered)} region ids are not numbers and became track "
                                       f"numbers in file order ({shown})", file=member)
    except JsonSyntaxError as exc:
        raise ctx.log.fatal(STRUCTURE, f"invalid JSON: {exc.reason}", file=member, line=exc.line) from None
    except UnicodeDecodeError as exc:
        raise ctx.log.fatal(WRONG_FORMAT, f"not UTF-8 text: {exc.reason}", file=member) from None


class _RegionReader:
    def __init__(self, ctx: ReadContext, member: str, kind: Kind) -> None:
        self.ctx, self.member, self.kind = ctx, member, kind
        self.renumbered: dict[str, int] = {}
        self.used: set[int] = set()
        self.frames_seen = False
        video = ctx.video
        assert video is not None
        self.W, self.H = float(video.width), float(video.height)  # noqa: N803 (frame size)

    def _track(self, rid: Any) -> int:
        if isinstance(rid, int) and not isinstance(rid, bool):
            tid = rid
        elif isinstance(rid, str) and rid.isdigit():
            tid = int(rid)
        else:
            if rid in self.renumbered:
                return self.renumbered[rid]
            tid = max(self.used, default=0) + 1
            self.renumbered[str(rid)] = tid
        self.used.add(tid)
        return tid

    def walk(self, js: JsonStream, ptr: str) -> tuple[Any, list | None]:
        """A region with its keyframes parsed one at a time (a track's sequence is never one big value)."""
        if js.peek() != "{":
            return js.value(), None
        region: dict[str, Any] = {}
        keys: list | None = None
        for key in js.object():
            if key != "value" or js.peek() != "{":
                region[key] = js.value()
                continue
            value: dict[str, Any] = {}
            for vkey in js.object():
                if vkey == "sequence" and js.peek() == "[":
                    keys = []
                    for k, kf in js.values():
                        got = self._keyframe(kf, {"file": self.member, "pointer": f"{ptr}/value/sequence/{k}"})
                        if got is not None:
                            keys.append((*got, k))
                else:
                    value[vkey] = js.value()
            region["value"] = value
        return region, keys

    def region(self, region: Any, keys: list | None, ptr: str, task_score: Any) -> Iterator[Record]:
        ctx, where = self.ctx, {"file": self.member, "pointer": ptr}
        if not isinstance(region, dict):
            ctx.log.error(TYPE, "a result must be an object", **where)
            return
        rtype = region.get("type")
        if rtype != "videorectangle":
            ctx.log.warning(UNSUPPORTED, f"a {rtype!r} result is not a video box track; skipped: only "
                                         "videorectangle results are imported", **where, field="type")
            return
        value = region.get("value")
        if not isinstance(value, dict) or keys is None:
            ctx.log.error(STRUCTURE, "value.sequence (the keyframes) is missing", **where, field="value")
            return
        labels = value.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
            ctx.log.error(STRUCTURE, "value.labels must name the region's class", **where, field="value.labels")
            return
        if len(labels) > 1:
            ctx.log.warning(STRUCTURE, f"the region has {len(labels)} labels; the first, {labels[0]!r}, is used",
                            **where, field="value.labels")
        label = ctx.label(labels[0], **where, field="value.labels")
        score = region.get("score", task_score)
        tid = self._track(region.get("id"))
        if label is None:
            return
        keys.sort(key=lambda t: t[0])
        last_frame = ctx.video.frame_count - 1 if ctx.video and ctx.video.frame_count else None
        for n, (frame, box, enabled, own_score, k) in enumerate(keys):
            kwhere = {**where, "pointer": f"{ptr}/value/sequence/{k}"}
            if not ctx.frame(frame, **kwhere, field="frame") or not ctx.box(*box, **kwhere, field="x,y,width,height"):
                continue
            if self.kind == "results":
                s = own_score if own_score is not None else score
                if not is_number(s) or not math.isfinite(s):
                    ctx.log.error(STRUCTURE, "a prediction needs a finite score (the keyframe's or its region's)",
                                  **kwhere, field="score")
                    continue
                yield self._record(frame, label, box, tid, s, True, False)
                continue  # a prediction is its keyframes: no absence or extension to mark
            yield self._record(frame, label, box, tid, score, True, False)
            following = keys[n + 1][0] if n + 1 < len(keys) else None
            if not enabled and following is not None and following > frame + 1:
                yield self._record(frame + 1, label, box, tid, score, True, True)  # gone until the next keyframe
            elif enabled and following is None and last_frame is not None and last_frame > frame:
                # an enabled last keyframe runs to the end of the video, as Label Studio shows it
                yield self._record(last_frame, label, box, tid, score, False, False)

    def _record(self, frame: int, label: str, box: tuple, tid: int, score: Any, key: bool, outside: bool) -> Record:
        if self.kind == "results":
            return Detection(frame, label, box, float(score), tid, None, self.ctx.options.video_id)
        return Annotation(frame, label, box, tid, None, key, outside, False, 1.0, None, {}, self.ctx.options.video_id)

    def _keyframe(self, key: Any, where: dict[str, Any]) -> tuple[int, tuple, bool, float | None] | None:
        ctx = self.ctx
        if not isinstance(key, dict):
            ctx.log.error(TYPE, "a keyframe must be an object", **where)
            return None
        frame = key.get("frame")
        if not isinstance(frame, int) or isinstance(frame, bool):
            ctx.log.error(TYPE, f"frame must be an integer, got {json.dumps(frame)[:40]}", **where, field="frame")
            return None
        self.frames_seen = True
        nums = []
        for f in ("x", "y", "width", "height"):
            v = key.get(f)
            if not ctx.finite(v, **where, field=f):
                return None
            nums.append(float(v))
        rotation = key.get("rotation", 0)
        if is_number(rotation) and rotation != 0:
            ctx.log.warning(UNSUPPORTED, f"a box rotated by {rotation:g} degrees is not an axis-aligned box; "
                                         "skipped", **where, field="rotation")
            return None
        enabled = key.get("enabled", True)
        if not isinstance(enabled, bool):
            ctx.log.error(TYPE, "enabled must be true or false", **where, field="enabled")
            return None
        x, y, w, h = nums
        box = (x / 100 * self.W, y / 100 * self.H, (x + w) / 100 * self.W, (y + h) / 100 * self.H)
        own = key.get("score")  # written by our export: each detection's own score
        return frame - 1, box, enabled, float(own) if is_number(own) and math.isfinite(own) else None


# ----------------------------------------------------------------------------- writing


def write(dest: str | IO[str] | Any, records: Iterable[Record], *, video: VideoInfo, classes: Sequence[str],
          kind: Kind = "annotations") -> int:
    """One task for the video: a ``videorectangle`` region per track, every box a keyframe.

    Records must come grouped by track (``records_by_track``). Each segment's last box is
    written ``enabled: false`` (so Label Studio neither bridges a gap nor runs a track to the
    end of the video); ``outside`` records only mark where segments end. Untracked records
    become one-frame regions. Results are written as the task's ``predictions``, each detection a
    keyframe that ends its segment unless its track has one on the next frame (nothing in between
    is invented).
    """
    fp, close = open_text_out(dest)
    W, H = float(video.width), float(video.height)  # noqa: N806
    count = video.frame_count or 0
    fps = video.fps or 0.0
    section = "predictions" if kind == "results" else "annotations"
    n = 0
    try:
        meta = json.dumps({"video_id": video.video_id})
        fp.write(f'[{{"data":{json.dumps({"video": video.name})},"meta":{meta},"{section}":[{{"result":[')
        buf: list[str] = []
        current: str | None = None  # the open region's id
        pending: str | None = None  # its latest keyframe, held back until we know whether a segment ends there
        finished: set[int] = set()
        untracked = 0
        first = True
        pending_frame = -2

        def put(key: str | None, enabled: bool) -> None:
            if key is not None:
                buf.append(key.replace("@", "true" if enabled else "false", 1))

        def close_region() -> None:
            put(pending, False)  # a region's last box ends it: it does not run to the end of the video
            if current is not None:
                buf.append("]}}")

        for r in records:
            tid = r.track_id
            if tid is None:
                untracked += 1
                rid = f"u{untracked}"
            elif tid in finished and str(tid) != current:
                raise ValueError(f"track {tid} appears again after other tracks: order records by track")
            else:
                rid = str(tid)
            if rid != current:
                close_region()
                if current is not None:
                    buf.append(",")
                if tid is not None:
                    finished.add(tid)
                current, pending, first = rid, None, True
                score = f',"score":{fmt_num(r.score)}' if isinstance(r, Detection) else ""
                buf.append(f'{{"id":{json.dumps(rid)},"type":"videorectangle","from_name":"box","to_name":"video",'
                           f'"origin":"manual"{score},"value":{{"framesCount":{count},'
                           f'"duration":{fmt_num(count / fps) if fps else 0},"labels":{json.dumps([r.label])},'
                           '"sequence":[')
            if isinstance(r, Annotation) and r.outside:
                put(pending, False)  # the segment ends on its last box
                pending = None
                continue
            # results hold no interpolation: a detection not followed by one on the next frame ends a segment
            put(pending, kind != "results" or r.frame_number == pending_frame + 1)
            pending_frame = r.frame_number
            x1, y1, x2, y2 = r.box
            t = f',"time":{fmt_num(r.frame_number / fps)}' if fps else ""
            if isinstance(r, Detection):  # a region has one score; each detection keeps its own here
                t += f',"score":{fmt_num(r.score)}'
            sep, first = ("" if first else ","), False
            pending = (f'{sep}{{"frame":{r.frame_number + 1},"enabled":@,"rotation":0,"x":{fmt_num(x1 / W * 100)},'
                       f'"y":{fmt_num(y1 / H * 100)},"width":{fmt_num((x2 - x1) / W * 100)},'
                       f'"height":{fmt_num((y2 - y1) / H * 100)}{t}}}')
            n += 1
            if len(buf) >= 4096:
                fp.write("".join(buf))
                buf.clear()
        close_region()
        buf.append("]}]}]\n")
        fp.write("".join(buf))
        return n
    finally:
        if close:
            fp.close()
