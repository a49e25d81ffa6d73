"""Which models this installation knows, answered without importing torch or loading a model.

The web process checks model names and lists models from here; only a worker that runs a
model imports the detectors (and torch). Registered models, uploaded through the API, are
named ``name:version``; built-in ones are ``family/member``, so the two never collide.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "opencv/hog-people"
#: OpenCV's own trained detectors, shipped inside the opencv wheel: they run on any machine.
OPENCV_MODELS = (DEFAULT_MODEL, "opencv/haar-fullbody")
#: torchvision detection architectures: the weights enum each is described by, and the file name
#: of its COCO weights as torchvision publishes them (checked against torchvision in the tests).
TORCHVISION_ARCHS: dict[str, str] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights",
    "fasterrcnn_resnet50_fpn_v2": "FasterRCNN_ResNet50_FPN_V2_Weights",
    "ssdlite320_mobilenet_v3_large": "SSDLite320_MobileNet_V3_Large_Weights",
    "retinanet_resnet50_fpn_v2": "RetinaNet_ResNet50_FPN_V2_Weights",
    "fcos_resnet50_fpn": "FCOS_ResNet50_FPN_Weights",
}
TORCHVISION_WEIGHT_FILES: dict[str, str] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
    "fasterrcnn_resnet50_fpn_v2": "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
    "ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
    "retinanet_resnet50_fpn_v2": "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth",
    "fcos_resnet50_fpn": "fcos_resnet50_fpn_coco-99b0c9b7.pth",
}
#: Formats a model can be uploaded in; every one loads without unpickling arbitrary objects.
MODEL_FORMATS = ("onnx", "torchvision", "torchscript")


class ModelError(ValueError):
    """The spec names no known model, or its weights are not on this machine."""


_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$")
_REGISTERED = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99}):(?P<version>[A-Za-z0-9][A-Za-z0-9._+-]{0,49})$")


def safe_file_name(name: str) -> bool:
    """A bare file name (no directory, no leading dot): what callers from outside may name."""
    return bool(_FILE_NAME.match(name)) and ".." not in name


def registered_name(name: str) -> tuple[str, str] | None:
    """``(name, version)`` when ``name`` names a registered model as ``name:version``, else None."""
    m = _REGISTERED.match(name)
    return (m["name"], m["version"]) if m else None


def check_model_name(name: str) -> None:
    """Raise :class:`ModelError` unless ``name`` names a built-in model family and member this code runs.

    Whether the weights are present is a separate question, answered where the model loads.
    Registered ``name:version`` models are checked against the registry by the caller.
    """
    family, _, member = name.partition("/")
    if name in OPENCV_MODELS:
        return
    if family == "torchvision" and member in TORCHVISION_ARCHS:
        return
    if family in ("onnx", "onnxruntime") and member.endswith(".onnx") and safe_file_name(member):
        return
    raise ModelError(
        f"unknown model {name!r}: use one of {list(OPENCV_MODELS)}, 'torchvision/<arch>' with arch one of "
        f"{sorted(TORCHVISION_ARCHS)}, 'onnx/<file>.onnx' (OpenCV DNN) or 'onnxruntime/<file>.onnx' in the "
        "model directory, or a registered model as 'name:version'"
    )


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, by default under the XDG cache."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def model_dirs(model_dir: str | Path | None = None) -> list[Path]:
    """Where weight files are looked for: an explicit dir, ``VISION_MODEL_DIR``, the torch hub cache."""
    dirs = [Path(d) for d in (model_dir, os.environ.get("VISION_MODEL_DIR")) if d]
    dirs.append(torch_hub_dir() / "checkpoints")
    return dirs


def find_torchvision_weights(arch: str, weights: str | None, model_dir: str | Path | None) -> Path | None:
    if weights:
        p = Path(weights)
        return p if p.is_file() else None
    names = (TORCHVISION_WEIGHT_FILES[arch], f"{arch}.pth", f"{arch}.pt")
    for d in model_dirs(model_dir):
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


def list_models(model_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The built-in models this installation can run, and which weights are missing (by file name)."""
    models: list[dict[str, Any]] = [
        {"name": name, "weights_present": True, "weights_file": None} for name in OPENCV_MODELS
    ]
    for arch in TORCHVISION_ARCHS:
        found = find_torchvision_weights(arch, None, model_dir)
        models.append({
            "name": f"torchvision/{arch}",
            "weights_present": found is not None,
            "weights_file": str(found) if found else TORCHVISION_WEIGHT_FILES[arch],
        })
    seen = set()
    for d in model_dirs(model_dir):
        if d.is_dir():
            for p in sorted(d.glob("*.onnx")):
                if p.name not in seen:
                    seen.add(p.name)
                    models.append({"name": f"onnx/{p.name}", "weights_present": True, "weights_file": str(p)})
                    models.append({"name": f"onnxruntime/{p.name}", "weights_present": True,
                                   "weights_file": str(p)})
    return models
