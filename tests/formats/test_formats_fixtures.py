"""Files other tools wrote (datumaro's and labelformat's own test assets) import correctly."""
from __future__ import annotations

import math

import pytest

import formats
from formats import FormatError, ReadOptions, VideoInfo

LABELFORMAT_FRAMES = {"a-weird Filename.asdf.jpg": 0, "aNother-weird__ filename.with.many.characters.jpg": 1}
LABELFORMAT_STEMS = {"a-weird Filename.asdf": 0, "aNother-weird__ filename.with.many.characters": 1}


def _read(fmt, path, video=None, classes=None, **opt):
    return list(formats.open_reader(fmt, path, video=video, classes=classes, options=ReadOptions(**opt)))


def test_mot_sequence_with_labels_txt(fixtures_dir):
    recs = _read("mot", fixtures_dir / "datumaro/mot_dataset/mot_seq", VideoInfo(16, 16, 1))
    assert len(recs) == 1
    r = recs[0]
    # gt.txt "1,-1,0,4,4,8,1,3,1.0": 1-based frame 1, no track, class 3 of labels.txt
    assert (r.frame_number, r.track_id, r.label, r.box, r.visibility) == (0, None, "label_2", (0, 4, 4, 12), 1.0)


def test_mot_seqinfo_checked_and_label_map_applied(fixtures_dir):
    path = fixtures_dir / "datumaro/mot_dataset/mot_seq_with_seqinfo"
    recs = _read("mot", path, VideoInfo(16, 16, 1), ["pedestrian"], label_map={"label_2": "pedestrian"})
    assert [r.label for r in recs] == ["pedestrian"]
    with pytest.raises(FormatError) as exc:
        _read("mot", path, VideoInfo(1920, 1080, 100), ["pedestrian"], label_map={"label_2": "pedestrian"},
              on_error="skip")
    issue = exc.value.issues[0]
    assert issue.code == "video_mismatch" and "16x16" in issue.message and "1920x1080" in issue.message
    assert issue.file == "seqinfo.ini"


def test_cvat_video_with_start_frame_and_step(fixtures_dir):
    path = fixtures_dir / "datumaro/cvat_dataset/for_video/annotations.xml"
    reader = formats.open_reader("cvat_video", path, video=VideoInfo(25, 20, 20))
    report = reader.validate()
    assert report.valid and report.records_total == 3
    # points, polylines and skeletons are reported as skipped, not silently dropped
    skipped = " ".join(i.message for i in report.issues if i.code == "unsupported")
    assert "points" in skipped and "polyline" in skipped and "skeleton" in skipped
    recs = list(reader)
    assert [(r.frame_number, r.track_id, r.label, r.outside, r.occluded, r.keyframe) for r in recs] == [
        (10, 0, "II", False, True, True), (13, 0, "II", True, False, True), (16, 0, "II", True, False, True)]
    assert recs[0].box == (3.0, 4.0, 10.0, 5.0)


def test_cvat_video_refuses_a_shorter_video(fixtures_dir):
    path = fixtures_dir / "datumaro/cvat_dataset/for_video/annotations.xml"
    report = formats.validate("cvat_video", path, video=VideoInfo(25, 20, 15))
    assert not report.valid
    assert any(i.code == "video_mismatch" and "19" in i.message and "15" in i.message for i in report.issues)


def test_cvat_for_images_is_refused_clearly(fixtures_dir):
    report = formats.validate("cvat_video", fixtures_dir / "datumaro/cvat_dataset/for_images/train.xml")
    assert [i.code for i in report.issues] == ["wrong_format"]
    assert "CVAT for images" in report.issues[0].message


def test_coco_instances_from_datumaro(fixtures_dir):
    recs = _read("coco", fixtures_dir / "datumaro/coco_dataset/coco_instances",
                 frame_map={"a.jpg": 0, "b.jpg": 1})
    assert [(r.frame_number, r.label, r.box) for r in recs] == [
        (0, "b", (2.0, 2.0, 5.0, 3.0)), (1, "a", (0.0, 0.0, 1.0, 2.0)), (1, "b", (0.0, 0.0, 1.0, 9.0))]
    assert recs[1].attributes == {"x": 1, "y": "hello"}
    assert recs[2].attributes == {"iscrowd": 1}


def test_coco_keypoints_keep_the_box_and_say_so(fixtures_dir):
    reader = formats.open_reader("coco", fixtures_dir / "datumaro/coco_dataset/coco_person_keypoints",
                                 options=ReadOptions(frame_map={"a.jpg": 0, "b.jpg": 1}))
    report = reader.validate()
    assert report.valid and report.records_total == 3
    assert any(i.code == "unsupported" and "keypoints" in i.message for i in report.issues)


def test_coco_image_labels_only_is_rejected_clearly(fixtures_dir):
    report = formats.validate("coco", fixtures_dir / "datumaro/coco_dataset/coco_labels",
                              options=ReadOptions(frame_map={"a.jpg": 0, "b.jpg": 1}))
    assert not report.valid and report.records_total == 0
    assert report.issues[0].code == "unsupported" and "bbox" in report.issues[0].message


def test_coco_without_frame_information_asks_for_frame_map(fixtures_dir):
    report = formats.validate("coco", fixtures_dir / "labelformat/COCO/train.json")
    assert not report.valid
    assert {i.pointer for i in report.issues if i.field == "file_name"} == {"/images/0", "/images/1"}


def test_yolo_layouts_from_datumaro(fixtures_dir):
    base = fixtures_dir / "datumaro/yolo_dataset"
    expected = None
    for variant in ("yolo", "yolov8_detection", "yolov8_detection_with_list_of_imgs",
                    "yolov8_detection_with_list_of_names", "yolov8_detection_with_subset_txt"):
        recs = _read("yolo", base / variant, VideoInfo(15, 10, 5))
        got = [(r.frame_number, r.label, tuple(round(v, 3) for v in r.box)) for r in recs]
        assert got == [(1, "label_2", (-0.0, 2.0, 4.0, 4.0)), (1, "label_4", (3.0, 3.0, 5.0, 6.0))], variant
        expected = expected or got
        assert got == expected


@pytest.mark.parametrize("variant,words", [
    ("yolov8_pose", "pose"), ("yolov8_pose_two_values_per_point", "pose"),
    ("yolov8_segmentation", "segmentation"), ("yolov8_oriented_boxes", "oriented"),
    ("yolov8_classification", "classification"),
])
def test_yolo_variants_we_do_not_import_are_rejected_clearly(fixtures_dir, variant, words):
    report = formats.validate("yolo", fixtures_dir / "datumaro/yolo_dataset" / variant, video=VideoInfo(15, 10, 5))
    assert not report.valid and report.records_total == 0
    assert any(i.code == "unsupported" and words in i.message for i in report.issues), report.issues


def test_labelformat_coco_and_yolo_give_the_same_boxes_on_the_same_frames(fixtures_dir):
    coco = _read("coco", fixtures_dir / "labelformat/COCO/train.json", frame_map=LABELFORMAT_FRAMES)
    # the two images differ in height (416 and 428): read each YOLO frame with its own size
    yolo = []
    for frame, height in ((0, 416), (1, 428)):
        recs = _read("yolo", fixtures_dir / "labelformat/YOLOv8", VideoInfo(640, height, 2), None,
                     frame_map=LABELFORMAT_STEMS)
        yolo += [r for r in recs if r.frame_number == frame]
    assert len(coco) == len(yolo) == 16
    assert [(r.frame_number, r.label) for r in coco] == [(r.frame_number, r.label) for r in yolo]
    for c, y in zip(coco, yolo, strict=True):
        assert all(math.isclose(a, b, abs_tol=1.0) for a, b in zip(c.box, y.box, strict=True))


def test_label_map_to_project_classes(fixtures_dir):
    project = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
    path = fixtures_dir / "labelformat/COCO/train.json"
    report = formats.validate("coco", path, classes=project, options=ReadOptions(frame_map=LABELFORMAT_FRAMES))
    unknown = [i for i in report.issues if i.code == "unknown_class"]
    assert unknown and all(i.pointer.startswith("/categories/") and i.field == "name" for i in unknown)
    opts = ReadOptions(frame_map=LABELFORMAT_FRAMES, label_map={"person": "pedestrian"}, add_missing_labels=True)
    reader = formats.open_reader("coco", path, classes=project, options=opts)
    recs = list(reader)
    assert "pedestrian" in {r.label for r in recs} and "person" not in {r.label for r in recs}
    assert "dog" in reader.added_labels
