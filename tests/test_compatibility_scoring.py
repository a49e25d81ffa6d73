"""The compatibility scoring engine: features on generated and real videos, requirements, scores, assignment."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from compatibility import RequirementError, assign, content_features, explain, parse_requirement, score_matrix
from compatibility.assignment import brute_force
from compatibility.scoring import requirement_scores, score_pair


def _clip(path, frames=30, fps=10, brightness=128, moving=False, blurred=False, size=(320, 240)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    checker = (((xx // 8) + (yy // 8)) % 2).astype(np.float32)
    for i in range(frames):
        img = brightness * (0.6 + 0.4 * checker)
        if moving:
            x = (i * 9) % (size[0] - 60)
            img[60:160, x:x + 60] = 255 - brightness
        img = np.clip(img, 0, 255).astype(np.uint8)
        if blurred:
            img = cv2.GaussianBlur(img, (0, 0), 4)
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def _features(path, frames=30, fps=10):
    return content_features(path, frames, frames / fps, samples=12)


def test_features_tell_dark_from_bright_static_from_moving_sharp_from_blurred(tmp_path):
    dark = _features(_clip(tmp_path / "dark.avi", brightness=30))
    bright = _features(_clip(tmp_path / "bright.avi", brightness=200))
    moving = _features(_clip(tmp_path / "moving.avi", moving=True))
    blurred = _features(_clip(tmp_path / "blurred.avi", blurred=True))
    static = _features(_clip(tmp_path / "static.avi"))
    assert dark["brightness"] < 0.2 < 0.6 < bright["brightness"]
    assert dark["day_night"] == "night" and bright["day_night"] == "day"
    assert moving["motion"] > 10 * max(static["motion"], 1e-4)
    assert static["sharpness"] > 10 * blurred["sharpness"]
    assert static["frames_sampled"] == 12


def test_features_on_a_real_video(shared_data):
    f = content_features(shared_data / "video" / "vtest.avi", 795, 79.5, samples=24)
    assert 0.2 < f["brightness"] < 0.9 and f["motion"] > 0 and f["sharpness"] > 0 and f["day_night"] == "day"
    assert f["scene_change_rate"] == 0  # one fixed camera, no cuts


@pytest.mark.parametrize(("rtype", "value", "weight", "field"), [
    ("altitude", {"min": 1}, 1, "requirement_type"),
    ("brightness", {"min": 0.5, "max": 0.1}, 1, "requirement_value"),
    ("brightness", {"min": "bright"}, 1, "requirement_value"),
    ("brightness", {"min": float("nan")}, 1, "requirement_value"),
    ("brightness", {"between": [1, 2]}, 1, "requirement_value"),
    ("brightness", {"min": 0.1}, 0, "weight"),
    ("day_night", {"min": 1}, 1, "requirement_value"),
    ("day_night", {"equals": "dusk"}, 1, "requirement_value"),
    ("codec", {"in": []}, 1, "requirement_value"),
])
def test_bad_requirements_name_their_field(rtype, value, weight, field):
    with pytest.raises(RequirementError) as err:
        parse_requirement(rtype, value, weight)
    assert err.value.field == field


def test_vectorized_scores_match_a_per_pair_loop():
    rng = np.random.default_rng(3)
    videos = [{"height": int(rng.choice([480, 720, 1080])), "brightness": float(rng.random()),
               "fps": float(rng.choice([10, 25, 30, 60])), "codec": str(rng.choice(["h264", "hevc", "MJPG"])),
               "day_night": str(rng.choice(["day", "night"]))} for _ in range(60)]
    videos[0].pop("brightness")
    projects = [[parse_requirement("height", {"min": 720}, 2), parse_requirement("brightness", {"max": 0.3}),
                 parse_requirement("codec", {"in": ["h264", "hevc"]}, 0.5)],
                [parse_requirement("fps", {"equals": 30}), parse_requirement("day_night", {"equals": "day"}, 3),
                 parse_requirement("brightness", {"min": 0.4, "max": 0.7})],
                []]
    total, owner = score_matrix(videos, projects, chunk=7)  # chunks of 7 videos: the seams must not show
    per_req = requirement_scores(videos, [r for reqs in projects for r in reqs])
    assert total.shape == (60, 3) and per_req.shape == (60, 6) and owner.tolist() == [0, 0, 0, 1, 1, 1]
    for v, video in enumerate(videos):
        for p, reqs in enumerate(projects):
            assert total[v, p] == pytest.approx(score_pair(video, reqs), abs=1e-12)
    parts, reason = explain({"height": 480, "brightness": 0.2, "codec": "MJPG"}, projects[0],
                            per_req[0, :3] * 0 + [0.0, 1.0, 0.0])
    assert "height 480 px is below min 720 px" in reason and "codec MJPG is not one of [h264, hevc]" in reason
    assert [p["requirement_type"] for p in parts] == ["height", "brightness", "codec"]


def test_soft_margin():
    r = parse_requirement("height", {"min": 720})  # margin = 180 px
    total, _ = score_matrix([{"height": 720}, {"height": 630}, {"height": 540}, {"height": 500}], [[r]])
    assert total[:, 0].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_assignment_is_optimal_against_brute_force_and_respects_capacities():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_videos, n_projects = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        scores = np.round(rng.random((n_videos, n_projects)), 2)
        caps = [None if rng.random() < 0.3 else int(rng.integers(0, 3)) for _ in range(n_projects)]
        proposals = assign(scores, caps, 0.5)
        assert sum(p.score for p in proposals) == pytest.approx(brute_force(scores, caps, 0.5), abs=1e-9)
        assert len({p.video for p in proposals}) == len(proposals)  # a video at most once
        for j, cap in enumerate(caps):
            assert cap is None or sum(p.project == j for p in proposals) <= cap
        assert all(p.score >= 0.5 and 0 <= p.confidence <= 1 for p in proposals)


def test_greedy_is_not_enough():
    # Greedy would give video 0 to project 0 (0.9) and leave video 1 with nothing it can take.
    scores = np.array([[0.9, 0.8], [0.85, 0.1]])
    got = {(p.video, p.project) for p in assign(scores, [1, 1], 0.6)}
    assert got == {(0, 1), (1, 0)} and math.isclose(sum(scores[v, p] for v, p in got), 1.65)
