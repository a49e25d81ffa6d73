"""The pipeline: batched results equal a frame-by-frame loop, nothing dropped, skips reported."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from vision.detections import Detections
from vision.detectors import Detector, load_detector
from vision.labels import LabelMap
from vision.pipeline import DetectionPipeline, PipelineConfig
from vision.reader import VideoDecodeError, VideoReader


class Scripted(Detector):
    """Returns the boxes it is told to, optionally slowly; counts calls (a stand-in model)."""

    def __init__(self, boxes, scores, classes, delay=0.0):
        self.class_names = {0: "person", 1: "bicycle", 2: "car"}
        self.boxes, self.scores, self.classes, self.delay = boxes, scores, classes, delay
        self.batches: list[int] = []

    def predict(self, images):
        self.batches.append(len(images))
        if self.delay:
            time.sleep(self.delay)
        return [Detections.from_arrays(np.array(self.boxes, np.float32), self.scores, self.classes) for _ in images]


def clip(path, frames=30, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), i * 5 % 255, np.uint8))
    writer.release()
    return path


def test_batched_pipeline_equals_a_frame_by_frame_loop(vtest):
    detector = load_detector("opencv/hog-people")
    pipeline = DetectionPipeline(detector, LabelMap(detector.class_names),
                                 PipelineConfig(batch_size=4, end_frame=10, confidence_threshold=0.3))
    results = list(pipeline.run(vtest))
    assert [r.frame_number for r in results] == list(range(10))
    for frame, result in zip(VideoReader(vtest, end=10), results, strict=True):
        (raw,) = detector.predict([frame.image])
        (expected,) = pipeline.postprocess([raw])
        assert np.array_equal(expected.xyxy, result.detections.xyxy)
        assert result.timestamp == frame.timestamp
        assert np.all(result.detections.frame_index == frame.frame_number)
    stats = pipeline.stats.summary()
    assert stats["frames_processed"] == 10 and stats["frames_skipped"] == 0
    assert stats["per_class"]["pedestrian"] == sum(len(r.detections) for r in results) > 0


def test_a_slow_model_gets_every_frame_in_order(tmp_path):
    path = clip(tmp_path / "c.avi", frames=30)
    slow = Scripted([[0, 0, 10, 20]], [0.9], [0], delay=0.02)
    pipeline = DetectionPipeline(slow, LabelMap(slow.class_names), PipelineConfig(batch_size=4, queue_batches=1))
    got = [r.frame_number for r in pipeline.run(path)]
    assert got == list(range(30))
    assert slow.batches == [4] * 7 + [2]
    assert pipeline.stats.frames_skipped == []


def test_realtime_mode_skips_to_keep_up_and_reports_exactly_what_it_skipped(tmp_path):
    path = clip(tmp_path / "c.avi", frames=40, fps=50.0)  # 0.8 s of video
    slow = Scripted([[0, 0, 10, 20]], [0.9], [0], delay=0.1)  # 2 frames per 0.1 s: cannot keep up
    pipeline = DetectionPipeline(slow, LabelMap(slow.class_names),
                                 PipelineConfig(batch_size=2, queue_batches=1, realtime=True))
    processed = [r.frame_number for r in pipeline.run(path)]
    skipped = pipeline.stats.frames_skipped
    assert skipped and not set(skipped) & set(processed)
    assert sorted(processed + skipped) == list(range(40))
    assert pipeline.stats.summary()["frames_skipped"] == len(skipped)


def test_postprocess_filters_maps_and_suppresses_per_class():
    boxes = [[0, 0, 10, 20], [1, 1, 11, 21], [0, 0, 10, 20], [50, 50, 60, 70], [80, 80, 90, 99]]
    scores = [0.9, 0.8, 0.7, 0.2, 0.95]
    classes = [0, 0, 1, 0, 2]  # person, person (duplicate), bicycle on the person, weak person, car
    model = Scripted(boxes, scores, classes)
    pipeline = DetectionPipeline(model, LabelMap(model.class_names),
                                 PipelineConfig(confidence_threshold=0.3, nms_threshold=0.5))
    a, b = pipeline.postprocess(model.predict([None, None]))
    for d in (a, b):  # each frame only suppresses its own boxes
        assert d.confidence.tolist() == pytest.approx([0.9, 0.7])
        assert d.class_id.tolist() == [0, 1]  # pedestrian, cyclist; the car has no project class
    only = DetectionPipeline(model, LabelMap(model.class_names), PipelineConfig(classes=["cyclist"]))
    (c,) = only.postprocess(model.predict([None]))
    assert c.class_id.tolist() == [1]
    with pytest.raises(ValueError, match="unknown classes"):
        DetectionPipeline(model, LabelMap(model.class_names), PipelineConfig(classes=["truck"]))


def test_cancel_stops_the_reader_and_a_damaged_file_raises(tmp_path):
    path = clip(tmp_path / "c.avi", frames=30)
    model = Scripted([[0, 0, 10, 20]], [0.9], [0])
    pipeline = DetectionPipeline(model, LabelMap(model.class_names), PipelineConfig(batch_size=2))
    seen = []
    for r in pipeline.run(path, cancelled=lambda: len(seen) >= 4):
        seen.append(r.frame_number)
    assert seen == [0, 1, 2, 3]
    assert not [t for t in threading.enumerate() if t.name == "video-reader"]
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    pipeline = DetectionPipeline(model, LabelMap(model.class_names), PipelineConfig(batch_size=2))
    got = []
    with pytest.raises(VideoDecodeError) as err:
        for r in pipeline.run(cut):
            got.append(r.frame_number)
    assert err.value.frame_number == len(got)
