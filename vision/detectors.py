"""Detectors chosen by a model spec; every one returns per-frame ``Detections`` in its own classes.

Weights are only ever read from local files: a job must fail at once, naming the file to
provide, rather than stall on a download inside a worker.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .detections import Detections
from .device import select_device, to_device_batch

TORCHVISION_ARCHS: dict[str, str] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights",
    "fasterrcnn_resnet50_fpn_v2": "FasterRCNN_ResNet50_FPN_V2_Weights",
    "ssdlite320_mobilenet_v3_large": "SSDLite320_MobileNet_V3_Large_Weights",
    "retinanet_resnet50_fpn_v2": "RetinaNet_ResNet50_FPN_V2_Weights",
    "fcos_resnet50_fpn": "FCOS_ResNet50_FPN_Weights",
}
DEFAULT_MODEL = "opencv/hog-people"
#: OpenCV's own trained detectors, shipped inside the opencv wheel: they run on any machine.
OPENCV_MODELS = (DEFAULT_MODEL, "opencv/haar-fullbody")


class ModelError(ValueError):
    """The spec names no known model, or its weights are not on this machine."""


@dataclass
class ModelSpec:
    name: str = DEFAULT_MODEL
    weights: str | None = None
    confidence_threshold: float = 0.3
    nms_threshold: float = 0.45
    classes: list[str] | None = None
    label_map: dict[str, str] | None = None
    input_size: int = 640
    half: bool = False
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | str | ModelSpec) -> ModelSpec:
        if isinstance(spec, ModelSpec):
            return spec
        if isinstance(spec, str):
            spec = {"name": spec}
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        out = cls(**{k: v for k, v in spec.items() if k in known})
        out.extra = {k: v for k, v in spec.items() if k not in known}
        if not 0.0 <= out.confidence_threshold <= 1.0 or not 0.0 < out.nms_threshold <= 1.0:
            raise ModelError("confidence_threshold must be in [0,1] and nms_threshold in (0,1]")
        return out


_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$")


def safe_file_name(name: str) -> bool:
    """A bare file name (no directory, no leading dot): what callers from outside may name."""
    return bool(_FILE_NAME.match(name)) and ".." not in name


def check_model_name(name: str) -> None:
    """Raise :class:`ModelError` unless ``name`` names a model family and member this code runs.

    Whether the weights are present is a separate question, answered where the model loads.
    """
    family, _, member = name.partition("/")
    if name in OPENCV_MODELS:
        return
    if family == "torchvision" and member in TORCHVISION_ARCHS:
        return
    if family == "onnx" and member.endswith(".onnx") and safe_file_name(member):
        return
    raise ModelError(
        f"unknown model {name!r}: use one of {list(OPENCV_MODELS)}, 'torchvision/<arch>' with arch one of "
        f"{sorted(TORCHVISION_ARCHS)}, or 'onnx/<file>.onnx' in the model directory"
    )


def model_dirs(model_dir: str | Path | None = None) -> list[Path]:
    """Where weight files are looked for: an explicit dir, ``VISION_MODEL_DIR``, the torch hub cache."""
    dirs = []
    for d in (model_dir, os.environ.get("VISION_MODEL_DIR")):
        if d:
            dirs.append(Path(d))
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def _weights_enum(arch: str):
    import torchvision.models.detection as tvd

    return getattr(tvd, TORCHVISION_ARCHS[arch]).COCO_V1


def torchvision_weight_filename(arch: str) -> str:
    return _weights_enum(arch).url.rsplit("/", 1)[-1]


def _find_weights(arch: str, spec: ModelSpec, model_dir: str | Path | None) -> Path | None:
    if spec.weights:
        p = Path(spec.weights)
        return p if p.is_file() else None
    names = (torchvision_weight_filename(arch), f"{arch}.pth", f"{arch}.pt")
    for d in model_dirs(model_dir):
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


class Detector:
    """Base: ``predict`` takes BGR frames and returns raw detections in model class ids."""

    name: str = ""
    class_names: dict[int, str] = {}
    device: str = "cpu"

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        raise NotImplementedError


class HogPeopleDetector(Detector):
    """OpenCV's shipped pedestrian HOG+SVM: works offline on any machine, hence the default.

    The SVM margin is squashed with ``w / (1 + w)`` into 0..1 so one confidence threshold
    means something comparable across models (margin 1 -> 0.5). HOG has no batched form, and
    OpenCV already spreads one frame over every core, so the frames of a batch run in turn.

    The detector answers its 64x128 detection *window*, in which the person it was trained on
    stands inside a margin of 16 px on every side (Dalal and Triggs). Boxes are shrunk to that
    person (a quarter of the width off each side, an eighth of the height off top and bottom)
    so they can be compared with ground truth drawn tightly around people; on the demo's
    hand-made ground truth the median IoU goes from 0.25 to 0.59. ``"window": true`` in the
    spec keeps the raw windows.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.name = spec.name
        self.class_names = {0: "person"}
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.scale = float(spec.extra.get("scale", 1.05))
        self.win_stride = int(spec.extra.get("win_stride", 8))
        self.window = bool(spec.extra.get("window", False))

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            rects, weights = self.hog.detectMultiScale(
                image, winStride=(self.win_stride,) * 2, padding=(8, 8), scale=self.scale
            )
            rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
            w = np.clip(np.asarray(weights, dtype=np.float32).reshape(-1), 0, None)
            if not self.window:  # the person inside the window: 16 of 64 px each side, 16 of 128 top and bottom
                rects = rects + np.tile(rects[:, 2:], 2) * np.float32([0.25, 0.125, -0.5, -0.25])
            xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
            out.append(Detections.from_arrays(xyxy, w / (1.0 + w), np.zeros(len(w))))
        return out


class HaarFullBodyDetector(Detector):
    """OpenCV's Viola-Jones full-body cascade (``haarcascade_fullbody.xml``, shipped with OpenCV).

    A second, independently trained pedestrian detector that needs no download, so two real
    models can be validated against each other anywhere. The cascade's level weight (the
    margin of its last stage, about -3..5) is squashed with a logistic into 0..1.
    """

    def __init__(self, spec: ModelSpec) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_fullbody.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ModelError(f"cannot load OpenCV's full-body cascade from {path.name}")
        self.name = spec.name
        self.class_names = {0: "person"}
        self.scale = float(spec.extra.get("scale", 1.1))  # 1.05 finds a few more people at twice the time
        self.min_neighbors = int(spec.extra.get("min_neighbors", 3))

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
            rects, _levels, weights = self.cascade.detectMultiScale3(
                gray, scaleFactor=self.scale, minNeighbors=self.min_neighbors, minSize=(24, 48),
                outputRejectLevels=True)
            rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
            w = np.asarray(weights, dtype=np.float32).reshape(-1)
            xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
            out.append(Detections.from_arrays(xyxy, 1.0 / (1.0 + np.exp(-w)), np.zeros(len(w))))
        return out


class TorchvisionDetector(Detector):
    """A torchvision detection model built empty and filled from a local state dict."""

    def __init__(self, spec: ModelSpec, model_dir: str | Path | None = None) -> None:
        import torchvision.models.detection as tvd

        arch = spec.name.split("/", 1)[1]
        if arch not in TORCHVISION_ARCHS:
            raise ModelError(f"unknown torchvision model {arch!r}; known: {sorted(TORCHVISION_ARCHS)}")
        path = _find_weights(arch, spec, model_dir)
        if path is None:
            where = spec.weights or " or ".join(
                str(d / torchvision_weight_filename(arch)) for d in model_dirs(model_dir)
            )
            raise ModelError(f"weights for {spec.name} not found: provide {where}")
        categories = _weights_enum(arch).meta["categories"]
        self.name = spec.name
        self.class_names = {i: c for i, c in enumerate(categories)}
        self.torch_device = select_device(spec.device)
        self.device = str(self.torch_device)
        self.half = bool(spec.half and self.torch_device.type == "cuda")
        thresh_key = "box_score_thresh" if arch.startswith("fasterrcnn") else "score_thresh"
        model = getattr(tvd, arch)(
            weights=None, weights_backbone=None, num_classes=len(categories),
            **{thresh_key: min(spec.confidence_threshold, 0.05)},
        )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
            model.load_state_dict(state)
        except Exception as exc:  # a wrong or damaged file must name itself
            raise ModelError(f"cannot load weights for {spec.name} from {path}: {exc}") from exc
        model.eval().to(self.torch_device)
        if self.half:
            model.half()
        self.model = model

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        if len({im.shape for im in images}) == 1:
            batch = list(to_device_batch(list(images), self.torch_device, self.half))
        else:
            batch = [to_device_batch([im], self.torch_device, self.half)[0] for im in images]
        results = self.model(batch)
        out = []
        for r in results:
            out.append(Detections.from_arrays(
                r["boxes"].float().cpu().numpy(), r["scores"].float().cpu().numpy(), r["labels"].cpu().numpy()
            ))
        return out


def _coco80() -> dict[int, str]:
    cats = _weights_enum("ssdlite320_mobilenet_v3_large").meta["categories"]
    names = [c for c in cats if c not in ("__background__", "N/A")]
    return dict(enumerate(names))


class OnnxYoloDetector(Detector):
    """YOLO exported to ONNX (output ``[1, 4+nc, N]``, boxes as cx,cy,w,h) run by cv2.dnn."""

    def __init__(self, spec: ModelSpec, model_dir: str | Path | None = None) -> None:
        fname = spec.name.split("/", 1)[1]
        if spec.weights:
            candidates = [Path(spec.weights)]
        else:
            candidates = [d / fname for d in model_dirs(model_dir)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ModelError(f"ONNX model for {spec.name} not found: provide {candidates[0]}")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ModelError(f"cannot read ONNX model {path}: {exc}") from exc
        self.device = "cpu"
        try:
            if cv2.cuda.getCudaEnabledDeviceCount() > 0:
                self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
                self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA_FP16 if spec.half else cv2.dnn.DNN_TARGET_CUDA)
                self.device = "cuda"
        except (cv2.error, AttributeError):
            pass
        self.name = spec.name
        self.size = int(spec.input_size)
        names = spec.extra.get("model_classes")
        self.class_names = dict(enumerate(names)) if names else _coco80()

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        s = self.size
        for image in images:
            h, w = image.shape[:2]
            r = min(s / h, s / w)
            nh, nw = round(h * r), round(w * r)
            top, left = (s - nh) // 2, (s - nw) // 2
            canvas = np.full((s, s, 3), 114, np.uint8)
            canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh))
            blob = cv2.dnn.blobFromImage(canvas, 1 / 255.0, (s, s), swapRB=True, crop=False)
            self.net.setInput(blob)
            pred = np.asarray(self.net.forward())
            pred = pred.reshape(pred.shape[-2], pred.shape[-1]).T  # [N, 4+nc]
            scores = pred[:, 4:]
            cls = scores.argmax(1)
            conf = scores[np.arange(len(cls)), cls]
            cx, cy, bw, bh = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
            xyxy = np.stack([cx - bw / 2 - left, cy - bh / 2 - top, cx + bw / 2 - left, cy + bh / 2 - top], 1) / r
            xyxy = np.clip(xyxy, 0, [w, h, w, h])
            keep = conf > 0.001
            out.append(Detections.from_arrays(xyxy[keep], conf[keep], cls[keep]))
        return out


def load_detector(spec: Mapping[str, Any] | str | ModelSpec, model_dir: str | Path | None = None) -> Detector:
    """Build the detector for ``spec``; load once per worker process and reuse for many jobs."""
    spec = ModelSpec.parse(spec)
    check_model_name(spec.name)
    family = spec.name.split("/", 1)[0]
    if spec.name == DEFAULT_MODEL:
        return HogPeopleDetector(spec)
    if spec.name == "opencv/haar-fullbody":
        return HaarFullBodyDetector(spec)
    if family == "torchvision":
        return TorchvisionDetector(spec, model_dir)
    if family == "onnx" and "/" in spec.name:
        return OnnxYoloDetector(spec, model_dir)
    raise ModelError(f"unknown model {spec.name!r}; see list_models()")


def list_models(model_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """What this installation can run, and which weights are missing (by file name to provide)."""
    models: list[dict[str, Any]] = [
        {"name": name, "weights_present": True, "weights_file": None} for name in OPENCV_MODELS
    ]
    for arch in TORCHVISION_ARCHS:
        found = _find_weights(arch, ModelSpec(name=f"torchvision/{arch}"), model_dir)
        models.append({
            "name": f"torchvision/{arch}",
            "weights_present": found is not None,
            "weights_file": str(found) if found else torchvision_weight_filename(arch),
        })
    seen = set()
    for d in model_dirs(model_dir):
        if d.is_dir():
            for p in sorted(d.glob("*.onnx")):
                if p.name not in seen:
                    seen.add(p.name)
                    models.append({"name": f"onnx/{p.name}", "weights_present": True, "weights_file": str(p)})
    return models
