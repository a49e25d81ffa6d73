"""Label Studio video and KITTI tracking: files as those tools write them, and our exports read back."""
from __future__ import annotations

import json

import numpy as np
import pytest

import formats
from formats import ReadOptions, VideoInfo
from keyframes import Keyframe, Timeline, Track
from keyframes.exchange import records_by_frame, records_by_track

VIDEO = VideoInfo(1242, 375, 30, 10.0, "0000", "v1")
CLASSES = ["pedestrian", "cyclist", "car"]


def _close(a, b, tol: float = 0.01) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _tracks() -> list[Track]:
    return [Track(3, "car", 0.0, 0.9, None, [Keyframe.stored(*k) for k in [
        (0, (100.0, 50.0, 300.5, 150.25), {}),
        (2, (110.0, 50.0, 310.5, 150.25), {"keyframe": False, "occluded": True}),
        (4, (120.0, 60.0, 320.0, 160.0), {}),
        (5, (120.0, 60.0, 320.0, 160.0), {"outside": True}),
        (8, (400.0, 60.0, 500.0, 160.0), {}),
        (9, (401.0, 60.0, 501.0, 160.0), {})]]),
        Track(9, "pedestrian", 0.2, 0.5, (10.0, 20.0, 30.0, 80.0), [])]


def _visible(records) -> list[tuple]:
    return sorted((r.track_id, r.frame_number, r.label, *r.box) for r in records if not getattr(r, "outside", False))


# ----------------------------------------------------------------------------- Label Studio


LS_EXPORT = [{
    "id": 17, "annotations": [{"id": 4, "completed_by": 1, "result": [
        {"id": "Tq3yPb", "type": "videorectangle", "from_name": "box", "to_name": "video", "origin": "manual",
         "value": {"framesCount": 30, "duration": 3.0, "labels": ["Car"], "sequence": [
             {"frame": 1, "enabled": True, "rotation": 0, "x": 10, "y": 20, "width": 5, "height": 10, "time": 0.0},
             {"frame": 5, "enabled": False, "rotation": 0, "x": 20, "y": 20, "width": 5, "height": 10, "time": 0.4},
             {"frame": 11, "enabled": True, "rotation": 0, "x": 30, "y": 40, "width": 5, "height": 10, "time": 1.0},
             {"frame": 13, "enabled": False, "rotation": 0, "x": 32, "y": 40, "width": 5, "height": 10,
              "time": 1.2}]}},
        {"id": "x9", "type": "videorectangle", "from_name": "box", "to_name": "video", "origin": "manual",
         "value": {"framesCount": 30, "duration": 3.0, "labels": ["Pedestrian"], "sequence": [
             {"frame": 25, "enabled": True, "rotation": 0, "x": 50, "y": 50, "width": 10, "height": 20,
              "time": 2.4}]}},
        {"id": "t1", "type": "labels", "from_name": "tag", "to_name": "video", "value": {"labels": ["Car"]}}]}],
    "data": {"video": "/data/upload/1/0000.mp4"}, "meta": {}, "created_at": "2026-01-01T00:00:00Z"}]


def test_label_studio_export_as_label_studio_writes_it(tmp_path):
    path = tmp_path / "project-1.json"
    path.write_text(json.dumps(LS_EXPORT))
    reader = formats.open_reader("label_studio", path, video=VIDEO, classes=CLASSES)
    report = reader.validate()
    assert report.valid, [str(i) for i in report.issues]
    codes = {i.code: i for i in report.issues}
    assert codes["frame_base"].severity == "warning"  # 1-based frames converted, and said
    assert codes["unsupported"].pointer == "/0/annotations/0/result/2"  # the tag, skipped where it is
    assert "'Tq3yPb' -> 1" in codes["structure"].message  # text region ids numbered, and said
    recs = list(reader)
    got = [(r.track_id, r.frame_number, r.outside, r.keyframe, r.label) for r in recs]
    assert got == [(1, 0, False, True, "car"), (1, 4, False, True, "car"), (1, 5, True, True, "car"),
                   (1, 10, False, True, "car"), (1, 12, False, True, "car"),
                   # an enabled last keyframe runs to the end of the video, as Label Studio shows it
                   (2, 24, False, True, "pedestrian"), (2, 29, False, False, "pedestrian")]
    assert _close(recs[0].box, (124.2, 75.0, 186.3, 112.5))
    assert _close(recs[3].box, (372.6, 150.0, 434.7, 187.5))


def test_label_studio_problems_are_located(tmp_path):
    bad = json.loads(json.dumps(LS_EXPORT))
    seq = bad[0]["annotations"][0]["result"][0]["value"]["sequence"]
    seq[1]["x"] = "left"
    bad[0]["annotations"][0]["result"][1]["value"]["labels"] = ["Tram"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    report = formats.validate("label_studio", path, video=VIDEO, classes=CLASSES)
    errors = {(i.pointer, i.field) for i in report.issues if i.severity == "error"}
    assert errors == {("/0/annotations/0/result/0/value/sequence/1", "x"),
                      ("/0/annotations/0/result/1", "value.labels")}
    two = [LS_EXPORT[0], {**LS_EXPORT[0], "id": 18, "data": {"video": "/data/upload/1/0001.mp4"}}]
    path.write_text(json.dumps(two))
    report = formats.validate("label_studio", path, video=VIDEO, classes=CLASSES)
    assert not report.valid and "source_video_id" in report.issues[0].message
    picked = formats.validate("label_studio", path, video=VIDEO, classes=CLASSES,
                              options=ReadOptions(video_id="0001"))
    assert picked.valid and picked.records_total == 7


def test_label_studio_export_reads_back_exactly_with_its_gaps(tmp_path):
    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    written = list(records_by_track(_tracks(), timeline))
    formats.write("label_studio", tmp_path / "ls.json", iter(written), video=VIDEO, classes=CLASSES)
    doc = json.loads((tmp_path / "ls.json").read_text())
    regions = doc[0]["annotations"][0]["result"]
    assert [r["id"] for r in regions] == ["3", "9"]  # track ids kept
    enabled = [(k["frame"], k["enabled"]) for k in regions[0]["value"]["sequence"]]
    assert enabled == [(1, True), (2, True), (3, True), (4, True), (5, False), (9, True), (10, False)]
    back = list(formats.open_reader("label_studio", tmp_path / "ls.json", video=VIDEO, classes=CLASSES))
    mine, theirs = _visible(written), _visible(back)
    assert [t[:3] for t in mine] == [t[:3] for t in theirs]
    assert all(_close(a[3:], b[3:]) for a, b in zip(mine, theirs, strict=True))
    assert {(r.track_id, r.frame_number) for r in back if r.outside} == {(3, 5)}


# ----------------------------------------------------------------------------- KITTI


KITTI_0000 = "".join(line + "\n" for line in (  # label_02/0000.txt of the KITTI tracking benchmark
    "0 -1 DontCare -1 -1 -10.000000 219.310000 188.490000 245.500000 218.560000 -1000.000000 -1000.000000 "
    "-1000.000000 -10.000000 -1.000000 -1.000000 -1.000000",
    "0 0 Van 0 0 -1.793451 296.744956 161.752147 455.226042 292.372804 2.000000 1.823255 4.433886 -4.552284 "
    "1.858523 13.410495 -2.115488",
    "0 1 Cyclist 0 2 -1.936993 737.619499 161.531951 931.112229 374.000000 1.739063 0.824591 1.785241 1.640400 "
    "1.675660 5.776261 -1.675458",
    "1 0 Van 0 0 -1.796862 299.118772 159.640000 459.807261 293.260486 2.000000 1.823255 4.433886 -4.493809 "
    "1.861474 13.488467 -2.113356"))


def test_kitti_tracking_as_the_devkit_writes_it(tmp_path):
    (tmp_path / "label_02").mkdir()
    (tmp_path / "label_02" / "0000.txt").write_text(KITTI_0000)
    reader = formats.open_reader("kitti_tracking", tmp_path, video=VIDEO, classes=CLASSES,
                                 options=ReadOptions(label_map={"Van": "car"}))
    report = reader.validate()
    assert report.valid, [str(i) for i in report.issues]
    (dontcare,) = [i for i in report.issues if i.code == "unsupported"]
    assert dontcare.severity == "warning" and dontcare.line == 1 and "1 DontCare" in dontcare.message
    recs = list(reader)
    assert [(r.frame_number, r.track_id, r.label, r.occluded) for r in recs] == [
        (0, 0, "car", False), (0, 1, "cyclist", True), (1, 0, "car", False)]
    assert _close(recs[0].box, (296.744956, 161.752147, 455.226042, 292.372804))
    k = recs[1].attributes["kitti"]
    assert k["occluded"] == 2 and k["dimensions"] == [1.739063, 0.824591, 1.785241]
    assert k["location"] == [1.6404, 1.67566, 5.776261] and k["rotation_y"] == -1.675458
    # written back: the same lines, 3D fields and all (the DontCare region was not imported)
    formats.write("kitti_tracking", tmp_path / "out.txt", iter(recs), video=VIDEO)
    out = [line.split() for line in (tmp_path / "out.txt").read_text().splitlines()]
    src = [line.split() for line in KITTI_0000.splitlines()[1:]]
    assert len(out) == len(src)
    for a, b in zip(out, src, strict=True):
        assert a[:2] == b[:2] and a[3:5] == b[3:5]
        assert np.allclose([float(v) for v in a[5:]], [float(v) for v in b[5:]], atol=1e-6)


def test_kitti_tracking_export_reads_back_with_track_ids_and_problems_located(tmp_path):
    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    written = list(records_by_frame(_tracks(), timeline))
    formats.write("kitti_tracking", tmp_path / "0000.txt", iter(written), video=VIDEO)
    back = list(formats.open_reader("kitti_tracking", tmp_path / "0000.txt", video=VIDEO, classes=CLASSES))
    mine, theirs = _visible(written), _visible(back)
    assert [t[:3] for t in mine] == [t[:3] for t in theirs]
    assert all(_close(a[3:], b[3:]) for a, b in zip(mine, theirs, strict=True))
    lines = (tmp_path / "0000.txt").read_text().splitlines()
    lines[1] = lines[1].replace(" car ", " tram ")
    lines[2] = " ".join(lines[2].split()[:10])
    (tmp_path / "bad.txt").write_text("\n".join(lines))
    report = formats.validate("kitti_tracking", tmp_path / "bad.txt", video=VIDEO, classes=CLASSES)
    assert {(i.line, i.code) for i in report.issues if i.severity == "error"} == {(2, "unknown_class"),
                                                                                   (3, "structure")}


def test_kitti_object_labels_written_by_other_tools(fixtures_dir, tmp_path):
    stems = {"a-weird Filename.asdf": 0, "aNother-weird__ filename.with.many.characters": 1}
    recs = list(formats.open_reader("kitti_tracking", fixtures_dir / "labelformat/KITTI/labels",
                                    video=VideoInfo(640, 480, 2), classes=None,
                                    options=ReadOptions(frame_map=stems)))
    assert len(recs) == 16
    assert {r.label for r in recs} == {"dog", "person", "bench", "bicycle with space", "snowboard"}
    first = [r for r in recs if r.frame_number == 0]
    assert first[0].label == "dog" and first[0].box == (540.0, 295.0, 563.0, 313.0)
    dm = pytest.importorskip("datumaro")
    ds = dm.Dataset.from_iterable([
        dm.DatasetItem(id=f"{f:06d}", media=dm.Image.from_numpy(np.zeros((375, 1242, 3), np.uint8)),
                       annotations=[dm.Bbox(10.5 + f, 20.25, 100, 50, label=0, attributes={"truncated": False,
                                                                                       "occluded": True})])
        for f in range(3)], categories=["Car"])
    ds.export(str(tmp_path / "k"), "kitti_detection", save_media=False)
    got = list(formats.open_reader("kitti_tracking", tmp_path / "k", video=VIDEO, classes=CLASSES))
    assert [(r.frame_number, r.label) for r in got] == [(0, "car"), (1, "car"), (2, "car")]
    assert all(_close(r.box, (10.5 + r.frame_number, 20.25, 110.5 + r.frame_number, 70.25)) for r in got)


def test_label_studio_predictions_come_back_as_the_detections_they_were(tmp_path):
    from formats import Detection

    dets = [Detection(f, "car", (10.0 + f, 20.0, 60.0 + f, 90.0), 0.5 + f / 100, 4) for f in (0, 1, 5, 9)]
    formats.write("label_studio", tmp_path / "p.json", iter(dets), video=VIDEO, classes=CLASSES, kind="results")
    doc = json.loads((tmp_path / "p.json").read_text())
    seq = doc[0]["predictions"][0]["result"][0]["value"]["sequence"]
    # no box is invented between detections: every segment ends where the next frame has none
    assert [(k["frame"], k["enabled"]) for k in seq] == [(1, True), (2, False), (6, False), (10, False)]
    back = list(formats.open_reader("label_studio", tmp_path / "p.json", video=VIDEO, classes=CLASSES,
                                    options=ReadOptions(kind="results")))
    assert [(d.frame_number, d.track_id, d.score) for d in back] == [(0, 4, 0.5), (1, 4, 0.51), (5, 4, 0.55),
                                                                      (9, 4, 0.59)]
