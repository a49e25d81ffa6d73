"""Where inference runs; the same code path on a GPU worker and on a CPU-only machine."""
from __future__ import annotations

import torch


def select_device(preference: str | None = None) -> torch.device:
    """``auto``/None picks the worker's GPU when usable; an explicit ``cuda`` without one fails."""
    if preference in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no GPU is usable here")
    return device


def to_device_batch(images: list, device: torch.device, half: bool = False) -> torch.Tensor:
    """Stack BGR uint8 frames into an RGB float tensor [B,3,H,W] in 0..1 on ``device``.

    On a GPU the host copy goes through pinned memory and a side stream so the upload can
    overlap other work; the conversion to float happens on the device, where it is cheap.
    """
    import numpy as np

    host = torch.from_numpy(np.ascontiguousarray(np.stack(images)[..., ::-1]))
    if device.type == "cuda":
        host = host.pin_memory()
        stream = torch.cuda.Stream(device)
        with torch.cuda.stream(stream):
            batch = host.to(device, non_blocking=True)
            batch = batch.permute(0, 3, 1, 2).to(torch.float16 if half else torch.float32).div_(255.0)
        torch.cuda.current_stream(device).wait_stream(stream)
        batch.record_stream(torch.cuda.current_stream(device))
        return batch
    return host.permute(0, 3, 1, 2).float().div_(255.0)
