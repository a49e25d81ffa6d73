"""COCO files we write load in pycocotools and evaluate as expected; the streaming parser is exact."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

import formats
from formats import Detection, FrameInfo, VideoInfo
from formats.jsonstream import JsonStream, JsonSyntaxError

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def test_pycocotools_loads_our_ground_truth_and_results(tmp_path, annotations, video, classes):
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    frames = [FrameInfo(f, f / 10, "v1") for f in range(video.frame_count)]
    formats.write("coco", gt, annotations, video=video, classes=classes, frames=frames)
    # results identical to the ground truth must score AP 1.0
    perfect = [Detection(a.frame_number, a.label, a.box, 0.9, video_id="v1") for a in annotations]
    formats.write("coco", dt, perfect, video=video, classes=classes, kind="results")
    coco_gt = _quiet(COCO, str(gt))
    assert len(coco_gt.getImgIds()) == video.frame_count
    assert len(coco_gt.getAnnIds()) == len(annotations)
    assert [c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())] == classes
    img = coco_gt.loadImgs(coco_gt.getImgIds()[3])[0]
    assert (img["frame_number"], img["timestamp"], img["video_id"]) == (3, 0.3, "v1")
    coco_dt = _quiet(coco_gt.loadRes, str(dt))
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    assert ev.stats[0] == pytest.approx(1.0)


def test_several_videos_in_one_coco_file(tmp_path, annotations, classes):
    a = VideoInfo(640, 360, 50, name="a", video_id="va")
    b = VideoInfo(1280, 720, 50, name="b", video_id="vb")
    recs = [*annotations[:3]]
    for r in recs:
        r.video_id = "va"
    extra = [Detection(2, "pedestrian", (5, 5, 50, 50), 1.0, video_id="vb")]
    p = tmp_path / "two.json"
    formats.write("coco", p, [*recs, *extra], videos=[a, b], classes=classes)
    coco = _quiet(COCO, str(p))
    sizes = {(i["video_id"], i["width"]) for i in coco.dataset["images"]}
    assert sizes == {("va", 640), ("vb", 1280)}
    back = list(formats.open_reader("coco", p, video=b, classes=classes, options=formats.ReadOptions(video_id="vb")))
    assert [(d.frame_number, d.box) for d in back] == [(2, (5.0, 5.0, 50.0, 50.0))]


def test_coco_writer_streams_without_building_the_document(tmp_path, video, classes):
    # a generator that can only be consumed once: the writer must not need it twice
    def gen():
        for i in range(1000):
            yield Detection(i % 50, "pedestrian", (1.0, 2.0, 3.5, 4.25), 0.5, video_id="v1")
    p = tmp_path / "r.json"
    assert formats.write("coco", p, gen(), video=video, classes=classes, kind="results") == 1000
    assert len(json.loads(p.read_text())) == 1000


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_stream_parser_matches_json_load_at_any_chunk_size(fixtures_dir, chunk):
    path = fixtures_dir / "labelformat/COCO/train.json"
    whole = json.loads(path.read_text())
    with open(path, encoding="utf-8") as fp:
        js = JsonStream(fp, chunk_chars=chunk)
        rebuilt = {}
        for key in js.object():
            if js.peek() == "[":
                rebuilt[key] = []
                for _ in js.array():
                    rebuilt[key].append(js.value())
            else:
                rebuilt[key] = js.value()
        js.end()
    assert rebuilt == whole


@pytest.mark.parametrize("text", ['{"a": [1, 2', '{"a" 1}', '{"a": [1 2]}', '[1, 2] x', '{"a": tru}'])
def test_stream_parser_reports_bad_json(text):
    js = JsonStream(io.StringIO(text), chunk_chars=2)
    with pytest.raises(JsonSyntaxError):
        for _ in js.object() if text.startswith("{") else js.array():
            js.skip()
        js.end()


def test_numbers_split_across_chunks_are_whole():
    js = JsonStream(io.StringIO("[123456789, 0.000001, -5e-10]"), chunk_chars=3)
    got = []
    for _ in js.array():
        got.append(js.value())
    assert got == [123456789, 0.000001, -5e-10]
