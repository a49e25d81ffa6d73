"""Assign videos to projects: each video to at most one project, each project up to its capacity,
total score maximal.

Solved exactly as a rectangular assignment problem (``scipy.optimize.linear_sum_assignment``):
one column per free slot of each capacity-limited project, and a zero-gain "leave empty" row per
slot. Projects without a capacity limit need no slots: a video that goes to none of the limited
projects simply takes its best unlimited project, so the limited slots are filled by *gain* over
that fallback.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

INFEASIBLE = -1e9


@dataclass(frozen=True)
class Proposal:
    video: int
    project: int
    score: float
    confidence: float


def _confidence(row: np.ndarray, chosen: int) -> float:
    """High when the video fits this project clearly better than any other (and well above the bar)."""
    score = float(row[chosen])
    others = np.delete(row, chosen)
    second = float(others.max()) if others.size else 0.0
    lead = max(0.0, score - second)
    return round(min(1.0, 0.5 * score + 0.5 * (lead / score if score > 0 else 0.0)), 4)


def assign(scores: np.ndarray, capacities: Sequence[int | None], threshold: float = 0.6) -> list[Proposal]:
    """Optimal proposals for a ``[V, P]`` score matrix; ``None`` capacity means unlimited."""
    scores = np.asarray(scores, dtype=np.float64)
    n_videos, n_projects = scores.shape
    feasible = scores >= threshold
    unlimited = [p for p in range(n_projects) if capacities[p] is None]
    limited = [p for p in range(n_projects) if capacities[p] is not None and capacities[p] > 0]

    # Fallback: the best unlimited project above the threshold (or nothing).
    fallback_project = np.full(n_videos, -1)
    fallback_score = np.zeros(n_videos)
    if unlimited:
        sub = np.where(feasible[:, unlimited], scores[:, unlimited], -np.inf)
        best = sub.argmax(axis=1)
        has = np.isfinite(sub[np.arange(n_videos), best])
        fallback_project[has] = np.asarray(unlimited)[best[has]]
        fallback_score[has] = sub[np.arange(n_videos), best][has]

    assignment = dict(enumerate(fallback_project.tolist()))
    if limited:
        slots = [p for p in limited for _ in range(min(int(capacities[p]), n_videos))]
        slot_projects = np.asarray(slots)
        gain = np.where(feasible[:, slot_projects], scores[:, slot_projects] - fallback_score[:, None], INFEASIBLE)
        matrix = np.vstack([gain, np.zeros((len(slots), len(slots)))])  # rows past V leave a slot empty
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        for r, c in zip(rows, cols, strict=True):
            if r < n_videos and gain[r, c] > 0:
                assignment[r] = int(slot_projects[c])
    proposals = []
    for v, p in assignment.items():
        if p >= 0:
            proposals.append(Proposal(v, p, float(scores[v, p]), _confidence(scores[v], p)))
    return sorted(proposals, key=lambda x: (x.project, -x.score, x.video))


def brute_force(scores: np.ndarray, capacities: Sequence[int | None], threshold: float = 0.6) -> float:
    """Best total score by enumeration (tiny instances only): the reference for tests."""
    n_videos, n_projects = scores.shape
    best = 0.0

    def walk(v: int, used: list[int], total: float) -> None:
        nonlocal best
        if v == n_videos:
            best = max(best, total)
            return
        walk(v + 1, used, total)
        for p in range(n_projects):
            cap = capacities[p]
            if scores[v, p] >= threshold and (cap is None or used[p] < cap):
                used[p] += 1
                walk(v + 1, used, total + scores[v, p])
                used[p] -= 1

    walk(0, [0] * n_projects, 0.0)
    return best
