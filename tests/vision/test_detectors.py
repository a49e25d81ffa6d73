"""Detectors from files only: HOG (shipped with OpenCV), torchvision state dicts, YOLO ONNX."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vision.detectors import ModelError, check_model_name, list_models, load_detector, torchvision_weight_filename
from vision.labels import LabelMap
from vision.reader import VideoReader


def test_hog_finds_pedestrians_in_a_real_street_video(vtest):
    frames = [f.image for f in VideoReader(vtest, end=10, stride=5)]
    detector = load_detector("opencv/hog-people")
    found = detector.predict(frames)
    assert len(found) == 2 and all(len(d) >= 2 for d in found)
    d = found[0]
    w, h = d.xyxy[:, 2] - d.xyxy[:, 0], d.xyxy[:, 3] - d.xyxy[:, 1]
    assert np.all(h > w)  # people are taller than wide
    assert np.all((d.confidence > 0) & (d.confidence < 1))
    assert LabelMap(detector.class_names)(d.class_id).tolist() == [0] * len(d)  # person -> pedestrian


def test_the_haar_full_body_cascade_finds_the_same_people_as_hog(vtest):
    """A second real detector, shipped with OpenCV: its boxes overlap HOG's on the same people."""
    from evaluation.boxes import box_iou

    frames = [f.image for f in VideoReader(vtest, end=1)]
    haar = load_detector("opencv/haar-fullbody").predict(frames)[0]
    hog = load_detector("opencv/hog-people").predict(frames)[0]
    assert len(haar) >= 2 and np.all((haar.confidence > 0) & (haar.confidence < 1))
    h, w = haar.xyxy[:, 3] - haar.xyxy[:, 1], haar.xyxy[:, 2] - haar.xyxy[:, 0]
    assert np.all(h > w)
    best = box_iou(hog.xyxy.astype(float)[:, None], haar.xyxy.astype(float)[None]).max(axis=1)
    assert (best > 0.3).sum() >= 1  # at least one person found by both
    assert "opencv/haar-fullbody" in {m["name"] for m in list_models()}


def test_hog_boxes_are_the_person_inside_the_detection_window(vtest, vtest_ground_truth):
    """Against the project's hand-made ground truth of vtest.avi, the shrunk boxes match people."""
    from evaluation.boxes import box_iou

    frames = [0, 40, 80, 120]
    gt = vtest_ground_truth(frames)
    images = {f.frame_number: f.image for f in VideoReader(vtest, end=121) if f.frame_number in gt}
    matched = {}
    for window in (False, True):
        detector = load_detector({"name": "opencv/hog-people", "window": window})
        ious = []
        for f, image in images.items():
            d = detector.predict([image])[0].xyxy.astype(float)
            if len(d):
                ious += box_iou(d[:, None], np.asarray(gt[f])[None]).max(axis=1).tolist()
        matched[window] = float(np.mean(np.asarray(ious) >= 0.5))
    assert matched[False] > 0.5 > matched[True]  # windows hardly ever reach IoU 0.5 with a tight box


@pytest.mark.parametrize("arch", ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_a_torchvision_model_loads_from_a_weight_file(tmp_path, vtest, arch):
    import torchvision.models.detection as tvd

    torch.manual_seed(0)
    model = getattr(tvd, arch)(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "random.pth"
    torch.save(model.state_dict(), path)
    detector = load_detector({"name": f"torchvision/{arch}", "weights": str(path)})
    assert detector.class_names[1] == "person" and detector.device == "cpu"
    frames = [f.image for f in VideoReader(vtest, end=2)]
    out = detector.predict(frames)
    assert len(out) == 2
    for d in out:
        assert d.xyxy.shape[1] == 4 and np.all(d.xyxy[:, 2] >= d.xyxy[:, 0])
        assert np.all(d.xyxy[:, 2] <= frames[0].shape[1] + 1)


def test_missing_or_damaged_weights_fail_at_once_naming_the_file(tmp_path):
    with pytest.raises(ModelError) as err:
        load_detector("torchvision/fcos_resnet50_fpn", model_dir=tmp_path)
    assert str(tmp_path / torchvision_weight_filename("fcos_resnet50_fpn")) in str(err.value)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(ModelError, match="bad.pth"):
        load_detector({"name": "torchvision/fcos_resnet50_fpn", "weights": str(bad)})
    with pytest.raises(ModelError, match="unknown model"):
        load_detector("torchvision/resnet50")
    with pytest.raises(ModelError):
        check_model_name("onnx/../../etc/passwd.onnx")


class YoloShaped(torch.nn.Module):
    """Answers fixed predictions in YOLO's exported layout ``[1, 4 + nc, N]`` (cx, cy, w, h, scores)."""

    def __init__(self, predictions: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("p", torch.from_numpy(predictions))

    def forward(self, images):
        return self.p.unsqueeze(0) + 0 * images.mean()


def test_an_onnx_yolo_export_runs_through_opencv_dnn(tmp_path):
    preds = np.zeros((4 + 80, 3), np.float32)
    # In the 640x640 letterboxed input: a person at the center, a bicycle, and a low-score box.
    preds[:4, 0], preds[4 + 0, 0] = [320, 320, 100, 200], 0.9
    preds[:4, 1], preds[4 + 1, 1] = [160, 400, 60, 40], 0.7
    preds[:4, 2], preds[4 + 2, 2] = [500, 300, 20, 20], 0.0005
    path = tmp_path / "yolo-test.onnx"
    torch.onnx.export(YoloShaped(preds), torch.zeros(1, 3, 640, 640), str(path), dynamo=False,
                      input_names=["images"], output_names=["output0"])
    detector = load_detector({"name": "onnx/yolo-test.onnx"}, model_dir=tmp_path)
    assert {"name": "onnx/yolo-test.onnx", "weights_present": True, "weights_file": str(path)} in list_models(tmp_path)
    image = np.zeros((240, 320, 3), np.uint8)  # letterboxed 2x into 640x640 with 80 px bands top and bottom
    (d,) = detector.predict([image])
    assert len(d) == 2
    assert np.allclose(d.xyxy[0], [(320 - 50) / 2, (320 - 100 - 80) / 2, (320 + 50) / 2, (320 + 100 - 80) / 2])
    assert np.allclose(d.xyxy[1], [(160 - 30) / 2, (400 - 20 - 80) / 2, (160 + 30) / 2, (400 + 20 - 80) / 2])
    assert d.confidence.tolist() == pytest.approx([0.9, 0.7])
    assert [detector.class_names[c] for c in d.class_id] == ["person", "bicycle"]
    assert LabelMap(detector.class_names)(d.class_id).tolist() == [0, 1]  # pedestrian, cyclist
