"""Export -> import -> export gives the same content, for each format."""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest

import formats
from formats import Annotation, Detection, FrameInfo, ReadOptions


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}  # files, not folder entries


def _read(fmt, path, video, classes, **opt):
    return list(formats.open_reader(fmt, path, video=video, classes=classes, options=ReadOptions(**opt)))


def _close(a, b, tol=1e-6):
    return all(math.isclose(x, y, abs_tol=tol) for x, y in zip(a, b, strict=True))


def test_csv_annotations_round_trip_is_exact(tmp_path, annotations, video, classes):
    p1, p2 = tmp_path / "a.csv", tmp_path / "b.csv"
    assert formats.write("csv", p1, annotations) == len(annotations)
    back = _read("csv", p1, video, classes)
    assert back == annotations
    formats.write("csv", p2, back)
    assert p1.read_bytes() == p2.read_bytes()
    assert p1.read_bytes().count(b"\r\n") == len(annotations) + 1  # RFC 4180 line ends


def test_csv_results_round_trip_is_exact(tmp_path, detections, video, classes):
    p1, p2 = tmp_path / "a.csv", tmp_path / "b.csv"
    formats.write("csv", p1, detections, kind="results")
    back = _read("csv", p1, video, classes)
    assert back == detections
    formats.write("csv", p2, back, kind="results")
    assert p1.read_bytes() == p2.read_bytes()


def test_csv_quotes_awkward_values(tmp_path, video):
    rec = Annotation(3, 'odd, "label"\nline', (1.0, 2.0, 3.0, 4.0), attributes={"note": 'a,"b"\r\nc'})
    p = tmp_path / "q.csv"
    formats.write("csv", p, [rec])
    back = _read("csv", p, video, None)
    assert back == [rec]


@pytest.mark.parametrize("with_frames", [True, False])
def test_coco_round_trip(tmp_path, annotations, video, classes, with_frames):
    frames = [FrameInfo(f, f / 10, "v1") for f in range(video.frame_count)] if with_frames else None
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    formats.write("coco", p1, annotations, video=video, classes=classes, frames=frames)
    back = _read("coco", p1, video, classes)
    assert len(back) == len(annotations)
    for a, b in zip(annotations, back, strict=True):
        assert (a.frame_number, a.label, a.track_id, a.timestamp, a.occluded, a.keyframe, a.attributes, a.video_id) \
            == (b.frame_number, b.label, b.track_id, b.timestamp, b.occluded, b.keyframe, b.attributes, b.video_id)
        assert _close(a.box, b.box)
    formats.write("coco", p2, back, video=video, classes=classes, frames=frames)
    assert p1.read_bytes() == p2.read_bytes()


def test_coco_results_round_trip(tmp_path, detections, video, classes):
    p1, p2 = tmp_path / "r.json", tmp_path / "r2.json"
    formats.write("coco", p1, detections, video=video, classes=classes, kind="results")
    assert isinstance(json.loads(p1.read_text()), list)
    back = _read("coco", p1, video, classes, video_id="v1")
    assert [(d.frame_number, d.label, d.score, d.track_id) for d in back] == \
        [(d.frame_number, d.label, d.score, d.track_id) for d in detections]
    assert all(_close(a.box, b.box) for a, b in zip(detections, back, strict=True))
    formats.write("coco", p2, back, video=video, classes=classes, kind="results")
    assert p1.read_bytes() == p2.read_bytes()


def test_yolo_round_trip(tmp_path, annotations, video, classes):
    by_frame = sorted(annotations, key=lambda a: a.frame_number)
    frames = [FrameInfo(f) for f in range(video.frame_count)]
    p1, p2 = tmp_path / "a.zip", tmp_path / "b.zip"
    formats.write("yolo", p1, by_frame, video=video, classes=classes, frames=frames)
    m1 = _members(p1)
    assert "data.yaml" in m1 and len(m1) == 1 + video.frame_count  # empty files for frames without objects
    back = _read("yolo", p1, video, classes)
    assert sorted((a.frame_number, a.label) for a in back) == sorted((a.frame_number, a.label) for a in by_frame)
    back.sort(key=lambda a: a.frame_number)
    formats.write("yolo", p2, back, video=video, classes=classes, frames=frames)
    assert _members(p2) == m1


def test_yolo_results_round_trip(tmp_path, detections, video, classes):
    p1, p2 = tmp_path / "a.zip", tmp_path / "b.zip"
    formats.write("yolo", p1, detections, video=video, classes=classes, kind="results")
    back = _read("yolo", p1, video, classes)
    assert all(isinstance(d, Detection) for d in back)
    assert [d.score for d in back] == [d.score for d in detections]
    formats.write("yolo", p2, back, video=video, classes=classes, kind="results")
    assert _members(p2) == _members(p1)


@pytest.mark.parametrize("kind", ["annotations", "results"])
def test_mot_round_trip(tmp_path, annotations, detections, video, classes, kind):
    records = annotations if kind == "annotations" else detections
    p1, p2 = tmp_path / "a.zip", tmp_path / "b.zip"
    formats.write("mot", p1, records, video=video, classes=classes, kind=kind)
    back = _read("mot", p1, video, classes)
    assert len(back) == len(records)
    for a, b in zip(records, back, strict=True):
        assert (a.frame_number, a.label, a.track_id) == (b.frame_number, b.label, b.track_id)
        assert _close(a.box, b.box)
    formats.write("mot", p2, back, video=video, classes=classes, kind=kind)
    assert _members(p2) == _members(p1)
    if kind == "annotations":
        gt = _members(p1)["clip/gt/gt.txt"].decode().splitlines()
        first = min(annotations, key=lambda a: a.frame_number)
        assert min(int(line.split(",")[0]) for line in gt) == first.frame_number + 1  # 1-based on disk


def test_cvat_round_trip(tmp_path, annotations, video, classes):
    # outside markers end tracks in CVAT; they must survive too
    last = annotations[-1]
    records = annotations + [Annotation(last.frame_number + 1, last.label, last.box, track_id=99, outside=True)]
    p1, p2 = tmp_path / "a.xml", tmp_path / "b.xml"
    formats.write("cvat_video", p1, records, video=video, classes=classes)
    back = _read("cvat_video", p1, video, classes)
    assert [(a.frame_number, a.label, a.track_id, a.keyframe, a.outside, a.occluded, a.attributes)
            for a in records] == [(b.frame_number, b.label, b.track_id, b.keyframe, b.outside, b.occluded,
                                   b.attributes) for b in back]
    assert all(a.box == b.box for a, b in zip(records, back, strict=True))
    formats.write("cvat_video", p2, back, video=video, classes=classes)
    assert p1.read_bytes() == p2.read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "coco", "yolo", "mot", "cvat_video"])
def test_same_boxes_land_on_same_frames_in_every_format(tmp_path, annotations, video, classes, fmt):
    records = sorted(annotations, key=lambda a: (a.frame_number, a.track_id)) if fmt == "yolo" else annotations
    p = tmp_path / ("out" + formats.EXTENSIONS[fmt])
    formats.write(fmt, p, records, video=video, classes=classes)
    back = _read(fmt, p, video, classes)
    want = sorted(records, key=lambda a: (a.frame_number, a.label, a.box))
    got = sorted(back, key=lambda a: (a.frame_number, a.label, a.box))
    assert [(a.frame_number, a.label) for a in got] == [(a.frame_number, a.label) for a in want]
    # YOLO keeps 6 decimals of the normalized value: 1e-6 * 640 px
    assert all(_close(a.box, b.box, tol=1e-3) for a, b in zip(want, got, strict=True))
