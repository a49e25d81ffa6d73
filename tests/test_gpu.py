"""On a machine with a GPU: the GPU pool pinned to a device runs real detection jobs on it.

``make gpu-check`` runs these (and the detection benchmark on the GPU). Where CUDA is absent
every test here is skipped, saying why; nothing of it runs on the CPU instead.
"""
from __future__ import annotations

import json
import sys
import uuid

import pytest
from harness import PYTHON, UNIT_REDIS_URL, own_stack, project_with_video, wait_until

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.timeout(900)]


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken CUDA install is "no GPU" for these tests
        return False


if not _cuda():
    pytest.skip("no usable CUDA device on this machine", allow_module_level=True)


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory):
    """Web, a CPU worker, and the real GPU pool (``python -m workers gpu``) pinned to device 0."""
    tmp = tmp_path_factory.mktemp("gpu")
    with own_stack(tmp, UNIT_REDIS_URL, workers=(("cpu", "cpu1"),)) as st:
        st._spawn("gpu-pool", [PYTHON, "-m", "workers", "gpu"], GPU_DEVICES="0")
        wait_until(lambda: "gpu0@" in st.log("gpu-pool") and " ready." in st.log("gpu-pool"), 120, 0.5,
                   "the GPU pool's worker")
        yield st
        st.stop("gpu-pool")


def _run(st, project, video, model, **extra) -> dict:
    r = st.api("POST", "/api/test-sessions", json={"project_id": project["id"], "video_id": video["id"],
                                                    "model": model, "batch_size": 8, **extra})
    assert r.status_code == 202, r.text
    job = st.wait_job(r.json()["job_id"], timeout=300)
    assert job["status"] == "completed", job
    return job["result"]


def test_a_torchvision_model_runs_in_half_precision_on_the_pinned_gpu(gpu_stack, tmp_path):
    import torch
    import torchvision.models.detection as tvd

    torch.manual_seed(0)
    model = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    (gpu_stack.workdir / "models").mkdir(exist_ok=True)
    name = f"ssd-{uuid.uuid4().hex[:6]}.pth"
    torch.save(model.state_dict(), gpu_stack.workdir / "models" / name)
    project, video = project_with_video(gpu_stack, tmp_path, frames=40)
    spec = {"name": "torchvision/ssdlite320_mobilenet_v3_large", "weights": name, "confidence_threshold": 0.0}
    full = _run(gpu_stack, project, video, spec)
    half = _run(gpu_stack, project, video, {**spec, "half": True})
    for summary in (full, half):
        # The pinned worker sees exactly one device, as cuda:0, whatever its number on the host.
        assert summary["device"].startswith("cuda") and summary["frames_processed"] == 40, summary
    assert full["half"] is False and half["half"] is True
    assert full["detections"] > 0 and half["detections"] > 0


def test_an_onnx_model_runs_on_the_cuda_execution_provider(gpu_stack, demo_model, shared_data):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime ({ort.__version__}) has no CUDA execution provider: install onnxruntime-gpu")
    with open(demo_model, "rb") as fh:
        r = gpu_stack.api("POST", "/api/models", data={
            "name": "gpu-pedestrians", "version": uuid.uuid4().hex[:6], "format": "onnx",
            "classes": json.dumps(["background", "person"]), "input_size": "300"}, files={"file": ("m.onnx", fh)})
    assert r.status_code == 202, r.text
    check = gpu_stack.wait_job(r.json()["check_job_id"], timeout=180)
    assert check["status"] == "completed" and check["result"]["status"] == "ready", check
    assert check["result"]["device"] == "cuda", check  # the CUDA provider, not the CPU fallback
    project = gpu_stack.api("POST", "/api/projects", json={"name": f"gpu-{uuid.uuid4().hex[:6]}"}).json()
    with open(shared_data / "video" / "vtest.avi", "rb") as fh:
        video = gpu_stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                              files={"file": ("vtest.avi", fh)}).json()
    summary = _run(gpu_stack, project, video, r.json()["ref"], frame_to=199)
    assert summary["device"] == "cuda" and summary["frames_processed"] == 200
    assert summary["per_class"]["pedestrian"] >= 2.5 * 200, summary


def test_the_detection_benchmark_compares_pipeline_and_naive_on_the_gpu(demo_model):
    import subprocess

    from harness import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "detection_pipeline.py"), "--device", "cuda",
                           "--frames", "100", "--repeats", "1", "--half",
                           "--models", "pedestrian-ssdlite,torchvision/ssdlite320_mobilenet_v3_large"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    rows = json.loads(done.stdout[done.stdout.index("\n[") + 1:])
    assert {r["model"] for r in rows} == {"pedestrian-ssdlite", "torchvision/ssdlite320_mobilenet_v3_large"}
    for row in rows:
        assert row["device"].startswith("cuda") and row["boxes"]["pipeline"] == row["boxes"]["naive"], row
