"""ONNX Runtime detectors: a real trained pedestrian detector, YOLO exports batched, and the model check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vision.catalogue import TORCHVISION_WEIGHT_FILES
from vision.detectors import ModelError, _weights_enum, check_detector, load_detector
from vision.labels import LabelMap
from vision.reader import VideoReader

# The first test to need the demo model converts it (minutes on a machine without the cache).
pytestmark = pytest.mark.timeout(900)
DEMO = {"format": "onnx", "model_classes": ["background", "person"], "input_size": 300}


def test_the_catalogue_knows_torchvisions_weight_file_names_without_importing_torch():
    for arch, name in TORCHVISION_WEIGHT_FILES.items():
        assert _weights_enum(arch).url.rsplit("/", 1)[-1] == name


def test_the_trained_pedestrian_detector_finds_the_people_of_vtest(demo_model, vtest, vtest_ground_truth):
    """The SSDLite pedestrian model (converted from TensorFlow) finds the hand-labelled people, tightly."""
    from evaluation.boxes import box_iou

    detector = load_detector({"name": "demo", "weights": str(demo_model), **DEMO})
    assert detector.layout == "tf-od" and detector.device == "cpu" and detector.batched
    frames = [0, 40, 80, 120]
    gt = vtest_ground_truth(frames)
    images = {f.frame_number: f.image for f in VideoReader(vtest, end=121) if f.frame_number in gt}
    found = detector.predict([images[f] for f in frames])  # one run of the graph for the batch
    hog = load_detector("opencv/hog-people").predict([images[f] for f in frames])
    recalled, hog_recalled, boxes = [], [], 0
    for f, d, h in zip(frames, found, hog, strict=True):
        truth = np.asarray(gt[f], float)
        hog_recalled += (box_iou(truth[:, None], h.xyxy.astype(float)[None]).max(axis=1) >= 0.5).tolist()
        d = d[d.confidence >= 0.3]
        assert set(LabelMap(detector.class_names)(d.class_id).tolist()) <= {0}  # person -> pedestrian
        boxes += len(d)
        best = box_iou(truth[:, None], d.xyxy.astype(float)[None]).max(axis=1) if len(d) else np.zeros(len(truth))
        recalled += (best >= 0.5).tolist()
        h, w = d.xyxy[:, 3] - d.xyxy[:, 1], d.xyxy[:, 2] - d.xyxy[:, 0]
        assert np.all(h > w)  # people are taller than wide
    assert boxes >= 2 * len(frames)
    # Half the hand-labelled people found with IoU >= 0.5 (12 of 24 here), twice as many as HOG (6 of 24).
    assert np.mean(recalled) >= 0.45 and np.mean(recalled) >= 1.5 * np.mean(hog_recalled)
    # Frame by frame gives the same boxes as the batch.
    single = detector.predict([images[40]])[0]
    assert np.allclose(single.xyxy, found[1].xyxy, atol=0.5) and np.allclose(single.confidence, found[1].confidence,
                                                                             atol=1e-4)


def test_the_check_refuses_class_names_that_do_not_cover_the_outputs(demo_model):
    assert check_detector({"name": "demo", "weights": str(demo_model), **DEMO})["device"] == "cpu"
    with pytest.raises(ModelError, match="classes do not match the outputs: the model answers class id 1"):
        check_detector({"name": "demo", "weights": str(demo_model), **DEMO, "model_classes": ["person"]})


class YoloShaped(torch.nn.Module):
    """Answers fixed predictions in YOLO's exported layout ``[B, 4 + nc, N]`` for each image of the batch."""

    def __init__(self, predictions: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("p", torch.from_numpy(predictions))

    def forward(self, images):
        return self.p.unsqueeze(0).repeat(images.shape[0], 1, 1) + 0 * images.mean(dim=(1, 2, 3))[:, None, None]


def _yolo_export(tmp_path, classes: int, dynamic: bool = True):
    preds = np.zeros((4 + classes, 2), np.float32)
    preds[:4, 0], preds[4 + 0, 0] = [320, 320, 100, 200], 0.9
    preds[:4, 1], preds[4 + classes - 1, 1] = [160, 400, 60, 40], 0.7
    path = tmp_path / f"yolo-{classes}.onnx"
    torch.onnx.export(YoloShaped(preds), torch.zeros(2, 3, 640, 640), str(path), dynamo=False,
                      input_names=["images"], output_names=["output0"],
                      dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic else None)
    return path


def test_a_yolo_export_runs_batched_in_onnx_runtime(tmp_path):
    path = _yolo_export(tmp_path, 3)
    detector = load_detector({"name": "onnxruntime/yolo-3.onnx", "model_classes": ["person", "bicycle", "car"]},
                             model_dir=tmp_path)
    assert detector.layout == "yolo" and detector.batched and detector.providers == ["CPUExecutionProvider"]
    out = detector.predict([np.zeros((240, 320, 3), np.uint8)] * 3)
    assert len(out) == 3
    for d in out:  # letterboxed 2x into 640x640 with 80 px bands top and bottom
        assert np.allclose(d.xyxy[0], [(320 - 50) / 2, (320 - 100 - 80) / 2, (320 + 50) / 2, (320 + 100 - 80) / 2])
        assert [detector.class_names[c] for c in d.class_id] == ["person", "car"]
        assert d.confidence.tolist() == pytest.approx([0.9, 0.7])
    assert check_detector({"name": "x", "weights": str(path), "format": "onnx",
                           "model_classes": ["person", "bicycle", "car"]})["classes"] == 3


def test_the_check_names_a_wrong_output_shape_and_an_unloadable_file(tmp_path):
    path = _yolo_export(tmp_path, 3)
    with pytest.raises(ModelError, match=r"wrong output shape \[2, 7, 2\].*this model has 2 class names"):
        check_detector({"name": "x", "weights": str(path), "format": "onnx", "model_classes": ["a", "b"]})
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not a model" * 100)
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        check_detector({"name": "x", "weights": str(junk), "format": "onnx", "model_classes": ["a"]})


def test_an_explicit_cuda_request_without_a_cuda_provider_fails_at_once(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        pytest.skip("this machine has the CUDA execution provider")
    path = _yolo_export(tmp_path, 1)
    with pytest.raises(ModelError, match="CUDA was requested"):
        load_detector({"name": "x", "weights": str(path), "format": "onnx", "model_classes": ["a"], "device": "cuda"})
    # ``auto`` falls back to the CPU provider.
    assert load_detector({"name": "x", "weights": str(path), "format": "onnx", "model_classes": ["a"]}).device == "cpu"


def test_a_torchvision_state_dict_with_its_own_classes_and_a_torchscript_model(tmp_path, vtest):
    import torchvision.models.detection as tvd

    torch.manual_seed(0)
    model = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3).eval()
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    classes = ["__background__", "person", "bicycle"]
    spec = {"name": "m:1", "weights": str(tmp_path / "sd.pth"), "format": "torchvision",
            "arch": "ssdlite320_mobilenet_v3_large", "model_classes": classes, "input_size": 320}
    assert check_detector(spec)["classes"] == 3
    with pytest.raises(ModelError, match="size mismatch"):  # two names for a three-class head
        check_detector({**spec, "model_classes": classes[:2]})
    torch.jit.save(torch.jit.script(model), tmp_path / "m.pt")
    scripted = {"name": "m:2", "weights": str(tmp_path / "m.pt"), "format": "torchscript", "model_classes": classes,
                "input_size": 320}
    assert check_detector(scripted)["classes"] == 3
    frames = [f.image for f in VideoReader(vtest, end=2)]
    a = load_detector(spec).predict(frames)
    b = load_detector(scripted).predict(frames)
    assert len(a) == len(b) == 2 and all(np.allclose(x.xyxy, y.xyxy, atol=1e-3) for x, y in zip(a, b, strict=True))
    with pytest.raises(ModelError, match="cannot load TorchScript"):
        check_detector({**scripted, "weights": str(tmp_path / "sd.pth")})
