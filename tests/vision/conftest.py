"""Generated videos with known content and known presentation times."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def vtest(shared_data) -> Path:
    path = shared_data / "video" / "vtest.avi"
    assert path.is_file()
    return path


@pytest.fixture(scope="session")
def vtest_ground_truth():
    """The demo's hand-made ground truth of vtest.avi (``demo/vtest_ground_truth.csv``), by frame."""
    return _vtest_ground_truth


def _vtest_ground_truth(frames: list[int]) -> dict[int, list[tuple[float, float, float, float]]]:
    import csv
    from collections import defaultdict

    from keyframes.timeline import Timeline
    from keyframes.tracks import Keyframe, interpolate

    keys = defaultdict(list)
    with open(Path(__file__).resolve().parents[2] / "demo" / "vtest_ground_truth.csv") as fh:
        for r in csv.DictReader(fh):
            if r["outside"] != "1":
                keys[r["track_id"]].append(Keyframe(int(r["frame_number"]), tuple(float(r[c]) for c in
                                                                                  ("x1", "y1", "x2", "y2"))))
    gt: dict[int, list] = {f: [] for f in frames}
    for track in keys.values():
        lo, hi = min(k.frame_number for k in track), max(k.frame_number for k in track)
        inside = [f for f in frames if lo <= f <= hi]
        for f, box in zip(inside, interpolate(track, inside, Timeline.constant(150, 10.0)), strict=True):
            gt[f].append(box)
    return gt
