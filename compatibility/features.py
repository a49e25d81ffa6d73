"""What a video looks like, measured on frames sampled across its whole length."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

#: Bump when a measurement changes: cached features of an older version are recomputed.
EXTRACTOR_VERSION = "1"
NIGHT_BRIGHTNESS = 0.25
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _noise_sigma(gray: np.ndarray) -> float:
    """Immerkær's fast noise estimate (sigma of additive noise, in 0-1 intensity units)."""
    h, w = gray.shape
    response = cv2.filter2D(gray, cv2.CV_32F, _NOISE_KERNEL)
    return float(math.sqrt(math.pi / 2) * np.abs(response).sum() / (6 * (w - 2) * (h - 2)))


def content_features(path: str | Path, frame_count: int, duration: float, samples: int = 48, width: int = 320,
                     progress: Callable[[float], None] | None = None) -> dict[str, float | str]:
    """Brightness, contrast, sharpness, noise, motion and scene-change rate.

    ``samples`` frames evenly spaced over the video are measured at ``width`` pixels wide
    (sharpness is scale dependent, so every video is measured at the same width). Motion is
    the mean absolute difference between each sampled frame and the frame right after it;
    a scene change is counted where two consecutive samples' colour histograms differ
    sharply. Frames are grabbed sequentially (exact positions, no inaccurate seeking) and only
    the sampled ones are decoded to pixels.
    """
    n = max(1, min(samples, frame_count))
    wanted = set(np.linspace(0, max(frame_count - 2, 0), n).round().astype(int).tolist())
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    stats: dict[str, list[float]] = {k: [] for k in ("brightness", "contrast", "sharpness", "noise", "motion")}
    hists: list[np.ndarray] = []
    previous: np.ndarray | None = None
    last = max(wanted)
    try:
        for index in range(last + 2):
            if not cap.grab():
                break
            if index not in wanted and index - 1 not in wanted:
                continue
            ok, frame = cap.retrieve()
            if not ok:
                break
            scale = width / frame.shape[1]
            small = cv2.resize(frame, (width, max(1, round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
            if index in wanted:
                stats["brightness"].append(float(gray.mean()))
                stats["contrast"].append(float(gray.std()))
                stats["sharpness"].append(float(cv2.Laplacian(gray * 255.0, cv2.CV_32F).var()))
                stats["noise"].append(_noise_sigma(gray))
                hist = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
                hists.append(cv2.normalize(hist, hist).flatten())
                if progress is not None:
                    progress(len(hists) / n)
            if index - 1 in wanted and previous is not None:
                stats["motion"].append(float(np.abs(gray - previous).mean()))
            previous = gray
    finally:
        cap.release()
    if not hists:
        raise ValueError(f"no decodable frame in {path}")
    cuts = sum(1 for a, b in zip(hists, hists[1:], strict=False)
               if cv2.compareHist(a, b, cv2.HISTCMP_CORREL) < 0.5)
    brightness = float(np.mean(stats["brightness"]))
    return {
        "brightness": round(brightness, 4),
        "contrast": round(float(np.mean(stats["contrast"])), 4),
        "sharpness": round(float(np.median(stats["sharpness"])), 2),
        "noise": round(float(np.median(stats["noise"])), 5),
        "motion": round(float(np.mean(stats["motion"])) if stats["motion"] else 0.0, 5),
        "scene_change_rate": round(cuts / (duration / 60.0), 3) if duration > 0 else 0.0,
        "day_night": "night" if brightness < NIGHT_BRIGHTNESS else "day",
        "frames_sampled": len(hists),
    }
