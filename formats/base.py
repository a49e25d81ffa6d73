"""What every reader shares: options, label mapping, box and frame checks, the reader object.

A format module provides a generator ``records(ctx)`` that yields good records and logs
problems on ``ctx.log``; :class:`Reader` turns it into the two ways an import needs it:
``validate()`` (read everything, keep every issue) and iteration (yield records, honouring
``on_error``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from .errors import (
    BOX_OUTSIDE,
    BOX_PARTLY_OUTSIDE,
    BOX_SIZE,
    FRAME_RANGE,
    NON_FINITE,
    OUT_OF_RANGE,
    TYPE,
    UNKNOWN_CLASS,
    UNSUPPORTED,
    Fatal,
    FormatError,
    IssueLog,
    Report,
)
from .records import Kind, Record, VideoInfo
from .sources import Limits, Source, open_source

OnError = Literal["abort", "skip"]
#: Track ids are stored in a signed 32-bit column.
MAX_TRACK_ID = 2**31 - 1

# The import options a user can give through the API (``POST /api/import/jobs``), by the names the
# API uses. Messages that suggest an option name it through :func:`option`, so that no message
# asks for an option that does not exist; an option added to the API is added here too.
IMPORT_OPTIONS = ("label_map", "add_missing_labels", "on_error", "source_video_id", "frame_map", "default_label")


def option(name: str) -> str:
    """``name`` as a message may suggest it (only options of the API: see ``IMPORT_OPTIONS``)."""
    if name not in IMPORT_OPTIONS:
        raise ValueError(f"{name!r} is not an import option of the API")
    return name


def option_hint(name: str, hint: str, otherwise: str) -> str:
    """``hint`` while ``name`` is an import option of the API, else ``otherwise``."""
    return hint if name in IMPORT_OPTIONS else otherwise


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file into a project.

    ``label_map`` renames other tools' class names to the project's; ``frame_map`` tells which
    video frame an image or label file is when its name and fields do not say; ``kind``
    forces annotations or results where a file could be either.
    """

    kind: Kind | None = None
    label_map: Mapping[str, str] = field(default_factory=dict)
    add_missing_labels: bool = False
    on_error: OnError = "abort"
    frame_map: Mapping[str, int] | None = None
    default_label: str | None = None
    video_id: str | None = None
    coco_gt: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_issues: int = 10_000


class LabelMapper:
    """Maps a source's class names onto the project's classes, once per distinct name."""

    def __init__(self, classes: Sequence[str] | None, label_map: Mapping[str, str], add_missing: bool) -> None:
        self.classes = list(classes) if classes is not None else None
        self._exact = set(self.classes or ())
        self._folded = {c.casefold(): c for c in self.classes or ()}
        self.label_map = dict(label_map)
        self._map_folded = {k.casefold(): v for k, v in self.label_map.items()}
        self.add_missing = add_missing
        self.added: list[str] = []
        self._cache: dict[str, str | None] = {}

    def resolve(self, name: str) -> str | None:
        """The project class for ``name``, or None when it maps to nothing."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        target = self.label_map.get(name)
        if target is None:
            target = self._map_folded.get(name.casefold(), name)
        if self.classes is None:
            result: str | None = target
        elif target in self._exact:
            result = target
        elif target.casefold() in self._folded:
            result = self._folded[target.casefold()]
        elif self.add_missing:
            self.classes.append(target)
            self._exact.add(target)
            self._folded[target.casefold()] = target
            self.added.append(target)
            result = target
        else:
            result = None
        self._cache[name] = result
        return result


_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def frame_from_name(name: str) -> int | None:
    """The last group of digits in a file's stem (``frame_000012.jpg`` -> 12), if any."""
    stem = PurePosixPath(name).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    m = _DIGITS.search(stem)
    return int(m.group(1)) if m else None


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class ReadContext:
    """Per-read state handed to a format's generator."""

    def __init__(self, source: Source, video: VideoInfo | None, classes: Sequence[str] | None,
                 options: ReadOptions) -> None:
        self.source = source
        self.video = video
        self.options = options
        self.log = IssueLog(max_issues=options.max_issues)
        self.labels = LabelMapper(classes, options.label_map, options.add_missing_labels)
        self.unsupported: dict[str, list[Any]] = {}
        self.emitted = 0

    # --- checks: each returns True when the value is usable, logging why not otherwise ---

    def label(self, name: str, **where: Any) -> str | None:
        resolved = self.labels.resolve(name)
        if resolved is None:
            known = ", ".join(self.labels.classes or ())
            self.log.error(UNKNOWN_CLASS,
                           f"class {name!r} is not one of the project's classes ({known}); "
                           f"map it with {option('label_map')} or set {option('add_missing_labels')}", **where)
        return resolved

    def frame(self, n: int, **where: Any) -> bool:
        if n < 0:
            self.log.error(FRAME_RANGE, f"frame {n} is before the start of the video", **where)
            return False
        count = self.video.frame_count if self.video else None
        if count is not None and n >= count:
            self.log.error(FRAME_RANGE, f"frame {n} is beyond the video's {count} frames (0..{count - 1})", **where)
            return False
        return True

    def box(self, x1: float, y1: float, x2: float, y2: float, width: int | None = None,
            height: int | None = None, **where: Any) -> bool:
        if not (math.isfinite(x1) and math.isfinite(y1) and math.isfinite(x2) and math.isfinite(y2)):
            self.log.error(NON_FINITE, f"box has a NaN or infinite coordinate: {[x1, y1, x2, y2]}", **where)
            return False
        if x2 <= x1 or y2 <= y1:
            self.log.error(BOX_SIZE, f"box has no positive size: width {x2 - x1:g}, height {y2 - y1:g}", **where)
            return False
        if width is None and self.video is not None:
            width, height = self.video.width, self.video.height
        if width is not None and height is not None:
            if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
                self.log.error(BOX_OUTSIDE, f"box {[x1, y1, x2, y2]} lies wholly outside the {width}x{height} frame",
                               **where)
                return False
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                self.log.warning(BOX_PARTLY_OUTSIDE,
                                 f"box {[x1, y1, x2, y2]} is partly outside the {width}x{height} frame; kept as given",
                                 **where)
        return True

    def finite(self, value: Any, **where: Any) -> bool:
        if not is_number(value):
            self.log.error(TYPE, f"expected a number, got {type(value).__name__}", **where)
            return False
        if not math.isfinite(value):
            self.log.error(NON_FINITE, f"{value!r} is not a finite number", **where)
            return False
        return True

    def result_values(self, score: Any, track_id: Any, score_field: str = "score", no_score: float | None = None,
                      **where: Any) -> bool:
        """A result's score and track id, checked where the file gives them (True: both usable).

        The one range check every results reader applies: the score is a finite number in
        [0, 1] (or the format's own ``no_score`` mark, MOTChallenge's -1); the track id, when
        given, an integer in [0, MAX_TRACK_ID] (what the database's 32-bit column holds).
        """
        if not self.finite(score, **{**where, "field": score_field}):
            return False
        if not 0.0 <= score <= 1.0 and not (no_score is not None and score == no_score):
            self.log.error(OUT_OF_RANGE, f"score {score!r} is outside [0, 1]", **{**where, "field": score_field})
            return False
        if track_id is not None and (isinstance(track_id, bool) or not isinstance(track_id, int)
                                     or not 0 <= track_id <= MAX_TRACK_ID):
            self.log.error(OUT_OF_RANGE, f"track id {track_id!r} is not an integer in [0, {MAX_TRACK_ID}]",
                           **{**where, "field": "track_id"})
            return False
        return True

    def skip_unsupported(self, what: str, **where: Any) -> None:
        """Count a shape we do not import; reported once per kind when reading ends."""
        entry = self.unsupported.setdefault(what, [0, where])
        entry[0] += 1

    def finish(self) -> None:
        for what, (count, where) in self.unsupported.items():
            if self.emitted == 0:
                self.log.error(UNSUPPORTED, f"{what} are not supported and the file holds nothing else "
                                            f"({count} skipped); only bounding boxes can be imported", **where)
            else:
                self.log.warning(UNSUPPORTED, f"{count} {what} skipped: only bounding boxes are imported", **where)


RecordsFn = Callable[[ReadContext], Iterator[Record]]


class Reader:
    """A file opened for import: iterate for records, or ``validate()`` for a full report.

    Iterating with ``on_error="abort"`` stops yielding at the first error but keeps reading to
    list every problem, then raises :class:`FormatError`; with ``"skip"`` bad records are
    dropped and listed in ``issues``. A file that cannot be read at all raises in both modes.
    """

    def __init__(self, fn: RecordsFn, path: Any, *, video: VideoInfo | None = None,
                 classes: Sequence[str] | None = None, options: ReadOptions | None = None) -> None:
        self.fn = fn
        self.path = path
        self.video = video
        self.classes = classes
        self.options = options or ReadOptions()
        self.ctx: ReadContext | None = None

    def _run(self) -> Iterator[Record]:
        self.ctx = None
        with open_source(self.path, self.options.limits) as source:
            ctx = self.ctx = ReadContext(source, self.video, self.classes, self.options)
            try:
                for rec in self.fn(ctx):
                    ctx.emitted += 1
                    yield rec
            except Fatal:
                return
            ctx.finish()

    def __iter__(self) -> Iterator[Record]:
        abort = self.options.on_error == "abort"
        stopped = False
        for rec in self._run():
            if abort and self.ctx is not None and self.ctx.log.errors:
                stopped = True
            if not stopped:
                yield rec
        log = self.ctx.log if self.ctx else None
        if log is not None and log.errors and (abort or log.refused):
            raise FormatError(log.issues)

    def validate(self) -> Report:
        """Read the whole file and report; never raises for problems in the data."""
        count = 0
        try:
            for _ in self._run():
                count += 1
        except FormatError as exc:  # source-level refusal (unsafe archive, limits), possibly mid-read
            issues = (list(self.ctx.log.issues) if self.ctx else []) + exc.issues
            return Report(issues, 0, sum(i.severity == "error" for i in issues),
                          sum(i.severity == "warning" for i in issues))
        assert self.ctx is not None
        log = self.ctx.log
        return Report(log.issues, count, log.errors, log.warnings, log.dropped, list(self.ctx.labels.added),
                      dict(log.counts))

    @property
    def issues(self) -> list:
        return self.ctx.log.issues if self.ctx else []

    @property
    def added_labels(self) -> list[str]:
        return list(self.ctx.labels.added) if self.ctx else []


def fmt_num(v: float) -> str:
    """A coordinate as text: 6 decimals, trailing zeros dropped (``540``, ``12.5``).

    Fixed rounding makes export -> import -> export stable for formats that store
    ``x, y, w, h`` (``x + w - x`` is not always ``w`` in floating point); 1e-6 px is far
    below any use.
    """
    try:
        s = "%.6f" % v  # noqa: UP031 (the fastest float formatting here)
    except TypeError:
        raise ValueError(f"cannot write {v!r}: coordinates and scores must be numbers") from None
    if "n" in s:  # nan, inf, -inf
        raise ValueError(f"cannot write {v!r}: coordinates and scores must be finite")
    s = s.rstrip("0")
    if s[-1] == ".":
        s = s[:-1]
        if s == "-0":
            return "0"
    return s


def open_text_out(dest: Any) -> tuple[Any, bool]:
    """A text stream for ``dest`` (a path or an open text stream) and whether we must close it."""
    if hasattr(dest, "write"):
        return dest, False
    return open(dest, "w", encoding="utf-8", newline=""), True
