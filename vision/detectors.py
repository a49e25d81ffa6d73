"""Detectors chosen by a model spec; every one returns per-frame ``Detections`` in its own classes.

Weights are only ever read from local files: a job must fail at once, naming the file to
provide, rather than stall on a download inside a worker.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .catalogue import (
    DEFAULT_MODEL,
    OPENCV_MODELS,
    TORCHVISION_ARCHS,
    TORCHVISION_WEIGHT_FILES,
    ModelError,
    check_model_name,
    find_torchvision_weights,
    list_models,
    model_dirs,
    safe_file_name,
)
from .detections import Detections
from .device import select_device, to_device_batch

__all__ = [
    "DEFAULT_MODEL", "OPENCV_MODELS", "TORCHVISION_ARCHS", "Detector", "ModelError", "ModelSpec", "check_detector",
    "check_model_name", "list_models", "load_detector", "model_dirs", "safe_file_name", "torchvision_weight_filename",
]

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


def _weights_enum(arch: str):
    import torchvision.models.detection as tvd

    return getattr(tvd, TORCHVISION_ARCHS[arch]).COCO_V1


def torchvision_weight_filename(arch: str) -> str:
    return TORCHVISION_WEIGHT_FILES[arch]


def _find_weights(arch: str, spec: ModelSpec, model_dir: str | Path | None) -> Path | None:
    return find_torchvision_weights(arch, spec.weights, model_dir)


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

        arch = spec.extra.get("arch") or spec.name.split("/", 1)[-1]
        if arch not in TORCHVISION_ARCHS:
            raise ModelError(f"unknown torchvision model {arch!r}; known: {sorted(TORCHVISION_ARCHS)}")
        path = _find_weights(arch, spec, model_dir)
        if path is None:
            where = spec.weights or " or ".join(
                str(d / torchvision_weight_filename(arch)) for d in model_dirs(model_dir)
            )
            raise ModelError(f"weights for {spec.name} not found: provide {where}")
        # A registered model names its own classes, indexed by the labels it answers (0: background).
        categories = list(spec.extra.get("model_classes") or _weights_enum(arch).meta["categories"])
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
        return _torch_results(self.model(batch))


def _torch_results(results: Any) -> list[Detections]:
    """torchvision's answer (one dict of boxes, scores and labels per image) as ``Detections``.

    A scripted torchvision model answers ``(losses, detections)``; both shapes are accepted.
    """
    if isinstance(results, tuple) and len(results) == 2 and isinstance(results[1], list):
        results = results[1]
    if not isinstance(results, list) or not all(isinstance(r, dict) and {"boxes", "scores", "labels"} <= set(r)
                                                for r in results):
        raise ModelError("the model must answer one dict with boxes, scores and labels per image")
    return [Detections.from_arrays(r["boxes"].float().cpu().numpy().reshape(-1, 4),
                                   r["scores"].float().cpu().numpy().reshape(-1),
                                   r["labels"].cpu().numpy().reshape(-1)) for r in results]


class TorchScriptDetector(Detector):
    """A TorchScript detection model (``torch.jit.save``) taking a list of RGB ``[3,H,W]`` 0..1 tensors.

    It answers torchvision's shape: per image a dict of ``boxes`` (xyxy pixels), ``scores`` and
    ``labels`` (indexes into the model's class names). Loading TorchScript runs no pickled Python.
    """

    def __init__(self, spec: ModelSpec) -> None:
        names = spec.extra.get("model_classes")
        if not spec.weights or not Path(spec.weights).is_file():
            raise ModelError(f"TorchScript model for {spec.name} not found: provide {spec.weights}")
        if not names:
            raise ModelError("a TorchScript model needs its class names")
        self.name = spec.name
        self.class_names = dict(enumerate(names))
        self.torch_device = select_device(spec.device)
        self.device = str(self.torch_device)
        self.half = bool(spec.half and self.torch_device.type == "cuda")
        try:
            self.model = torch.jit.load(spec.weights, map_location=self.torch_device).eval()
        except Exception as exc:  # noqa: BLE001 - a wrong or damaged file must name itself
            raise ModelError(f"cannot load TorchScript model {spec.name}: {exc}") from exc
        if self.half:
            self.model = self.model.half()

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        batch = [to_device_batch([im], self.torch_device, self.half)[0] for im in images]
        return _torch_results(self.model(batch))


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
        for image in images:
            canvas, frame = letterbox(image, self.size)
            blob = cv2.dnn.blobFromImage(canvas, 1 / 255.0, (self.size,) * 2, swapRB=True, crop=False)
            self.net.setInput(blob)
            pred = np.asarray(self.net.forward())
            out.append(decode_yolo(pred.reshape(pred.shape[-2], pred.shape[-1]), frame))
        return out


@dataclass(frozen=True)
class Letterbox:
    """Where a frame went inside a letterboxed square: scale, offsets and the frame's own size."""

    r: float
    left: int
    top: int
    w: int
    h: int


def letterbox(image: np.ndarray, s: int) -> tuple[np.ndarray, Letterbox]:
    """The frame scaled to fit an ``s`` x ``s`` square, centered on grey, as YOLO exports expect."""
    h, w = image.shape[:2]
    r = min(s / h, s / w)
    nh, nw = round(h * r), round(w * r)
    top, left = (s - nh) // 2, (s - nw) // 2
    canvas = np.full((s, s, 3), 114, np.uint8)
    canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh))
    return canvas, Letterbox(r, left, top, w, h)


def decode_yolo(pred: np.ndarray, frame: Letterbox) -> Detections:
    """One image's YOLO output ``[4+nc, N]`` (cx, cy, w, h, class scores) as boxes in frame pixels."""
    pred = pred.T  # [N, 4+nc]
    scores = pred[:, 4:]
    cls = scores.argmax(1)
    conf = scores[np.arange(len(cls)), cls]
    cx, cy, bw, bh = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    f = frame
    xyxy = np.stack([cx - bw / 2 - f.left, cy - bh / 2 - f.top, cx + bw / 2 - f.left, cy + bh / 2 - f.top], 1) / f.r
    xyxy = np.clip(xyxy, 0, [f.w, f.h, f.w, f.h])
    keep = conf > 0.001
    return Detections.from_arrays(xyxy[keep], conf[keep], cls[keep])


#: Output names of a TensorFlow Object Detection API graph, as tf2onnx keeps them.
TF_OD_OUTPUTS = ("num_detections", "detection_scores", "detection_boxes", "detection_classes")


def onnx_providers(preference: str | None) -> tuple[list[Any], bool]:
    """ONNX Runtime providers for a device preference, and whether CUDA is among them.

    ``auto`` takes the CUDA execution provider when this onnxruntime build has it and a GPU is
    usable, and keeps the CPU provider behind it, so a CUDA setup that fails at session start
    falls back to the CPU; an explicit ``cuda`` without either fails at once.
    """
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if preference in (None, "", "auto"):
        use_cuda = has_cuda and torch.cuda.is_available()
        index = 0
    else:
        device = torch.device(preference)
        use_cuda = device.type == "cuda"
        index = device.index or 0
        if use_cuda and not (has_cuda and torch.cuda.is_available()):
            raise ModelError("CUDA was requested but this onnxruntime has no usable CUDA execution provider "
                             "(install onnxruntime-gpu on a GPU worker)")
    if not use_cuda:
        return ["CPUExecutionProvider"], False
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], True


class OnnxRuntimeDetector(Detector):
    """An ONNX graph run by ONNX Runtime, on the CUDA execution provider where there is one.

    Two output layouts, told apart by the graph's outputs (or ``"layout"`` in the spec):

    - ``tf-od``: a TensorFlow Object Detection API export (tf2onnx): uint8 RGB NHWC frames of
      any size in, ``num_detections``, ``detection_scores``, ``detection_boxes`` (normalised
      ``[ymin, xmin, ymax, xmax]``) and ``detection_classes`` (ids from 1, 0 being the
      background) out;
    - ``yolo``: float RGB NCHW 0..1 letterboxed to ``input_size``, one output ``[B, 4+nc, N]``.

    A batch of frames of one size goes through the graph in one run when its batch dimension
    is dynamic; a graph exported for a batch of one runs the frames in turn.
    """

    def __init__(self, spec: ModelSpec, model_dir: str | Path | None = None) -> None:
        import onnxruntime as ort

        fname = spec.name.split("/", 1)[-1]
        candidates = [Path(spec.weights)] if spec.weights else [d / fname for d in model_dirs(model_dir)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ModelError(f"ONNX model for {spec.name} not found: provide {candidates[0]}")
        providers, _ = onnx_providers(spec.device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # a CUDA provider that cannot start is reported by get_providers()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX model {spec.name}: {exc}") from exc
        self.providers = self.session.get_providers()
        self.device = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        self.name = spec.name
        self.size = int(spec.input_size)
        self.input = self.session.get_inputs()[0]
        self.outputs = [o.name for o in self.session.get_outputs()]
        short = [o.split(":")[0] for o in self.outputs]
        self.layout = spec.extra.get("layout") or ("tf-od" if set(TF_OD_OUTPUTS) <= set(short) else "yolo")
        if self.layout not in ("tf-od", "yolo"):
            raise ModelError(f"unknown ONNX output layout {self.layout!r}: use 'tf-od' or 'yolo'")
        if self.layout == "tf-od":
            self.tf_outputs = [self.outputs[short.index(n)] for n in TF_OD_OUTPUTS]
        elif len(self.outputs) != 1 or len(self.session.get_outputs()[0].shape) != 3:
            raise ModelError(f"ONNX model {spec.name}: expected one output [batch, 4 + classes, boxes] (YOLO) "
                             f"or the outputs {list(TF_OD_OUTPUTS)}; it has {self.outputs}")
        batch_dim = self.input.shape[0] if self.input.shape else None
        self.batched = not isinstance(batch_dim, int) or batch_dim > 1
        names = spec.extra.get("model_classes")
        if names:
            self.class_names = dict(enumerate(names))
        elif self.layout == "yolo":
            self.class_names = _coco80()
        else:  # the TF OD API's COCO ids are torchvision's category indexes
            self.class_names = dict(enumerate(_weights_enum("ssdlite320_mobilenet_v3_large").meta["categories"]))

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        groups = [list(images)] if self.batched and len({im.shape for im in images}) == 1 else \
            [[im] for im in images]
        out: list[Detections] = []
        for group in groups:
            out.extend(self._tf_od(group) if self.layout == "tf-od" else self._yolo(group))
        return out

    def _tf_od(self, images: list[np.ndarray]) -> list[Detections]:
        h, w = images[0].shape[:2]
        fixed = self.input.shape[1:3]
        if all(isinstance(d, int) for d in fixed) and tuple(fixed) != (h, w):
            images = [cv2.resize(im, (fixed[1], fixed[0])) for im in images]
        batch = np.ascontiguousarray(np.stack(images)[..., ::-1])
        num, scores, boxes, classes = self.session.run(self.tf_outputs, {self.input.name: batch})
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != classes.shape or len(num) != len(images):
            raise ModelError(f"wrong output shape: detection_boxes {list(boxes.shape)}, detection_scores "
                             f"{list(scores.shape)}, detection_classes {list(classes.shape)} for {len(images)} frames")
        out = []
        for i in range(len(images)):
            n = int(num[i])
            yxyx = boxes[i, :n].astype(np.float32)
            xyxy = yxyx[:, [1, 0, 3, 2]] * np.float32([w, h, w, h])
            out.append(Detections.from_arrays(xyxy, scores[i, :n], classes[i, :n].astype(np.int64)))
        return out

    def _yolo(self, images: list[np.ndarray]) -> list[Detections]:
        boxed = [letterbox(im, self.size) for im in images]
        batch = np.stack([c[..., ::-1] for c, _ in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        (pred,) = self.session.run(None, {self.input.name: batch})
        if pred.ndim != 3 or pred.shape[1] != 4 + len(self.class_names):
            raise ModelError(f"wrong output shape {list(pred.shape)}: a YOLO output is [batch, 4 + classes, boxes] "
                             f"and this model has {len(self.class_names)} class names")
        return [decode_yolo(pred[i], frame) for i, (_, frame) in enumerate(boxed)]


def load_detector(spec: Mapping[str, Any] | str | ModelSpec, model_dir: str | Path | None = None) -> Detector:
    """Build the detector for ``spec``; load once per worker process and reuse for many jobs."""
    spec = ModelSpec.parse(spec)
    fmt = spec.extra.get("format")
    if fmt is not None:  # a registered model: its file is already on this machine, in ``weights``
        if fmt == "onnx":
            return OnnxRuntimeDetector(spec)
        if fmt == "torchvision":
            return TorchvisionDetector(spec)
        if fmt == "torchscript":
            return TorchScriptDetector(spec)
        raise ModelError(f"unknown model format {fmt!r}")
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
    if family == "onnxruntime":
        return OnnxRuntimeDetector(spec, model_dir)
    raise ModelError(f"unknown model {spec.name!r}; see list_models()")


def check_detector(spec: Mapping[str, Any] | str | ModelSpec) -> dict[str, Any]:
    """Load a model and run it on two blank frames; :class:`ModelError` says why it cannot be used.

    What it catches: a file that does not load (or is not what its format says), outputs of
    the wrong shape, and class ids the model answers that its class names do not cover.
    """
    spec = ModelSpec.parse(spec)
    detector = load_detector(spec)
    blank = np.zeros((int(spec.input_size), int(spec.input_size), 3), np.uint8)
    try:
        out = detector.predict([blank, blank])
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the model raises is the reason it is invalid
        raise ModelError(f"the model fails on a blank frame: {type(exc).__name__}: {exc}") from exc
    if len(out) != 2:
        raise ModelError(f"wrong output shape: {len(out)} results for 2 frames")
    n = len(detector.class_names)
    for d in out:
        bad = d.class_id[(d.class_id < 0) | (d.class_id >= n)]
        if len(bad):
            raise ModelError(f"classes do not match the outputs: the model answers class id {int(bad.max())} "
                             f"and has {n} class names")
    return {"device": detector.device, "classes": n}
