"""Validation reports every problem with where it is, and on_error decides what an import does."""
from __future__ import annotations

import json
import zipfile

import pytest

import formats
from formats import FormatError, ReadOptions, VideoInfo

CLASSES = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
VIDEO = VideoInfo(640, 360, 50)

MOT_LINES = [
    "1,1,10,10,20,20,1,1,1",        # 1 ok
    "0,2,10,10,20,20,1,1,1",        # 2 frame_range (MOT is 1-based)
    "2,3,abc,10,20,20,1,1,1",       # 3 type
    "3,4,10,10,-5,20,1,1,1",        # 4 box_size
    "4,5,1000,1000,20,20,1,1,1",    # 5 box_outside
    "5,6,630,10,20,20,1,1,1",       # 6 partly outside: warning, kept
    "6,7,nan,10,20,20,1,1,1",       # 7 non_finite
    "7,8,10,10,20,20,1,99,1",       # 8 reference (class 99)
    "8,9,10,10",                    # 9 structure
    "9,10,10,10,20,20,1,3,1",       # 10 unknown_class (MOT17 class 3 is car)
    "100,1,10,10,20,20,1,1,1",      # 11 frame_range: beyond the video
]
MOT_EXPECTED = {2: "frame_range", 3: "type", 4: "box_size", 5: "box_outside", 7: "non_finite", 8: "reference",
                9: "structure", 10: "unknown_class", 11: "frame_range"}


@pytest.fixture
def mot_file(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("\n".join(MOT_LINES) + "\n")
    return p


def test_every_problem_is_listed_with_its_line(mot_file):
    report = formats.validate("mot", mot_file, video=VIDEO, classes=CLASSES)
    errors = {i.line: i.code for i in report.issues if i.severity == "error"}
    assert errors == MOT_EXPECTED
    assert all(i.file == "gt.txt" for i in report.issues)
    assert report.records_total == 2 and report.errors == len(MOT_EXPECTED)
    warning = [i for i in report.issues if i.severity == "warning"]
    # a bare gt.txt: the class list it was read with is named once, where it was first used
    assert [(i.line, i.code) for i in warning] == [(1, "assumed_class_list"), (6, "box_partly_outside")]
    fields = {i.line: i.field for i in report.issues if i.severity == "error"}
    assert fields[3] == "x" and fields[8] == "class" and fields[2] == "frame"


def test_abort_imports_nothing_past_the_first_error_and_raises_with_all(mot_file):
    reader = formats.open_reader("mot", mot_file, video=VIDEO, classes=CLASSES)
    got = []
    with pytest.raises(FormatError) as exc:
        for r in reader:
            got.append(r)
    assert len(got) == 1  # only what came before the first error
    assert {i.line for i in exc.value.issues if i.severity == "error"} == set(MOT_EXPECTED)


def test_skip_keeps_good_records_exactly_and_lists_the_bad(mot_file):
    reader = formats.open_reader("mot", mot_file, video=VIDEO, classes=CLASSES,
                                 options=ReadOptions(on_error="skip"))
    recs = list(reader)
    assert [(r.frame_number, r.box) for r in recs] == [(0, (10, 10, 30, 30)), (4, (630, 10, 650, 30))]
    assert len([i for i in reader.issues if i.severity == "error"]) == len(MOT_EXPECTED)


def test_issue_cap_keeps_counts_exact(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("0,1,1,1,1,1,1,1,1\n" * 50)
    report = formats.validate("mot", p, video=VIDEO, classes=CLASSES, options=ReadOptions(max_issues=10))
    assert report.errors == 50 and len(report.issues) == 10 and report.dropped == 40


def _coco_doc():
    return {
        "images": [
            {"id": 1, "width": 640, "height": 360, "frame_number": 0},
            {"id": 1, "width": 640, "height": 360, "frame_number": 1},     # duplicate id
            {"id": "x", "width": 640, "height": 360},                        # id type
            {"id": 3, "width": 640, "height": 360, "file_name": "frame_000012.jpg"},
            {"id": 4, "width": 640, "height": 360, "file_name": "no-number.jpg"},
        ],
        "categories": [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "alien"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 99, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20]},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]},
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, -3, 4]},
            {"id": 6, "image_id": 1, "category_id": 1, "bbox": [700, 10, 5, 5]},
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 10, 5, 5]},
            {"id": 8, "image_id": 1, "category_id": 2, "bbox": [10, 10, 5, 5]},
            {"id": 9, "image_id": 3, "category_id": 1, "bbox": [630, 10, 20, 20]},
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 10, "5", 5]},
        ],
    }


def test_coco_problems_have_json_pointers(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_coco_doc()))  # json.dumps writes NaN, as some tools do
    report = formats.validate("coco", p, video=VIDEO, classes=CLASSES)
    got = {(i.pointer, i.code, i.field) for i in report.issues}
    assert got >= {
        ("/images/1", "duplicate", "id"), ("/images/2", "type", "id"), ("/images/4", "structure", "file_name"),
        ("/categories/1", "unknown_class", "name"),
        ("/annotations/1", "reference", "image_id"), ("/annotations/2", "reference", "category_id"),
        ("/annotations/3", "type", "bbox"), ("/annotations/4", "box_size", "bbox"),
        ("/annotations/5", "box_outside", "bbox"), ("/annotations/6", "non_finite", "bbox"),
        ("/annotations/9", "type", "bbox"), ("/annotations/8", "box_partly_outside", "bbox"),
    }
    recs = list(formats.open_reader("coco", p, video=VIDEO, classes=CLASSES, options=ReadOptions(on_error="skip")))
    # frame numbers come from the frame_number field or the number in file_name
    assert [(r.frame_number, r.box) for r in recs] == [(0, (10.0, 10.0, 30.0, 30.0)), (12, (630.0, 10.0, 650.0, 30.0))]


def test_coco_annotations_before_images_still_read(tmp_path):
    doc = _coco_doc()
    reordered = {"annotations": doc["annotations"][:1], "categories": doc["categories"][:1],
                 "images": doc["images"][:1]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(reordered))
    recs = list(formats.open_reader("coco", p, video=VIDEO, classes=CLASSES))
    assert [(r.frame_number, r.label) for r in recs] == [(0, "pedestrian")]


def test_frame_size_mismatch_is_refused_with_the_numbers_even_with_skip(tmp_path):
    doc = {"images": [{"id": 1, "width": 1920, "height": 1080, "frame_number": 0}],
           "categories": [{"id": 1, "name": "pedestrian"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as exc:
        list(formats.open_reader("coco", p, video=VIDEO, classes=CLASSES, options=ReadOptions(on_error="skip")))
    assert exc.value.issues[0].code == "video_mismatch"
    assert "1920x1080" in str(exc.value) and "640x360" in str(exc.value)


def test_coco_several_videos_need_a_choice(tmp_path):
    doc = {"images": [{"id": 1, "frame_number": 0, "video_id": "a"}, {"id": 2, "frame_number": 0, "video_id": "b"}],
           "categories": [{"id": 1, "name": "pedestrian"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
                           {"id": 2, "image_id": 2, "category_id": 1, "bbox": [2, 2, 5, 5]}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    assert not formats.validate("coco", p, video=VIDEO, classes=CLASSES).valid
    recs = list(formats.open_reader("coco", p, video=VIDEO, classes=CLASSES, options=ReadOptions(video_id="b")))
    assert [(r.box, r.video_id) for r in recs] == [((2.0, 2.0, 7.0, 7.0), "b")]


CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><start_frame>{start}</start_frame><stop_frame>{stop}</stop_frame><frame_filter>step=2</frame_filter>
    <labels><label><name>pedestrian</name></label><label><name>car</name></label></labels>
    <original_size><width>640</width><height>360</height></original_size></task></meta>
  <track id="0" label="pedestrian">
    <box frame="2" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="10" ybr="10" z_order="0"/>
    <box frame="3" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="10" ybr="10" z_order="0"/>
    <box frame="4" outside="0" occluded="0" keyframe="1" xtl="a" ytl="1" xbr="10" ybr="10" z_order="0"/>
    <box frame="6" outside="0" occluded="0" keyframe="1" xtl="9" ytl="1" xbr="3" ybr="10" z_order="0"/>
    <box frame="8" outside="2" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="10" ybr="10" z_order="0"/>
  </track>
  <track id="1" label="bus">
    <box frame="2" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="10" ybr="10" z_order="0"/>
  </track>
  <track id="2" label="car">
    <box frame="2" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="10" ybr="10" z_order="0"/>
  </track>
</annotations>
"""


def test_cvat_problems_have_lines_and_fields(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(CVAT.format(start=0, stop=20))
    report = formats.validate("cvat_video", p, video=VIDEO, classes=CLASSES)
    got = {(i.line, i.code, i.field) for i in report.issues}
    assert got == {(9, "frame_range", "frame"), (10, "type", "xtl"), (11, "box_size", "xtl,ytl,xbr,ybr"),
                   (12, "type", "outside"), (14, "reference", "label"), (17, "unknown_class", "label")}
    assert report.records_total == 1


def test_cvat_end_before_start(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(CVAT.format(start=10, stop=4))
    report = formats.validate("cvat_video", p, video=VIDEO, classes=CLASSES)
    assert any(i.code == "end_before_start" and i.field == "stop_frame" for i in report.issues)


def _yolo_zip(path, lines, names=("pedestrian", "cyclist")):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.yaml", "names:\n" + "".join(f"  - {n}\n" for n in names))
        zf.writestr("labels/train/frame_000003.txt", "".join(line + "\n" for line in lines))
        zf.writestr("labels/train/what.txt", "0 0.5 0.5 0.1 0.1\n")
    return path


def test_yolo_problems_have_member_and_line(tmp_path):
    p = _yolo_zip(tmp_path / "y.zip", ["0 0.5 0.5 0.1 0.1", "7 0.5 0.5 0.1 0.1", "x 0.5 0.5 0.1 0.1",
                                        "0 0.5 0.5", "0 0.5 0.5 0 0.1", "0 5 5 0.1 0.1", "1 0.99 0.5 0.1 0.1"])
    report = formats.validate("yolo", p, video=VIDEO, classes=CLASSES)
    got = {(i.file, i.line, i.code) for i in report.issues}
    member = "labels/train/frame_000003.txt"
    assert got == {(member, 2, "reference"), (member, 3, "type"), (member, 4, "structure"),
                   (member, 5, "box_size"), (member, 6, "box_outside"), (member, 7, "box_partly_outside"),
                   ("labels/train/what.txt", None, "structure")}
    assert report.records_total == 2
    recs = list(formats.open_reader("yolo", p, video=VIDEO, classes=CLASSES, options=ReadOptions(on_error="skip")))
    assert {r.frame_number for r in recs} == {3}


def test_csv_problems_have_line_and_field(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(
        "frame_number,label,x1,y1,x2,y2,occluded,attributes\n"
        "1,pedestrian,1,1,5,5,0,\n"
        "x,pedestrian,1,1,5,5,0,\n"
        "2,pedestrian,1,1,inf,5,0,\n"
        "3,pedestrian,1,1,5,5,maybe,\n"
        "4,pedestrian,1,1,5,5,0,[1]\n"
        "5,pedestrian,1,1,5\n"
        "6,martian,1,1,5,5,0,\n"
        '7,pedestrian,1,1,5,5,0,"{""a"": 1}"\n')
    report = formats.validate("csv", p, video=VIDEO, classes=CLASSES)
    got = {(i.line, i.code, i.field) for i in report.issues}
    assert got == {(3, "type", "frame_number"), (4, "non_finite", "x2"), (5, "type", "occluded"),
                   (6, "type", "attributes"), (7, "structure", None), (8, "unknown_class", "label")}
    recs = list(formats.open_reader("csv", p, video=VIDEO, classes=CLASSES, options=ReadOptions(on_error="skip")))
    assert [r.frame_number for r in recs] == [1, 7] and recs[1].attributes == {"a": 1}


def test_report_is_json_ready(mot_file):
    report = formats.validate("mot", mot_file, video=VIDEO, classes=CLASSES)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["valid"] is False and data["records_total"] == 2
    assert {"severity", "code", "message", "file", "line"} <= set(data["issues"][0])
