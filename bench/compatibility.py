"""Compatibility scoring and assignment at scale, against a per-pair Python loop.

    python bench/compatibility.py [--videos 10000] [--projects 100] [--requirements 8] [--capacity 20]
                                  [--video ../shared/data/video/vtest.avi]

Scores every video against every project (vectorized) and the same pairs with a plain
per-pair loop, checks they agree, solves the assignment exactly, compares its total with a
greedy pass, and measures feature extraction as a multiple of real time on a real video.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compatibility import assign, content_features, parse_requirement, score_matrix  # noqa: E402
from compatibility.requirements import Requirement  # noqa: E402
from compatibility.scoring import score_pair  # noqa: E402
from vision.probe import probe_video  # noqa: E402

NUMERIC = ["width", "height", "fps", "duration", "brightness", "contrast", "sharpness", "motion", "noise"]


def make_videos(n: int, rng: np.random.Generator) -> list[dict]:
    heights = rng.choice([480, 720, 1080, 2160], n)
    return [{"width": int(h * 16 // 9), "height": int(h), "fps": float(rng.choice([10, 25, 30, 60])),
             "duration": float(rng.uniform(10, 600)), "brightness": float(rng.random()),
             "contrast": float(rng.uniform(0, 0.4)), "sharpness": float(rng.uniform(0, 500)),
             "motion": float(rng.uniform(0, 0.2)), "noise": float(rng.uniform(0, 0.05)),
             "codec": str(rng.choice(["h264", "hevc", "MJPG", "vp9"])), "day_night": str(rng.choice(["day", "night"]))}
            for h in heights]


def make_projects(n: int, k: int, rng: np.random.Generator) -> list[list[Requirement]]:
    projects = []
    for _ in range(n):
        reqs = []
        for _ in range(k - 2):
            feature = str(rng.choice(NUMERIC))
            lo = float(rng.uniform(0, 0.5)) if feature in ("brightness", "contrast", "motion", "noise") else \
                float(rng.choice([480, 720, 1080])) if feature in ("width", "height") else float(rng.uniform(1, 100))
            value = {"min": lo} if rng.random() < 0.5 else {"min": lo, "max": lo * 2 + 1}
            reqs.append(parse_requirement(feature, value, float(rng.uniform(0.5, 3))))
        reqs.append(parse_requirement("codec", {"in": ["h264", "hevc"]}))
        reqs.append(parse_requirement("day_night", {"equals": str(rng.choice(["day", "night"]))}))
        projects.append(reqs)
    return projects


def loop_scores(videos: list[dict], projects: list[list[Requirement]]) -> np.ndarray:
    out = np.zeros((len(videos), len(projects)))
    for v, video in enumerate(videos):
        for p, reqs in enumerate(projects):
            out[v, p] = score_pair(video, reqs)
    return out


def greedy_total(scores: np.ndarray, capacity: int, threshold: float) -> float:
    used = np.zeros(scores.shape[1], int)
    taken = np.zeros(scores.shape[0], bool)
    total = 0.0
    for flat in np.argsort(-scores, axis=None):
        v, p = divmod(int(flat), scores.shape[1])
        if scores[v, p] < threshold:
            break
        if not taken[v] and used[p] < capacity:
            taken[v], used[p] = True, used[p] + 1
            total += scores[v, p]
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--requirements", type=int, default=8)
    parser.add_argument("--capacity", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "video" / "vtest.avi"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    videos, projects = make_videos(args.videos, rng), make_projects(args.projects, args.requirements, rng)

    t = time.perf_counter()
    total, _ = score_matrix(videos, projects)
    t_vec = time.perf_counter() - t
    t = time.perf_counter()
    reference = loop_scores(videos, projects)
    t_loop = time.perf_counter() - t
    assert np.allclose(total, reference, atol=1e-12), "vectorized and loop scores differ"

    t = time.perf_counter()
    proposals = assign(total, [args.capacity] * args.projects, args.threshold)
    t_assign = time.perf_counter() - t
    optimal = sum(p.score for p in proposals)
    greedy = greedy_total(total, args.capacity, args.threshold)

    info = probe_video(args.video)
    t = time.perf_counter()
    content_features(args.video, info.frame_count, info.duration)
    t_feat = time.perf_counter() - t

    print(f"compatibility: {args.videos} videos x {args.projects} projects x {args.requirements} requirements")
    print(f"scoring, vectorized     {t_vec:8.3f} s")
    print(f"scoring, per-pair loop  {t_loop:8.3f} s   ratio {t_loop / t_vec:6.1f}x (identical scores)")
    print(f"assignment (exact)      {t_assign:8.3f} s   {len(proposals)} videos placed, capacity {args.capacity}"
          f"/project, total score {optimal:.2f} (greedy: {greedy:.2f})")
    print(f"feature extraction      {t_feat:8.3f} s   on {Path(args.video).name} ({info.duration:.1f} s of video):"
          f" {info.duration / t_feat:.0f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
