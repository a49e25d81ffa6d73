"""Annotation and result formats: streaming readers and writers with validation that lists every problem.

Pure library (stdlib, defusedxml, pyyaml; numpy only in :mod:`formats.project`). Readers are iterables of
:class:`Annotation` / :class:`Detection` records in the target video's own 0-based frame
numbers and pixel ``xyxy`` boxes; writers consume iterables of the same records. See
:mod:`formats.records` for the conventions, :mod:`formats.errors` for the issue codes.

    reader = formats.open_reader("mot", path, video=VideoInfo(1920, 1080, 900), classes=project_labels,
                                 options=ReadOptions(label_map={"person": "pedestrian"}, on_error="skip"))
    report = reader.validate()          # every problem, with file / line / JSON pointer / field
    for record in reader: ...           # a second pass imports
"""
from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from . import coco, csvfile, cvat, kitti, labelstudio, mot, native, yolo
from .base import LabelMapper, OnError, Reader, ReadOptions
from .errors import FormatError, Issue, Report
from .native import DocumentReader, Row, read_document, write_document
from .records import Annotation, BoxXYXY, Detection, FrameInfo, Kind, Record, VideoInfo
from .sources import Limits

FORMATS = ("csv", "coco", "yolo", "cvat_video", "mot", "label_studio", "kitti_tracking", "json")
_RECORD_READERS = {"csv": csvfile.read, "coco": coco.read, "yolo": yolo.read, "cvat_video": cvat.read,
                   "mot": mot.read, "label_studio": labelstudio.read, "kitti_tracking": kitti.read}
# Formats that hold one video, and those whose writer needs records grouped by track.
SINGLE_VIDEO = ("yolo", "mot", "cvat_video", "label_studio", "kitti_tracking")
BY_TRACK = ("cvat_video", "label_studio")
# What an export produces, for download names and content types.
EXTENSIONS = {"csv": ".csv", "coco": ".json", "yolo": ".zip", "cvat_video": ".xml", "mot": ".zip", "json": ".json",
              "label_studio": ".json", "kitti_tracking": ".txt"}
CONTENT_TYPES = {"csv": "text/csv", "coco": "application/json", "yolo": "application/zip",
                 "cvat_video": "application/xml", "mot": "application/zip", "json": "application/json",
                 "label_studio": "application/json", "kitti_tracking": "text/plain"}


def open_reader(fmt: str, path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
                options: ReadOptions | None = None) -> Reader:
    """A reader of annotation/result records for ``fmt`` (``json`` documents: use :func:`read_document`)."""
    try:
        fn = _RECORD_READERS[fmt]
    except KeyError:
        hint = "; json documents are read with read_document()" if fmt == "json" else ""
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(_RECORD_READERS)}){hint}") from None
    return fn(path, video=video, classes=classes, options=options)


def validate(fmt: str, path: Any, *, video: VideoInfo | None = None, classes: Sequence[str] | None = None,
             options: ReadOptions | None = None) -> Report:
    """Read the whole file and report every problem (the validation phase of an import)."""
    if fmt == "json":
        return read_document(path, options).validate()
    return open_reader(fmt, path, video=video, classes=classes, options=options).validate()


def write(fmt: str, dest: Any, records: Any, *, video: VideoInfo | None = None,
          videos: Sequence[VideoInfo] | None = None, classes: Sequence[str] = (), kind: Kind = "annotations",
          frames: Any = None, images: Any = None) -> int:
    """Write ``records`` in ``fmt``; single-sequence formats (yolo, mot, cvat_video) need ``video``.

    ``images`` (yolo only): frame number -> JPEG bytes, for a dataset with its images.
    """
    if fmt == "csv":
        return csvfile.write(dest, records, kind=kind)
    if fmt == "coco":
        vids = videos if videos is not None else ([video] if video else [])
        return coco.write(dest, records, videos=vids, classes=classes, frames=frames, kind=kind)
    if video is None:
        raise ValueError(f"{fmt} holds one video: give video=")
    if fmt == "yolo":
        return yolo.write(dest, records, video=video, classes=classes, frames=frames, kind=kind, images=images)
    if fmt == "mot":
        return mot.write(dest, records, video=video, classes=classes, kind=kind)
    if fmt == "cvat_video":
        if kind == "results":
            raise ValueError("CVAT for video holds annotations, not results")
        return cvat.write(dest, records, video=video, classes=classes)
    if fmt == "label_studio":
        return labelstudio.write(dest, records, video=video, classes=classes, kind=kind)
    if fmt == "kitti_tracking":
        return kitti.write(dest, records, video=video, kind=kind)
    raise ValueError(f"unknown format {fmt!r}; json documents are written with write_document()")


PerVideo = tuple[VideoInfo, Callable[[], Iterable[Any]], Callable[[], Any] | None]


def write_per_video(fmt: str, dest: Any, videos: Sequence[PerVideo], *, classes: Sequence[str] = (),
                    kind: Kind = "annotations") -> int:
    """A single-video format (:data:`SINGLE_VIDEO`) for several videos: ``dest`` is the one video's
    file, or a zip with one member per video named after it (``VideoInfo.name``).

    Each entry is (video, its records, its ``images`` or None), the last two as factories called
    when that video's member is written, so that one video's data is open at a time; ``images``
    is closed after its member if it has ``close()``. Returns the records written.
    """
    def write_one(path: Path, info: VideoInfo, make: Callable[[], Iterable[Any]],
                  images_of: Callable[[], Any] | None) -> int:
        images = images_of() if images_of is not None else None
        try:
            return write(fmt, path, make(), video=info, classes=classes, kind=kind, images=images)
        finally:
            if hasattr(images, "close"):
                images.close()

    dest = Path(dest)
    if len(videos) == 1:
        return write_one(dest, *videos[0])
    n = 0
    # Named after the partial file, so that what a killed writer leaves is found and removed with it.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f"{dest.name}.") as tmp, \
            zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for info, make, images_of in videos:
            member = Path(tmp) / f"{info.name}{EXTENSIONS[fmt]}"
            n += write_one(member, info, make, images_of)
            zf.write(member, member.name)
            member.unlink()
    return n


__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FORMATS",
    "BY_TRACK",
    "SINGLE_VIDEO",
    "PerVideo",
    "Annotation",
    "BoxXYXY",
    "Detection",
    "DocumentReader",
    "FormatError",
    "FrameInfo",
    "Issue",
    "Kind",
    "LabelMapper",
    "Limits",
    "OnError",
    "ReadOptions",
    "Reader",
    "Record",
    "Report",
    "Row",
    "VideoInfo",
    "coco",
    "csvfile",
    "cvat",
    "kitti",
    "labelstudio",
    "mot",
    "native",
    "open_reader",
    "read_document",
    "validate",
    "write",
    "write_per_video",
    "write_document",
    "yolo",
]
