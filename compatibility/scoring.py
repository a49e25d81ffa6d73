"""Scores of every video against every project at once.

Each requirement scores in [0, 1]: 1 inside its bounds, falling linearly to 0 one soft margin
outside (a quarter of the range, or of the bound's magnitude when only one bound is given);
``equals`` on a number is a range of zero width, categorical ``equals``/``in`` score 1 or 0; a
feature that was not measured scores 0. A project's score is the weighted mean of its
requirements' scores (1 for a project with no requirements).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .requirements import NUMERIC, Requirement


def _range_scores(x: np.ndarray, low: np.ndarray, high: np.ndarray, m_lo: np.ndarray, m_hi: np.ndarray) -> np.ndarray:
    """1 - (distance below ``low``)/margin - (distance above ``high``)/margin, clipped to [0, 1].

    At most one distance is positive; written with in-place operations because at 10,000
    videos x 800 requirements each temporary is ~64 MB.
    """
    below = np.subtract(low, x)
    np.maximum(below, 0.0, out=below)
    below /= m_lo
    above = np.subtract(x, high)
    np.maximum(above, 0.0, out=above)
    above /= m_hi
    below += above
    np.subtract(1.0, below, out=below)
    np.clip(below, 0.0, 1.0, out=below)
    below[np.isnan(below)] = 0.0  # an unmeasured feature scores 0
    return below


class _Plan:
    """Everything about a list of requirements that does not depend on the videos, computed once."""

    def __init__(self, requirements: Sequence[Requirement]) -> None:
        self.requirements = list(requirements)
        self.numeric_features = sorted({r.feature for r in requirements if r.numeric})
        self.category_features = sorted({r.feature for r in requirements if not r.numeric})
        index = {name: j for j, name in enumerate(self.numeric_features)}
        self.ranged = np.array([i for i, r in enumerate(requirements) if r.kind == "range"], dtype=np.int64)
        ranged = [requirements[i] for i in self.ranged]
        self.ranged_columns = np.array([index[r.feature] for r in ranged], dtype=np.int64)
        self.low = np.array([r.low for r in ranged])
        self.high = np.array([r.high for r in ranged])
        margins = np.array([r.margin() for r in ranged]).reshape(-1, 2)
        self.m_lo, self.m_hi = margins[:, 0], margins[:, 1]
        self.member = [(i, r) for i, r in enumerate(requirements) if r.kind == "in"]
        self.numeric_index = index

    def table(self, videos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``[V, K]`` numeric features, NaN where a video lacks one."""
        if not self.numeric_features:
            return np.zeros((len(videos), 0))
        rows = np.array([[v.get(name) for name in self.numeric_features] for v in videos], dtype=object)
        rows = rows.reshape(len(videos), len(self.numeric_features))
        rows[np.equal(rows, None)] = np.nan
        return rows.astype(np.float64)

    def scores(self, videos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        n_videos = len(videos)
        scores = np.zeros((n_videos, len(self.requirements)))
        table = self.table(videos)
        if self.ranged.size:
            scores[:, self.ranged] = _range_scores(table[:, self.ranged_columns], self.low, self.high,
                                                   self.m_lo, self.m_hi)
        codes_of: dict[str, tuple[np.ndarray, dict[Any, int]]] = {}
        for i, r in self.member:
            if r.numeric:
                x = table[:, self.numeric_index[r.feature]]
                scores[:, i] = np.isclose(x[:, None], np.array(r.values, dtype=float)[None, :]).any(axis=1)
                continue
            if r.feature not in codes_of:
                codes: dict[Any, int] = {}
                column = np.fromiter((codes.setdefault(v.get(r.feature), len(codes)) for v in videos),
                                     dtype=np.int64, count=n_videos)
                codes_of[r.feature] = (column, codes)
            column, codes = codes_of[r.feature]
            allowed = np.zeros(len(codes) + 1, dtype=bool)
            for value in r.values:
                if value is not None and value in codes:
                    allowed[codes[value]] = True
            scores[:, i] = allowed[column]
        return scores


def requirement_scores(videos: Sequence[Mapping[str, Any]], requirements: Sequence[Requirement]) -> np.ndarray:
    """``[V, N]`` score of each video against each requirement."""
    return _Plan(requirements).scores(videos)


def score_matrix(videos: Sequence[Mapping[str, Any]], projects: Sequence[Sequence[Requirement]],
                 chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """``(total [V, P], project of each flattened requirement [N])``.

    Videos are scored in chunks so the per-requirement temporaries stay small and reused;
    :func:`requirement_scores` gives the per-requirement scores of the videos to explain.
    """
    flat = [r for reqs in projects for r in reqs]
    owner = np.array([p for p, reqs in enumerate(projects) for _ in reqs], dtype=np.int64)
    weights = np.zeros((len(flat), len(projects)))
    weights[np.arange(len(flat)), owner] = [r.weight for r in flat]
    total_weight = weights.sum(axis=0)
    safe = np.where(total_weight > 0, total_weight, 1.0)
    total = np.ones((len(videos), len(projects)))
    plan = _Plan(flat)
    for start in range(0, len(videos), chunk):
        part = plan.scores(videos[start:start + chunk])
        total[start:start + chunk] = np.where(total_weight > 0, (part @ weights) / safe, 1.0)
    return total, owner


def score_pair(video: Mapping[str, Any], requirements: Sequence[Requirement]) -> float:
    """One video against one project, one requirement at a time: the plain definition.

    The vectorized :func:`score_matrix` must agree with it exactly; tests and the benchmark
    use it as the reference.
    """
    total = weights = 0.0
    for r in requirements:
        x = video.get(r.feature)
        if x is None:
            s = 0.0
        elif r.kind == "in":
            s = 1.0 if any(x == v for v in r.values) else 0.0
        elif r.low <= x <= r.high:
            s = 1.0
        else:
            lo_m, hi_m = r.margin()
            s = max(0.0, 1 - (r.low - x) / lo_m) if x < r.low else max(0.0, 1 - (x - r.high) / hi_m)
        total += r.weight * s
        weights += r.weight
    return total / weights if weights else 1.0


def _fmt(feature: str, value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    else:
        text = str(int(value)) if isinstance(value, float) else str(value)
    unit = NUMERIC.get(feature, "")
    return f"{text} {unit}".rstrip() if unit and unit != "/min" else text + (unit if unit == "/min" else "")


def explain(video: Mapping[str, Any], requirements: Sequence[Requirement], scores: Sequence[float]
            ) -> tuple[list[dict[str, Any]], str]:
    """Per-requirement breakdown and a short sentence a person can read."""
    parts, reasons = [], []
    for r, score in zip(requirements, scores, strict=True):
        value = video.get(r.feature)
        if value is None:
            text = f"{r.feature} not measured" + (" (no detection job for this video)"
                                                  if r.feature.startswith("density_") else "")
        elif r.kind == "in":
            shown = ", ".join(str(v) for v in r.values)
            text = f"{r.feature} {value} {'is' if score >= 1 else 'is not'} one of [{shown}]"
        else:
            v = float(value)
            if r.low == r.high:
                text = f"{r.feature} {_fmt(r.feature, v)} {'equals' if score >= 1 else 'differs from'} " \
                       f"{_fmt(r.feature, r.low)}"
            elif v < r.low:
                text = f"{r.feature} {_fmt(r.feature, v)} is below min {_fmt(r.feature, r.low)}"
            elif v > r.high:
                text = f"{r.feature} {_fmt(r.feature, v)} is above max {_fmt(r.feature, r.high)}"
            else:
                bounds = [f"min {_fmt(r.feature, r.low)}" if math.isfinite(r.low) else "",
                          f"max {_fmt(r.feature, r.high)}" if math.isfinite(r.high) else ""]
                text = f"{r.feature} {_fmt(r.feature, v)} meets {' and '.join(b for b in bounds if b)}"
        if 0 < score < 1:
            text += f" (partial credit {score:.2f})"
        reasons.append(text)
        parts.append({"requirement_type": r.feature, "value": value, "weight": r.weight,
                      "score": round(float(score), 4), "reason": text})
    return parts, "; ".join(reasons) if reasons else "the project has no requirements"
