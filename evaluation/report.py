"""Plots of a test session's stored metrics, as PNG bytes (matplotlib, Agg, no pyplot state).

Input is the JSON-shaped metrics of :func:`evaluation.session.evaluate_session`, so a report
can be drawn again later from what the database holds. Figures are built on their own Agg
canvas, never through pyplot, so rendering is safe in threads and leaves no global state.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def pr_curves_png(metrics: Mapping[str, Any]) -> bytes:
    """Precision against recall per class at the evaluation's IoU threshold (all scores).

    The operating point (the session's score threshold) is marked on each curve.
    """
    op = metrics.get("operating_point") or {}
    per_class = op.get("per_class") or {}
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    drawn = 0
    for name, cls in per_class.items():
        curve = cls.get("pr_curve") or {}
        rec, prec = curve.get("recall") or [], curve.get("precision") or []
        if not rec:
            continue
        ax.plot(np.r_[0.0, rec], np.r_[prec[0], prec], drawstyle="steps-post", label=name)
        if cls.get("recall") is not None and cls.get("precision") is not None:
            ax.plot([cls["recall"]], [cls["precision"]], marker="o", color=ax.lines[-1].get_color())
        drawn += 1
    iou = op.get("iou_threshold")
    return pr_axes_png(fig, ax, drawn, "Precision-recall per class" + (
        f" (IoU {iou:g}; dot: score >= {op.get('score_threshold'):g})" if iou is not None else ""))


def pr_axes_png(fig: Figure, ax: Any, drawn: int, title: str) -> bytes:
    """Finish a precision-recall plot (axes, title, legend, or a note when no curve was drawn)."""
    if not drawn:
        ax.text(0.5, 0.5, "no ground truth or detections", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def confusion_matrix_png(metrics: Mapping[str, Any]) -> bytes:
    """Ground truth (rows) against predictions (columns), background last, counts in the cells."""
    cm = (metrics.get("operating_point") or {}).get("confusion_matrix") or {}
    labels = list(cm.get("labels") or [])
    matrix = np.asarray(cm.get("matrix") or np.zeros((0, 0)), dtype=np.int64).reshape(len(labels), len(labels))
    size = max(4.0, 1.0 + 0.8 * len(labels))
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(matrix if matrix.size else np.zeros((1, 1)), cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (background: missed / false detections)", fontsize=10)
    top = matrix.max() if matrix.size else 0
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black")
    fig.tight_layout()
    return _png(fig)


def latency_histogram_png(metrics: Mapping[str, Any]) -> bytes:
    """Seconds from each object's first appearance to its first detection, stacked by class.

    Missed objects (never detected) are counted in the title, since they have no latency.
    """
    temporal = metrics.get("temporal") or {}
    objects = temporal.get("objects") or []
    by_class: dict[str, list[float]] = {}
    for o in objects:
        if o.get("latency_seconds") is not None:
            by_class.setdefault(o.get("class_label", "?"), []).append(float(o["latency_seconds"]))
    missed = sum(1 for o in objects if o.get("first_detected_frame") is None)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    values = [v for vs in by_class.values() for v in vs]
    if values:
        hi = max(values)
        bins = np.linspace(0.0, hi if hi > 0 else 1.0, min(30, max(5, len(values))) + 1)
        ax.hist(list(by_class.values()), bins=bins, stacked=True, label=list(by_class))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no detected objects", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("detection latency (s)")
    ax.set_ylabel("objects")
    ax.set_title(f"Detection latency: {len(values)} detected, {missed} missed objects", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


PLOTS: dict[str, Callable[[Mapping[str, Any]], bytes]] = {
    "pr_curves": pr_curves_png,
    "confusion_matrix": confusion_matrix_png,
    "latency_histogram": latency_histogram_png,
}


def render_plot(name: str, metrics: Mapping[str, Any]) -> bytes:
    if name not in PLOTS:
        raise KeyError(f"unknown plot {name!r}; known: {sorted(PLOTS)}")
    return PLOTS[name](metrics)


def render_report(metrics: Mapping[str, Any]) -> dict[str, bytes]:
    """Every plot of the report, by name."""
    return {name: draw(metrics) for name, draw in PLOTS.items()}
