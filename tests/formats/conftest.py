"""Fixtures for the format engine: the third-party fixture folder and generated records."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from formats import Annotation, Detection, VideoInfo  # noqa: E402

FORMAT_FIXTURES = ROOT.parent / "shared" / "data" / "formats"
CLASSES = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
VIDEO = VideoInfo(width=640, height=360, frame_count=50, fps=10.0, name="clip", video_id="v1")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FORMAT_FIXTURES.is_dir():
        pytest.skip(f"format fixtures not found at {FORMAT_FIXTURES}")
    return FORMAT_FIXTURES


def make_annotations(n_tracks: int = 6, seed: int = 1) -> list[Annotation]:
    """Tracks ordered by track then frame, with fractional boxes, flags and attributes."""
    rng = random.Random(seed)
    out = []
    for t in range(n_tracks):
        label = CLASSES[t % len(CLASSES)]
        start = rng.randrange(0, 20)
        for f in range(start, start + rng.randrange(3, 12)):
            x1 = round(rng.uniform(0, 600), 3)
            y1 = round(rng.uniform(0, 320), 3)
            box = (x1, y1, round(x1 + rng.uniform(5, 60), 3), round(y1 + rng.uniform(10, 80), 3))
            out.append(Annotation(f, label, box, track_id=t, timestamp=f / 10, keyframe=(f % 3 == 0),
                                  occluded=(f % 4 == 0), attributes={"color": "red"} if t == 1 else {},
                                  video_id="v1"))
    return out


def make_detections(n: int = 40, seed: int = 2) -> list[Detection]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        f = i // 4
        x1 = round(rng.uniform(0, 600), 2)
        y1 = round(rng.uniform(0, 300), 2)
        out.append(Detection(f, CLASSES[i % 3], (x1, y1, x1 + 20.5, y1 + 40.25), round(rng.random(), 4),
                             track_id=i % 5, timestamp=f / 10, video_id="v1"))
    return out


@pytest.fixture
def classes() -> list[str]:
    return list(CLASSES)


@pytest.fixture
def video() -> VideoInfo:
    return VIDEO


@pytest.fixture
def annotations() -> list[Annotation]:
    return make_annotations()


@pytest.fixture
def detections() -> list[Detection]:
    return make_detections()
