"""MOTChallenge files as the benchmarks, the trackers and the devkits write them."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import formats
from formats import Annotation, Detection, FormatError, ReadOptions, VideoInfo
from formats.mot import IGNORE_ATTRIBUTE, MOT17_CLASSES, NO_SCORE

VIDEO = VideoInfo(width=1920, height=1080, frame_count=600, fps=30.0, name="MOT17-09", video_id="v1")
SEQINFO = ("[Sequence]\r\nname=MOT17-09-FRCNN\r\nimDir=img1\r\nframeRate=30\r\nseqLength=525\r\n"
           "imWidth=1920\r\nimHeight=1080\r\nimExt=.jpg\r\n")
# MOT17 ground truth: frame,id,x,y,w,h,conf(consider),class,visibility
MOT17_GT = [
    "1,1,257,210,62,182,1,1,0.95",
    "1,2,657,193,35,98,0,7,1",        # static person, marked "do not evaluate"
    "1,3,1093,384,118,102,0,3,0.5",   # car
    "2,1,259,211,62,182,1,1,0.88",
    "2,2,657,193,35,98,0,7,1",
]


def _read(path, kind=None, classes=None, **opt) -> list:
    return list(formats.open_reader("mot", path, video=VIDEO, classes=classes,
                                    options=ReadOptions(kind=kind, **opt)))


def _validate(path, kind=None, classes=None, **opt):
    return formats.validate("mot", path, video=VIDEO, classes=classes, options=ReadOptions(kind=kind, **opt))


def _write(path: Path, lines: list[str], crlf: bool = False, final_newline: bool = True) -> Path:
    sep = "\r\n" if crlf else "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((sep.join(lines) + (sep if final_newline else "")).encode())
    return path


def test_tracker_results_with_world_placeholders_take_the_default_label(tmp_path):
    # what a tracker submits to the benchmark: frame,id,x,y,w,h,conf,-1,-1,-1
    p = _write(tmp_path / "MOT17-09-FRCNN.txt", ["1,1,257.5,210,62,182,0.93,-1,-1,-1",
                                                 "2,1,259,211,62,182,0.91,-1,-1,-1",
                                                 "2,4,600,200,40,90,0.4,-1,-1,-1"])
    report = _validate(p, "results", ["pedestrian", "cyclist"])
    assert report.errors == 3
    assert all("default_label" in i.message for i in report.issues)
    recs = _read(p, "results", ["pedestrian", "cyclist"], default_label="pedestrian")
    assert all(isinstance(r, Detection) for r in recs)
    assert [(r.frame_number, r.track_id, r.label, r.score) for r in recs] == [
        (0, 1, "pedestrian", 0.93), (1, 1, "pedestrian", 0.91), (1, 4, "pedestrian", 0.4)]
    assert recs[0].box == (257.5, 210, 319.5, 392)


def test_mot15_ground_truth_world_coordinates_are_not_a_class(tmp_path):
    # MOT15 (2D MOT 2015) gt: conf then world x,y,z
    p = _write(tmp_path / "PETS09-S2L1" / "gt" / "gt.txt",
               ["1,1,533.0,61.0,48.0,140.0,1,4.4852,9.9731,0",
                "1,2,584.0,120.0,54.0,155.0,1,-1,-1,-1",
                "2,1,535.0,62.0,48.0,140.0,1,4.5101,9.9612,0"])
    report = _validate(p.parent.parent, classes=["pedestrian"], default_label="pedestrian")
    assert report.valid and report.warnings == 0, [str(i) for i in report.issues]
    recs = _read(p.parent.parent, classes=["pedestrian"], default_label="pedestrian")
    assert [(r.frame_number, r.track_id, r.label, r.visibility) for r in recs] == [
        (0, 1, "pedestrian", None), (0, 2, "pedestrian", None), (1, 1, "pedestrian", None)]


def test_bare_gt_txt_says_which_class_list_it_assumed(tmp_path):
    p = _write(tmp_path / "gt.txt", MOT17_GT)
    report = _validate(p, add_missing_labels=True)
    warnings = [i for i in report.issues if i.code == "assumed_class_list"]
    assert len(warnings) == 1
    w = warnings[0]
    assert (w.severity, w.file, w.line, w.field) == ("warning", "gt.txt", 1, "class")
    assert "MOT17" in w.message and "labels.txt" in w.message and "7 static_person" in w.message
    # with a labels.txt beside it nothing is assumed
    (tmp_path / "labels.txt").write_text("\n".join(MOT17_CLASSES) + "\n")
    assert not [i for i in _validate(tmp_path, add_missing_labels=True).issues if i.code == "assumed_class_list"]


def test_mot17_sequence_folder_crlf_comments_no_final_newline(tmp_path):
    seq = tmp_path / "MOT17-09-FRCNN"
    _write(seq / "gt" / "gt.txt", ["# MOT17 ground truth", *MOT17_GT], crlf=True, final_newline=False)
    (seq / "seqinfo.ini").write_bytes(SEQINFO.encode())
    _write(seq / "det" / "det.txt", ["1,-1,250,205,70,190,0.998,-1,-1,-1", "2,-1,261,209,60,180,0.87,-1,-1,-1"],
           crlf=True)
    gt = _read(seq, classes=["pedestrian"], add_missing_labels=True)
    assert [type(r) for r in gt] == [Annotation] * 5
    assert [(r.frame_number, r.track_id, r.label) for r in gt] == [
        (0, 1, "pedestrian"), (0, 2, "static_person"), (0, 3, "car"), (1, 1, "pedestrian"), (1, 2, "static_person")]
    assert [r.visibility for r in gt] == [0.95, 1.0, 0.5, 0.88, 1.0]
    # conf 0 ("not evaluated") survives as an attribute, the class name too when label_map renames it
    assert [bool(r.attributes.get(IGNORE_ATTRIBUTE)) for r in gt] == [False, True, True, False, True]
    renamed = _read(seq, classes=["pedestrian", "car"], label_map={"static_person": "pedestrian"})
    assert renamed[1].label == "pedestrian" and renamed[1].attributes["mot_class"] == "static_person"
    # a results import of the same folder reads the detections, not the ground truth
    det = _read(seq, "results", ["pedestrian"], default_label="pedestrian")
    assert [(r.frame_number, r.track_id, r.score) for r in det] == [(0, None, 0.998), (1, None, 0.87)]
    # with a tracker's output beside det.txt, which file holds the results is a choice, not a guess
    _write(seq / "MOT17-09-FRCNN.txt", ["1,5,250,205,70,190,0.9,-1,-1,-1"])
    report = _validate(seq, "results", ["pedestrian"], default_label="pedestrian")
    assert [i.code for i in report.issues] == ["structure"] and "video_id" in report.issues[0].message
    picked = _read(seq, "results", ["pedestrian"], default_label="pedestrian", video_id="MOT17-09-FRCNN")
    assert [(r.track_id, r.score) for r in picked] == [(5, 0.9)]


def test_a_wrong_size_seqinfo_still_refuses(tmp_path):
    seq = tmp_path / "s"
    _write(seq / "gt" / "gt.txt", MOT17_GT)
    (seq / "seqinfo.ini").write_text(SEQINFO.replace("imWidth=1920", "imWidth=640"))
    with pytest.raises(FormatError) as exc:
        _read(seq, add_missing_labels=True, on_error="skip")
    assert exc.value.issues[0].code == "video_mismatch"


@pytest.mark.parametrize("columns", [7, 10])
def test_conf_minus_one_is_no_score_kept_and_reported(tmp_path, columns):
    tail = "" if columns == 7 else ",-1,-1,-1"
    p = _write(tmp_path / "trk.txt", [f"1,1,10,10,20,40,-1{tail}", f"1,2,50,10,20,40,-1{tail}",
                                      f"2,1,11,10,20,40,0.5{tail}"])
    report = _validate(p, "results", ["pedestrian"], default_label="pedestrian")
    assert report.valid
    [w] = [i for i in report.issues if i.code == "no_score"]
    assert w.severity == "warning" and w.line == 1 and "2 result(s)" in w.message
    recs = _read(p, "results", ["pedestrian"], default_label="pedestrian")
    assert [r.score for r in recs] == [NO_SCORE, NO_SCORE, 0.5]


def test_default_label_must_be_a_project_class(tmp_path):
    p = _write(tmp_path / "trk.txt", ["1,1,10,10,20,40,0.9,-1,-1,-1"])
    report = _validate(p, "results", ["pedestrian"], default_label="person")
    assert [i.code for i in report.issues] == ["unknown_class"]
    assert _read(p, "results", ["pedestrian"], default_label="person", label_map={"person": "pedestrian"})


def test_ignore_mark_survives_export(tmp_path):
    recs = [Annotation(0, "pedestrian", (1, 2, 11, 22), 5, confidence=0.0, visibility=0.3,
                       attributes={IGNORE_ATTRIBUTE: True}),
            Annotation(0, "pedestrian", (30, 2, 41, 22), 6, visibility=1.0)]
    out = tmp_path / "gt.zip"
    formats.write("mot", out, recs, video=VIDEO, classes=["pedestrian"])
    with zipfile.ZipFile(out) as zf:
        lines = zf.read("MOT17-09/gt/gt.txt").decode().splitlines()
    assert lines == ["1,5,1,2,10,20,0,1,0.3", "1,6,30,2,11,20,1,1,1"]
    back = _read(out, classes=["pedestrian"])
    assert [r.attributes for r in back] == [{IGNORE_ATTRIBUTE: True}, {}]
