"""Other tools are the oracle: what we write loads in their readers, what they write loads in ours.

Peers: datumaro (CVAT, COCO, YOLO/Ultralytics, MOT, KITTI readers and writers) and pycocotools.
Every comparison is of counts, boxes (within 0.01 px), frames, labels and track ids.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import formats
from formats import Annotation, Detection, ReadOptions, VideoInfo
from keyframes import Keyframe, Timeline, Track
from keyframes.exchange import records_by_frame, records_by_track

VIDEO = VideoInfo(64, 48, 20, 10.0, "clip", "v1")
CLASSES = ["pedestrian", "cyclist", "motorcyclist", "car", "bicycle"]


@pytest.fixture(scope="module")
def dm():
    """datumaro, the peer reader and writer (in the dev extra); only its tests skip without it."""
    return pytest.importorskip("datumaro")


def _jpeg(frame: int) -> bytes:
    import cv2

    image = np.full((VIDEO.height, VIDEO.width, 3), frame * 10 % 255, np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def _close(a, b, tol: float = 0.01) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _dm_boxes(dm, ds) -> list[tuple]:
    """(frame, label, x1, y1, x2, y2, track id or None) of every box datumaro read."""
    names = ds.categories()[dm.AnnotationType.label]
    out = []
    for item in ds:
        frame = int(item.id.rsplit("_", 1)[-1])
        for a in item.annotations:
            if a.type == dm.AnnotationType.bbox and not a.attributes.get("outside", False):
                x, y, w, h = a.get_bbox()
                tid = a.attributes.get("track_id")
                out.append((frame, names[a.label].name, x, y, x + w, y + h, tid))
    return sorted(out, key=lambda t: (t[0], t[1], t[2]))


def _ours(records) -> list[tuple]:
    return sorted(((r.frame_number, r.label, *r.box, r.track_id) for r in records
                   if not getattr(r, "outside", False)), key=lambda t: (t[0], t[1], t[2]))


def _same(theirs: list[tuple], ours: list[tuple], tracks: bool = True) -> None:
    assert len(theirs) == len(ours) > 0
    for t, o in zip(theirs, ours, strict=True):
        assert t[:2] == o[:2] and _close(t[2:6], o[2:6]), (t, o)
        if tracks:
            assert t[6] == o[6], (t, o)


def _gapped_tracks() -> list[Track]:
    """Track 7 visible on 0-4 (frame 2 interpolated by the source, off the line, and occluded), gone
    on 5-7, back on 8-9; track 12 on 3-6, ending before the video does."""
    return [
        Track(7, "pedestrian", 0.0, 0.9, None, [Keyframe.stored(*k) for k in [
            (0, (1.0, 2.0, 11.0, 22.0), {}),
            (2, (5.5, 2.0, 15.5, 22.0), {"keyframe": False, "occluded": True}),
            (4, (9.0, 2.0, 19.0, 22.0), {}),
            (5, (9.0, 2.0, 19.0, 22.0), {"outside": True}),
            (8, (30.0, 10.0, 40.0, 30.0), {}),
            (9, (31.0, 10.0, 41.0, 30.0), {"occluded": True})]]),
        Track(12, "car", 0.3, 0.6, (20.0, 20.0, 30.25, 40.75), []),
    ]


# ----------------------------------------------------------------------------- gaps and outside


def test_an_outside_keyframe_is_a_gap_in_ground_truth():
    from evaluation.ground_truth import ground_truth_boxes

    timeline = Timeline.constant(20, 10.0)
    track = Track(0, "", 0.0, 1.5, None, (Keyframe(0, (0, 0, 10, 10)), Keyframe(5, (0, 0, 10, 10), True),
                                          Keyframe(10, (20, 0, 30, 10))), class_id=0)
    gt = ground_truth_boxes([track], timeline)
    # no box where the object is gone (5-9), and no interpolation across the gap
    assert sorted(gt.frame_index.tolist()) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15]
    assert not np.isnan(gt.xyxy).any()


def test_export_ends_each_segment_with_an_outside_shape():
    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    recs = list(records_by_track(_gapped_tracks(), timeline))
    got = [(r.track_id, r.frame_number, r.outside, r.keyframe, r.occluded) for r in recs]
    assert got == [(7, 0, False, True, False), (7, 1, False, False, False), (7, 2, False, False, True),
                   (7, 3, False, False, False), (7, 4, False, True, False), (7, 5, True, True, False),
                   (7, 8, False, True, False), (7, 9, False, True, True), (7, 10, True, True, False),
                   (12, 3, False, True, False), (12, 4, False, False, False), (12, 5, False, False, False),
                   (12, 6, False, False, False), (12, 7, True, True, False)]
    assert recs[2].box == (5.5, 2.0, 15.5, 22.0)  # the source's own box, not a re-interpolation
    # the same records, by frame in windows smaller than a track
    by_frame = list(records_by_frame(_gapped_tracks(), timeline, window=3))
    key = [(r.track_id, r.frame_number, r.outside, r.box) for r in recs]
    assert sorted(key) == sorted((r.track_id, r.frame_number, r.outside, r.box) for r in by_frame)


def test_cvat_export_loads_in_datumaro_with_tracks_gaps_and_flags(tmp_path, dm):
    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    out = tmp_path / "cvat"
    out.mkdir()
    formats.write("cvat_video", out / "annotations.xml", records_by_track(_gapped_tracks(), timeline), video=VIDEO,
                  classes=CLASSES)
    ds = dm.Dataset.import_from(str(out), "cvat")
    ours = list(formats.open_reader("cvat_video", out / "annotations.xml", video=VIDEO, classes=CLASSES))
    _same(_dm_boxes(dm, ds), _ours(ours))
    flags = {(int(i.id.rsplit("_", 1)[-1]), a.attributes["track_id"]): (a.attributes["outside"],
                                                                         a.attributes["occluded"],
                                                                         a.attributes["keyframe"])
             for i in ds for a in i.annotations}
    assert flags[(5, 7)] == (True, False, True) and flags[(10, 7)] == (True, False, True)
    assert flags[(7, 12)][0] is True  # track 12 ends at 6 in CVAT too, not at the end of the video
    assert flags[(2, 7)] == (False, True, False)
    assert (6, 7) not in flags


# ----------------------------------------------------------------------------- CVAT written by CVAT


def test_cvat_skeletons_points_and_polylines_are_skipped_with_located_warnings(fixtures_dir):
    path = fixtures_dir / "datumaro/cvat_dataset/for_video/annotations.xml"
    # the project knows only the label of the box track: the other tracks' labels are never asked for
    report = formats.validate("cvat_video", path, video=VideoInfo(25, 20, 20), classes=["II"])
    assert report.valid, [str(i) for i in report.issues]
    warned = [i for i in report.issues if i.code == "unsupported"]
    assert {i.line for i in warned} == {119, 127, 133}  # the first shape of tracks 1, 2 and 3
    assert all(i.severity == "warning" and i.file == "annotations.xml" for i in warned)
    assert "track 3 (label 'skeleton') holds skeleton shapes" in " ".join(i.message for i in warned)


def test_cvat_shapes_of_other_kinds_only_is_an_error(tmp_path):
    xml = ('<annotations><version>1.1</version><track id="0" label="pedestrian">'
           '<points frame="0" outside="0" occluded="0" keyframe="1" points="1,2"/></track></annotations>')
    (tmp_path / "a.xml").write_text(xml)
    report = formats.validate("cvat_video", tmp_path / "a.xml", video=VIDEO, classes=CLASSES)
    assert not report.valid and any("holds no boxes" in i.message for i in report.issues)


# ----------------------------------------------------------------------------- COCO


def test_coco_results_list_categories_come_from_label_map_not_position(tmp_path):
    results = [{"image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20], "score": 0.9},
               {"image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.8}]
    path = tmp_path / "res.json"
    path.write_text(json.dumps(results))
    mapped = list(formats.open_reader("coco", path, video=VIDEO, classes=CLASSES,
                                      options=ReadOptions(kind="results", label_map={"3": "car", "2": "bicycle"})))
    assert [(r.frame_number, r.label) for r in mapped] == [(0, "car"), (1, "bicycle")]
    # without a map the platform's own numbering is used, and said, once per category
    report = formats.validate("coco", path, video=VIDEO, classes=CLASSES, options=ReadOptions(kind="results"))
    said = [i for i in report.issues if i.code == "class_mapped"]
    assert [(i.pointer, i.severity) for i in said] == [("/0", "warning"), ("/1", "warning")]
    assert "'motorcyclist'" in said[0].message and "label_map" in said[0].message
    # an id the map does not hold is an error at its place, naming the fix
    partial = formats.validate("coco", path, video=VIDEO, classes=CLASSES,
                               options=ReadOptions(kind="results", label_map={"3": "car"}))
    bad = [i for i in partial.issues if i.severity == "error"]
    assert [(i.pointer, i.field) for i in bad] == [("/1", "category_id")] and '"2"' in bad[0].message


def test_coco_vid_instance_id_is_the_track(tmp_path):
    doc = {"videos": [{"id": 1, "name": "seq"}],
           "images": [{"id": 10 + f, "video_id": 1, "frame_id": f, "file_name": f"seq/{f:06d}.jpg", "width": 64,
                       "height": 48} for f in range(2)],
           "categories": [{"id": 1, "name": "pedestrian"}],
           "annotations": [{"id": 100 + 2 * t + f, "image_id": 10 + f, "category_id": 1, "instance_id": 50 + t,
                            "bbox": [t * 10, f, 5, 5], "area": 25, "iscrowd": 0} for t in range(5) for f in range(2)]}
    path = tmp_path / "vid.json"
    path.write_text(json.dumps(doc))
    recs = list(formats.open_reader("coco", path, video=VIDEO, classes=CLASSES))
    assert len(recs) == 10
    assert sorted({r.track_id for r in recs}) == [50, 51, 52, 53, 54]
    assert all(r.frame_number == int(r.box[1]) for r in recs)


def test_coco_export_loads_in_pycocotools_and_datumaro(tmp_path, dm):
    from pycocotools.coco import COCO

    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    recs = [r for r in records_by_frame(_gapped_tracks(), timeline) if not r.outside]
    path = tmp_path / "annotations" / "instances_default.json"
    path.parent.mkdir()
    formats.write("coco", path, iter(recs), video=VIDEO, classes=CLASSES)
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(recs)
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    frames = {i["id"]: i["frame_number"] for i in coco.loadImgs(coco.getImgIds())}
    theirs = sorted(((frames[a["image_id"]], cats[a["category_id"]], a["bbox"][0], a["bbox"][1],
                      a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3], a["track_id"]) for a in anns),
                    key=lambda t: (t[0], t[1], t[2]))
    _same(theirs, _ours(recs))
    (tmp_path / "images").mkdir()  # datumaro wants the folder, not the frames
    ds = dm.Dataset.import_from(str(tmp_path), "coco_instances")
    boxes = sorted((a.label, *a.get_bbox()) for i in ds for a in i.annotations)
    assert len(boxes) == len(recs)
    names = ds.categories()[dm.AnnotationType.label]
    assert sorted({names[b[0]].name for b in boxes}) == ["car", "pedestrian"]
    # results: pycocotools' own loader takes our results list against our ground truth
    dets = [Detection(r.frame_number, r.label, r.box, 0.5, r.track_id, None, "v1") for r in recs]
    res = tmp_path / "res.json"
    formats.write("coco", res, iter(dets), video=VIDEO, classes=CLASSES, kind="results")
    loaded = coco.loadRes(str(res))
    assert len(loaded.getAnnIds()) == len(dets)
    got = sorted(tuple(a["bbox"]) for a in loaded.loadAnns(loaded.getAnnIds()))
    want = sorted((d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in dets)
    assert all(_close(g, w) for g, w in zip(got, want, strict=True))


def test_coco_written_by_datumaro_imports(tmp_path, dm):
    ds = dm.Dataset.from_iterable([
        dm.DatasetItem(id=f"frame_{f:06d}", media=dm.Image.from_numpy(np.zeros((48, 64, 3), np.uint8)),
                       annotations=[dm.Bbox(1.5 + f, 2.25, 10, 20, label=0), dm.Bbox(30, 5, 4.5, 6, label=1)])
        for f in range(3)], categories=["pedestrian", "car"])
    ds.export(str(tmp_path / "coco"), "coco_instances")
    path = next((tmp_path / "coco" / "annotations").glob("*.json"))
    recs = list(formats.open_reader("coco", path, video=VIDEO, classes=CLASSES))
    theirs = sorted((int(i.id.rsplit("_", 1)[-1]), ["pedestrian", "car"][a.label], a.x, a.y, a.x + a.w, a.y + a.h,
                     None) for i in ds for a in i.annotations)
    _same(theirs, _ours(recs))


# ----------------------------------------------------------------------------- YOLO


def _unzip(path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(dest)
    return dest


def test_yolo_export_is_a_dataset_datumaro_loads(tmp_path, dm):
    import yaml

    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    recs = [r for r in records_by_frame(_gapped_tracks(), timeline) if not r.outside]
    formats.write("yolo", tmp_path / "y.zip", iter(recs), video=VIDEO, classes=CLASSES, images=_jpeg)
    root = _unzip(tmp_path / "y.zip", tmp_path / "y")
    data = yaml.safe_load((root / "data.yaml").read_text())
    assert (root / data["train"]).is_dir() and (root / data["val"]).is_dir()
    assert data["names"] == dict(enumerate(CLASSES))
    labels = sorted(p.stem for p in (root / "labels/train").glob("*.txt"))
    assert labels == sorted(p.stem for p in (root / "images/train").glob("*.jpg"))
    ds = dm.Dataset.import_from(str(root), "yolo")
    assert len(ds) == len(labels)
    _same(_dm_boxes(dm, ds), _ours(recs), tracks=False)


def test_yolo_written_by_datumaro_ultralytics_imports(tmp_path, dm):
    ds = dm.Dataset.from_iterable([
        dm.DatasetItem(id=f"frame_{f:06d}", subset="train" if f < 2 else "val",
                       media=dm.Image.from_numpy(np.zeros((48, 64, 3), np.uint8)),
                       annotations=[dm.Bbox(1.5 + f, 2.25, 10, 20, label=1)]) for f in range(3)],
        categories=["pedestrian", "car"])
    ds.export(str(tmp_path / "y"), "yolo_ultralytics", save_media=True)
    recs = list(formats.open_reader("yolo", tmp_path / "y", video=VIDEO, classes=CLASSES))
    theirs = sorted((int(i.id.rsplit("_", 1)[-1]), "car", a.x, a.y, a.x + a.w, a.y + a.h, None)
                    for i in ds for a in i.annotations)
    _same(theirs, _ours(recs), tracks=False)


def test_yolo_detection_with_another_labels_folder_name_is_read(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.yaml", "train: images/train\nval: images/train\nnames: [pedestrian]\n")
        zf.writestr("images/train/frame_000003.jpg", _jpeg(3))
        zf.writestr("Annotations/train/frame_000003.txt", "0 0.5 0.5 0.25 0.5\n")
    (tmp_path / "d.zip").write_bytes(buf.getvalue())
    reader = formats.open_reader("yolo", tmp_path / "d.zip", video=VIDEO, classes=CLASSES)
    report = reader.validate()
    assert report.valid and report.records_total == 1, [str(i) for i in report.issues]
    assert any(i.severity == "warning" and "Annotations/train" in i.message for i in report.issues)
    (rec,) = list(reader)
    assert rec.frame_number == 3 and _close(rec.box, (24.0, 12.0, 40.0, 36.0))


# ----------------------------------------------------------------------------- MOT


def test_mot_export_keeps_track_ids_and_mot17_classes(tmp_path):
    recs = [Annotation(f, label, (10.0 + f, 5.0, 20.5 + f, 30.0), tid) for f in range(3)
            for tid, label in ((7, "pedestrian"), (42, "car"))]
    formats.write("mot", tmp_path / "m.zip", iter(recs), video=VIDEO, classes=["pedestrian", "car"])
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        gt = zf.read("clip/gt/gt.txt").decode()
    rows = [line.split(",") for line in gt.splitlines()]
    assert {(r[1], r[7]) for r in rows} == {("7", "1"), ("42", "3")}  # MOT17: pedestrian 1, car 3
    back = list(formats.open_reader("mot", tmp_path / "m.zip", video=VIDEO, classes=["pedestrian", "car"]))
    _same(_ours(back), _ours(recs))


def test_yolo_export_passes_ultralytics_own_dataset_checker(tmp_path, monkeypatch):
    """Runs where Ultralytics is importable (it is not in the dev extra: see the README's matrix)."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    pytest.importorskip("ultralytics")
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    recs = [r for r in records_by_frame(_gapped_tracks(), timeline) if not r.outside]
    formats.write("yolo", tmp_path / "y.zip", iter(recs), video=VIDEO, classes=CLASSES, images=_jpeg)
    root = _unzip(tmp_path / "y.zip", tmp_path / "y")
    data = check_det_dataset(str(root / "data.yaml"), autodownload=False)
    assert data["nc"] == len(CLASSES) and data["names"] == dict(enumerate(CLASSES))
    ds = YOLODataset(img_path=data["train"], data=data, task="detect", imgsz=64, augment=False)
    theirs = []
    for lab in ds.labels:
        frame = int(Path(lab["im_file"]).stem.rsplit("_", 1)[-1])
        for c, (cx, cy, w, h) in zip(lab["cls"].ravel().tolist(), lab["bboxes"].tolist(), strict=True):
            theirs.append((frame, CLASSES[int(c)], (cx - w / 2) * VIDEO.width, (cy - h / 2) * VIDEO.height,
                           (cx + w / 2) * VIDEO.width, (cy + h / 2) * VIDEO.height, None))
    _same(sorted(theirs, key=lambda t: (t[0], t[1], t[2])), _ours(recs), tracks=False)


def test_mot_export_loads_in_datumaro_with_track_ids(tmp_path, dm):
    timeline = Timeline.constant(VIDEO.frame_count, VIDEO.fps)
    recs = [r for r in records_by_frame(_gapped_tracks(), timeline) if not r.outside]
    formats.write("mot", tmp_path / "m.zip", iter(recs), video=VIDEO, classes=CLASSES)
    root = _unzip(tmp_path / "m.zip", tmp_path / "m") / "clip"
    ds = dm.Dataset.import_from(str(root), "mot_seq")
    names = ds.categories()[dm.AnnotationType.label]
    # datumaro numbers MOT frames from 1 as the file does; its item ids are those numbers
    theirs = sorted(((int(i.id) - 1, names[a.label].name, a.x, a.y, a.x + a.w, a.y + a.h, a.attributes["track_id"])
                     for i in ds for a in i.annotations), key=lambda t: (t[0], t[1], t[2]))
    _same(theirs, _ours(recs))
