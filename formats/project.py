"""Whole projects in the platform's document: every check an import needs before it writes anything.

A project document (``export_type`` ``project`` or ``full``) holds rows of several tables that
refer to each other by id. Before anything is written, :func:`check` reads the whole document
once and reports, with the JSON pointer and field of each: unknown sections and fields, missing
or mistyped values, sections out of dependency order, duplicate ids, references to rows the
document does not hold, spans that end before they start, boxes of no size, frames outside
their video. Memory stays flat in the number of rows: the big sections' ids live in numpy
arrays of 16-byte keys, not in Python sets.

New ids keep the old ones' order: every id is shifted by one random offset (modulo 2**128),
chosen so that no id wraps around. Rows that tie on their creation time are then listed in
the same order by the next export, which makes export -> import -> export exact, and a map of
millions of ids is never held. Column types come from the caller (the database schema is not
this package's business); the reference graph of the sections is the document's own.
"""
from __future__ import annotations

import datetime as dt
import math
import secrets
import uuid
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import ReadOptions
from .errors import (
    BOX_SIZE,
    DUPLICATE,
    END_BEFORE_START,
    FRAME_RANGE,
    NON_FINITE,
    OUT_OF_RANGE,
    REFERENCE,
    STRUCTURE,
    TYPE,
    UNKNOWN_CLASS,
    FormatError,
    Issue,
    IssueLog,
    Report,
)
from .jsonstream import pointer
from .native import read_document

# Dependency order: a section only refers to sections before it.
SECTIONS = ("projects", "requirements", "videos", "assignments", "annotation_sessions", "annotations", "keyframes",
            "test_sessions", "detections")
# column -> section whose ``id`` it must name (None allowed where the column is nullable).
REFERENCES: dict[str, dict[str, str]] = {
    "requirements": {"project_id": "projects"},
    "assignments": {"project_id": "projects", "video_id": "videos"},
    "annotation_sessions": {"project_id": "projects", "video_id": "videos"},
    "annotations": {"annotation_session_id": "annotation_sessions", "video_id": "videos"},
    "keyframes": {"annotation_id": "annotations"},
    "test_sessions": {"project_id": "projects", "video_id": "videos",
                      "ground_truth_session_id": "annotation_sessions"},
    "detections": {"test_session_id": "test_sessions"},
}
# Sections whose ids are kept in arrays rather than dicts (they hold millions of rows).
BIG = ("annotations", "keyframes")
UUID_SPACE = 1 << 128
_CHUNK = 65_536
#: The caller's own checks of one row: ``(severity, code, field, message)`` for each problem.
RowCheck = Callable[[str, dict[str, Any]], Iterable[tuple[str, str, str, str]]]
_KINDS: dict[str, tuple[type, ...]] = {"uuid": (uuid.UUID,), "datetime": (dt.datetime,), "str": (str,),
                                        "int": (int,), "float": (int, float), "bool": (bool,)}


@dataclass(frozen=True, slots=True)
class Column:
    """What a column accepts: ``kind`` is uuid, datetime, str, int, float, bool or json (anything).

    Floats are finite, and so is every number inside a json value; an int fits in ``bits``
    (signed) when given.
    """

    kind: str
    nullable: bool = False
    max_length: int | None = None
    bits: int | None = None


@dataclass(frozen=True, slots=True)
class VideoRow:
    """A video the document refers to; the importer finds its file by ``checksum``."""

    index: int
    id: uuid.UUID
    checksum: str
    filename: str
    project_id: uuid.UUID | None
    in_document: bool  # owned by a project of the document (else it belongs to some other project)
    storage_path: str | None = None  # as the document gives it (never used to find the file)


@dataclass
class ProjectCheck:
    """What :func:`check` found, and what the import needs from that pass."""

    report: Report
    counts: dict[str, int]
    videos: list[VideoRow]
    project_ids: list[uuid.UUID]
    offset: int
    file: str
    log: IssueLog = field(repr=False, default_factory=IssueLog)

    def remap(self, value: uuid.UUID) -> uuid.UUID:
        """The new id of a row of the document (order kept, see the module's docstring)."""
        return uuid.UUID(int=(value.int + self.offset) % UUID_SPACE)

    def add_error(self, code: str, message: str, **where: Any) -> None:
        """An error found by the caller (a video the platform lacks); the report is rebuilt."""
        self.log.error(code, message, file=self.file, **where)
        self.report = _report(self.log, self.report.records_total)

    def add_warning(self, code: str, message: str, **where: Any) -> None:
        """A warning found by the caller (a value it leaves out); the report is rebuilt."""
        self.log.warning(code, message, file=self.file, **where)
        self.report = _report(self.log, self.report.records_total)


def _report(log: IssueLog, total: int) -> Report:
    return Report(log.issues, total, log.errors, log.warnings, log.dropped, [], dict(log.counts))


def _uuid(key: Any) -> uuid.UUID:
    """A 16-byte key back as a UUID (numpy drops trailing zero bytes)."""
    return uuid.UUID(bytes=bytes(key).ljust(16, b"\0"))


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond every float
        return False


def _non_finite(value: Any) -> bool:
    """Whether a json value holds NaN or an infinity anywhere (JSON itself has neither)."""
    if type(value) is float:
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def _box_problem(box: Any) -> tuple[str, str] | None:
    if not isinstance(box, dict):
        return TYPE, "a box is an object with x1, y1, x2, y2"
    try:
        x1, y1, x2, y2 = (box[k] for k in ("x1", "y1", "x2", "y2"))
    except KeyError as exc:
        return TYPE, f"the box has no {exc.args[0]}"
    for v in (x1, y1, x2, y2):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return TYPE, "box coordinates are finite numbers"
    if x2 <= x1 or y2 <= y1:
        return BOX_SIZE, f"box has no positive size: width {x2 - x1:g}, height {y2 - y1:g}"
    return None


class _Ids:
    """A big section's ids (16-byte keys) with one int64 payload each, gathered in chunks."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.rows: list[int] = []
        self.payload: list[int] = []
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, key: bytes, row: int, payload: int = 0) -> None:
        self.keys.append(key)
        self.rows.append(row)
        self.payload.append(payload)
        if len(self.keys) >= _CHUNK:
            self._pack()

    def _pack(self) -> None:
        if self.keys:
            self.parts.append((np.frombuffer(b"".join(self.keys), dtype="S16").copy(),
                               np.asarray(self.rows, dtype=np.int64), np.asarray(self.payload, dtype=np.int64)))
            self.keys, self.rows, self.payload = [], [], []

    def sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._pack()
        if not self.parts:
            return np.zeros(0, "S16"), np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys = np.concatenate([p[0] for p in self.parts])
        rows = np.concatenate([p[1] for p in self.parts])
        payload = np.concatenate([p[2] for p in self.parts])
        self.parts = []
        order = np.argsort(keys, kind="stable")
        return keys[order], rows[order], payload[order]


class _Checker:
    def __init__(self, columns: Mapping[str, Mapping[str, Column]], file: str, log: IssueLog,
                 row_check: RowCheck | None = None) -> None:
        self.columns, self.file, self.log, self.row_check = columns, file, log, row_check
        self.counts: dict[str, int] = {}
        self.last = -1
        self.reported_order: set[str] = set()
        self.unknown_sections: set[str] = set()
        self.small: dict[str, dict[uuid.UUID, Any]] = {s: {} for s in SECTIONS if s not in BIG}
        self.videos: list[VideoRow] = []
        self.lo, self.hi = UUID_SPACE, -1
        self.ann_ids, self.kf_ids = _Ids(), _Ids()
        self.ann_sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.kf_refs = _Ids()  # annotation id referred to, keyframe row, its frame number
        self.det_keys: list[tuple[int, int, int, int]] = []  # (test session no., frame, index, row)
        self.det_parts: list[np.ndarray] = []

    def err(self, code: str, message: str, ptr: str, fld: str | None = None) -> None:
        self.log.error(code, message, file=self.file, pointer=ptr, field=fld)

    # ------------------------------------------------------------------ one row

    def row(self, section: str, index: int, data: dict[str, Any]) -> None:
        ptr = pointer("sections", section, index)
        cols = self.columns.get(section)
        if cols is None:
            if section not in self.unknown_sections:
                self.unknown_sections.add(section)
                self.log.error(STRUCTURE, f"unknown section {section!r} (one of {', '.join(SECTIONS)})",
                               file=self.file, pointer=pointer("sections", section))
            return
        self.counts[section] = self.counts.get(section, 0) + 1
        position = SECTIONS.index(section)
        if position < self.last and section not in self.reported_order:
            self.reported_order.add(section)
            self.log.error(STRUCTURE, f"section {section!r} must come before {SECTIONS[self.last]!r} (sections "
                                      f"are in the order {', '.join(SECTIONS)})", file=self.file,
                           pointer=pointer("sections", section))
        self.last = max(self.last, position)
        if self.ann_sorted is None and position > SECTIONS.index("annotations"):
            self.ann_sorted = self._finish_annotations()
        ok = True
        for key in data:
            if key not in cols:
                self.err(STRUCTURE, f"unknown field {key!r}", ptr, key)
                ok = False
        for name, col in cols.items():
            value = data.get(name)
            if value is None:
                if not col.nullable:
                    self.err(TYPE if name in data else STRUCTURE,
                             "must not be null" if name in data else "missing", ptr, name)
                    ok = False
                continue
            if col.kind == "json":
                if _non_finite(value):
                    self.err(NON_FINITE, "holds NaN or an infinite number", ptr, name)
                    ok = False
                continue
            kinds = _KINDS[col.kind]
            if not isinstance(value, kinds) or (isinstance(value, bool) and col.kind != "bool"):
                self.err(TYPE, f"expected {'a number' if col.kind == 'float' else col.kind}, got "
                               f"{type(value).__name__}", ptr, name)
                ok = False
            elif col.kind == "str" and col.max_length is not None and len(value) > col.max_length:
                self.err(TYPE, f"longer than {col.max_length} characters", ptr, name)
                ok = False
            elif col.kind == "datetime" and value.tzinfo is None:
                self.err(TYPE, "a time needs its time zone", ptr, name)
                ok = False
            elif col.kind == "float" and not _finite(value):
                self.err(NON_FINITE, f"{value!r} is not a finite number", ptr, name)
                ok = False
            elif col.kind == "int" and col.bits and not -(1 << (col.bits - 1)) <= value < 1 << (col.bits - 1):
                self.err(OUT_OF_RANGE, f"{value} does not fit the column's {col.bits}-bit integers", ptr, name)
                ok = False
        if ok and self.row_check is not None:
            for severity, code, fld, message in self.row_check(section, data):
                self.log.add(Issue(severity, code, message, file=self.file, pointer=ptr, field=fld))
                ok = ok and severity != "error"
        if not ok:  # still known by its id, so that rows referring to it are not reported as well
            self._register(section, data, index)
            return
        if section != "detections":
            rid = data["id"]
            self.lo, self.hi = min(self.lo, rid.int), max(self.hi, rid.int)
        for name, target in REFERENCES.get(section, {}).items():
            value = data.get(name)
            if value is None or target in BIG:
                continue
            if value not in self.small[target]:
                self.err(REFERENCE, f"no row of {target} has id {value}", ptr, name)
                ok = False
        if ok:
            getattr(self, f"_{section}")(data, index, ptr)

    def _register(self, section: str, data: dict[str, Any], index: int) -> None:
        rid = data.get("id")
        if not isinstance(rid, uuid.UUID):
            return
        if section == "annotations":
            self.ann_ids.add(rid.bytes, index, 0)
        elif section == "keyframes":
            self.kf_ids.add(rid.bytes, index)
        elif section in self.small:
            self.small[section].setdefault(rid, None)

    def _unique(self, section: str, data: dict[str, Any], ptr: str, value: Any) -> None:
        seen = self.small[section]
        if data["id"] in seen:
            self.err(DUPLICATE, f"id {data['id']} appears twice in {section}", ptr, "id")
        else:
            seen[data["id"]] = value

    # ------------------------------------------------------------------ per section

    def _projects(self, data: dict[str, Any], index: int, ptr: str) -> None:
        labels = data.get("labels")
        self._unique("projects", data, ptr, set(labels) if isinstance(labels, list) else set())

    def _requirements(self, data: dict[str, Any], index: int, ptr: str) -> None:
        self._unique("requirements", data, ptr, None)

    def _videos(self, data: dict[str, Any], index: int, ptr: str) -> None:
        owner = data.get("project_id")
        frames = data.get("frame_count") or 0
        self._unique("videos", data, ptr, frames)
        self.videos.append(VideoRow(index, data["id"], data["checksum"], data["filename"], owner,
                                    owner is not None and owner in self.small["projects"], data.get("storage_path")))

    def _assignments(self, data: dict[str, Any], index: int, ptr: str) -> None:
        self._unique("assignments", data, ptr, None)

    def _annotation_sessions(self, data: dict[str, Any], index: int, ptr: str) -> None:
        self._unique("annotation_sessions", data, ptr, (data["project_id"], data["video_id"]))

    def _annotations(self, data: dict[str, Any], index: int, ptr: str) -> None:
        project_id, _ = self.small["annotation_sessions"][data["annotation_session_id"]] or (None, None)
        if data["end_timestamp"] < data["start_timestamp"]:
            self.err(END_BEFORE_START, f"ends at {data['end_timestamp']:g} s, before its start "
                                       f"{data['start_timestamp']:g} s", ptr, "end_timestamp")
        box = data.get("bounding_box")
        if box is not None and (problem := _box_problem(box)):
            self.err(*problem, ptr, "bounding_box")
        labels = self.small["projects"].get(project_id)
        if labels is not None and data["class_label"] not in labels:
            self.log.warning(UNKNOWN_CLASS, f"class {data['class_label']!r} is not among its project's labels; "
                                            "kept as given", file=self.file, pointer=ptr, field="class_label")
        self.ann_ids.add(data["id"].bytes, index, self.small["videos"][data["video_id"]] or 0)

    def _keyframes(self, data: dict[str, Any], index: int, ptr: str) -> None:
        frame = data["frame_number"]
        if frame < 0:
            self.err(FRAME_RANGE, f"frame {frame} is before the start of the video", ptr, "frame_number")
        frame_data = data["frame_data"]
        if not isinstance(frame_data, dict):
            self.err(TYPE, "frame_data is an object", ptr, "frame_data")
        elif "bounding_box" in frame_data and (problem := _box_problem(frame_data["bounding_box"])):
            self.err(*problem, ptr, "frame_data")
        self.kf_ids.add(data["id"].bytes, index)
        self.kf_refs.add(data["annotation_id"].bytes, index, frame)
        if self.kf_refs.parts:
            self._check_keyframe_refs()

    def _test_sessions(self, data: dict[str, Any], index: int, ptr: str) -> None:
        self._unique("test_sessions", data, ptr, (len(self.small["test_sessions"]),
                                                  self.small["videos"][data["video_id"]] or 0))

    def _detections(self, data: dict[str, Any], index: int, ptr: str) -> None:
        entry = self.small["test_sessions"][data["test_session_id"]]
        if entry is None:
            return
        number, frames = entry
        frame = data["frame_number"]
        if frame < 0 or (frames and frame >= frames):
            self.err(FRAME_RANGE, f"frame {frame} is not in its video's {frames} frames", ptr, "frame_number")
        if data["x2"] <= data["x1"] or data["y2"] <= data["y1"]:
            self.err(BOX_SIZE, f"box has no positive size: width {data['x2'] - data['x1']:g}, height "
                               f"{data['y2'] - data['y1']:g}", ptr, "x2")
        self.det_keys.append((number, frame, data["detection_index"], index))
        if len(self.det_keys) >= _CHUNK:
            self.det_parts.append(np.asarray(self.det_keys, dtype=np.int64))
            self.det_keys = []

    # ------------------------------------------------------------------ whole sections

    def _duplicates(self, section: str, keys: np.ndarray, rows: np.ndarray) -> None:
        if keys.size > 1:
            for i in np.flatnonzero(keys[1:] == keys[:-1]):
                self.err(DUPLICATE, f"id {_uuid(keys[i + 1])} appears twice in "
                                    f"{section}", pointer("sections", section, int(rows[i + 1])), "id")

    def _finish_annotations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys, rows, frames = self.ann_ids.sorted()
        self._duplicates("annotations", keys, rows)
        return keys, rows, frames

    def _check_keyframe_refs(self) -> None:
        self.kf_refs._pack()
        parts, self.kf_refs.parts = self.kf_refs.parts, []
        keys, _, frame_counts = self.ann_sorted if self.ann_sorted is not None else self._finish_annotations()
        for refs, rows, frames in parts:
            pos = np.searchsorted(keys, refs)
            found = pos < keys.size
            found[found] = keys[pos[found]] == refs[found]
            for i in np.flatnonzero(~found):
                self.err(REFERENCE, f"no row of annotations has id {_uuid(refs[i])}",
                         pointer("sections", "keyframes", int(rows[i])), "annotation_id")
            limit = np.zeros(refs.size, np.int64)
            limit[found] = frame_counts[pos[found]]
            for i in np.flatnonzero(found & (limit > 0) & (frames >= limit)):
                self.err(FRAME_RANGE, f"frame {int(frames[i])} is beyond its video's {int(limit[i])} frames",
                         pointer("sections", "keyframes", int(rows[i])), "frame_number")

    def finish(self) -> None:
        if self.ann_sorted is None:
            self.ann_sorted = self._finish_annotations()
        self._check_keyframe_refs()
        keys, rows, _ = self.kf_ids.sorted()
        self._duplicates("keyframes", keys, rows)
        if self.det_keys:
            self.det_parts.append(np.asarray(self.det_keys, dtype=np.int64))
        if self.det_parts:
            det = np.concatenate(self.det_parts)
            order = np.lexsort((det[:, 2], det[:, 1], det[:, 0]))
            det = det[order]
            same = np.all(det[1:, :3] == det[:-1, :3], axis=1)
            for i in np.flatnonzero(same):
                self.err(DUPLICATE, f"frame {int(det[i + 1, 1])} has detection_index {int(det[i + 1, 2])} twice in "
                                    "its test session", pointer("sections", "detections", int(det[i + 1, 3])),
                         "detection_index")
        if not self.small["projects"]:
            self.log.error(STRUCTURE, "the document holds no projects: import a project or full export "
                                      "(annotations and results are imported into a session)", file=self.file,
                           pointer="/sections")


def _offset(lo: int, hi: int) -> int | None:
    """A random shift that moves every id in [lo, hi] without wrapping, or None if there is no room."""
    if hi < 0:
        return 1
    up, down = UUID_SPACE - 1 - hi, lo
    if max(up, down) == 0:
        return None
    return 1 + secrets.randbelow(up) if up >= down else -(1 + secrets.randbelow(down))


def check(path: Any, columns: Mapping[str, Mapping[str, Column]], options: ReadOptions | None = None,
          row_check: RowCheck | None = None) -> ProjectCheck:
    """Read a whole project document and report every problem (nothing is imported here).

    ``row_check`` adds the caller's checks of each well-typed row (what its JSON columns may
    hold); an error it reports makes the row invalid, a warning is listed with the rest.
    """
    file = Path(str(path)).name
    log = IssueLog(max_issues=(options or ReadOptions()).max_issues)
    checker = _Checker(columns, file, log, row_check)
    reader = read_document(path, ReadOptions(on_error="skip", limits=(options or ReadOptions()).limits))
    total = 0
    try:
        for row in reader:
            total += 1
            checker.row(row.section, row.index, row.data)
    except FormatError:
        pass  # the reader's own issues are merged below
    for issue in reader.issues:
        log.add(issue)
    if not any(i.code in ("wrong_format",) for i in reader.issues):
        checker.finish()
    offset = _offset(checker.lo, checker.hi)
    if offset is None:
        log.error(STRUCTURE, "the document's ids span the whole id space; new ids cannot keep their order",
                  file=file, pointer="/sections")
        offset = 0
    return ProjectCheck(_report(log, total), checker.counts, checker.videos, list(checker.small["projects"]),
                        offset, file, log)


def imported_rows(rows: Iterable[Any], check: ProjectCheck, columns: Mapping[str, Sequence[str]],
                  videos: Mapping[uuid.UUID, tuple[uuid.UUID, Mapping[str, Any]]], users: Container[Any],
                  user_columns: Mapping[str, Sequence[str]]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each row of a checked document (``rows``: :func:`formats.read_document`) as the row to write.

    Only ``columns`` of each section are kept; every row gets its new id (:meth:`ProjectCheck.remap`;
    the ``detections`` section has none of its own) and so does every reference to a row of the
    document. ``videos`` gives each video row the platform's video behind it: (its id, the facts of
    its file). A video owned by a project of the document becomes a new row with that file's facts;
    one that belongs elsewhere is referred to as it is and yields ``None`` (nothing to write). A
    user column naming no one in ``users`` is emptied.
    """
    remap = check.remap
    owned = {v.id for v in check.videos if v.in_document}
    video_ids: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows:
        section, data = row.section, row.data
        out = {name: data.get(name) for name in columns[section]}
        for name in user_columns.get(section, ()):
            if out[name] is not None and out[name] not in users:
                out[name] = None
        if section != "detections":
            out["id"] = remap(data["id"])
        if section == "videos":
            found, facts = videos[data["id"]]
            if data["id"] not in owned:
                video_ids[data["id"]] = found
                yield section, None
                continue
            video_ids[data["id"]] = out["id"]
            out["project_id"] = remap(data["project_id"])
            out.update(facts)
        elif section == "test_sessions":
            out["job_id"] = None  # the detection job is not part of the document
        for name in REFERENCES.get(section, {}):
            if out[name] is not None:
                out[name] = video_ids[out[name]] if name == "video_id" else remap(out[name])
        yield section, out


__all__ = ["BIG", "REFERENCES", "SECTIONS", "Column", "ProjectCheck", "RowCheck", "VideoRow", "check",
           "imported_rows"]
