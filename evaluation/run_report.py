"""A validation run's report: PNG plots (matplotlib, Agg, no pyplot state) and one
self-contained HTML page with the plots inline.

Inputs are what the run stores (``evaluation.runs.aggregate`` output, a paired comparison)
plus the run's overall precision-recall curve, drawn from the per-video matches with
:func:`pr_curve`, so a report can be drawn again from stored data.
"""
from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .report import _png, pr_axes_png

#: Points kept of a precision-recall curve (it is stored with the metrics).
CURVE_POINTS = 200


def pr_curve(videos: Iterable[Any], max_points: int = CURVE_POINTS) -> dict[str, list[float]]:
    """Precision against recall over every class and video at COCO's first IoU threshold (0.5),
    from per-video matches (``det_score``, ``det_tp``/``det_ig`` bit 0 of area setting 0, ``gt_count``)."""
    scores, tps, npos = [], [], 0
    for vm in videos:
        keep = (vm.det_ig[:, 0] & 1) == 0 if vm.det_ig.size else np.zeros(0, dtype=bool)
        scores.append(np.asarray(vm.det_score)[keep])
        tps.append(((vm.det_tp[:, 0] & 1) == 1)[keep] if vm.det_tp.size else np.zeros(0, dtype=bool))
        npos += int(np.asarray(vm.gt_count)[:, 0].sum())
    if not scores or npos == 0:
        return {"recall": [], "precision": [], "score": []}
    score, tp = np.concatenate(scores), np.concatenate(tps)
    order = np.argsort(-score, kind="mergesort")
    score, tp = score[order], tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / npos
    precision = ctp / np.maximum(ctp + cfp, 1)
    if recall.size > max_points:
        pick = np.unique(np.linspace(0, recall.size - 1, max_points).round().astype(int))
        recall, precision, score = recall[pick], precision[pick], score[pick]
    return {"recall": recall.round(6).tolist(), "precision": precision.round(6).tolist(),
            "score": score.round(6).tolist()}


def pr_overlay_png(curves: Mapping[str, Mapping[str, list[float]]]) -> bytes:
    """Each run's overall precision-recall curve on one plot."""
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    drawn = 0
    for name, curve in curves.items():
        if curve and curve.get("recall"):
            ax.plot(curve["recall"], curve["precision"], label=name)
            drawn += 1
    return pr_axes_png(fig, ax, drawn, "Precision-recall, every class (IoU 0.5)")


def slice_bars_png(metrics: Mapping[str, Any], metric: str = "ap") -> bytes:
    """The headline ``metric`` of every slice with its bootstrap interval, the overall value as a line."""
    labels, values, low, high = [], [], [], []
    for key, by_value in sorted((metrics.get("slices") or {}).items()):
        for value, scope in sorted(by_value.items()):
            if scope.get("insufficient"):
                continue
            v = (scope.get("headline") or {}).get(metric)
            if v is None:
                continue
            iv = (scope.get("intervals") or {}).get(metric) or {}
            labels.append(f"{key}={value}")
            values.append(v)
            low.append(v - iv["low"] if iv.get("low") is not None else 0.0)
            high.append(iv["high"] - v if iv.get("high") is not None else 0.0)
    fig = Figure(figsize=(max(6.4, 0.5 * len(labels) + 2), 4.8))
    ax = fig.add_subplot()
    if labels:
        x = np.arange(len(labels))
        ax.bar(x, values, yerr=[np.maximum(low, 0), np.maximum(high, 0)], capsize=3, color="#4c72b0")
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no slice with enough videos and objects", ha="center", va="center",
                transform=ax.transAxes)
    overall = ((metrics.get("overall") or {}).get("headline") or {}).get(metric)
    if overall is not None:
        ax.axhline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.3f}")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per slice (bars: 95% bootstrap interval over videos)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _video_ap(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for row in metrics.get("per_video") or []:
        ap = (row.get("coco") or {}).get("AP")
        if ap is not None and ap != -1:
            out[row["video_id"]] = ap
    return out


def video_scatter_png(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> bytes:
    """Per-video AP of two runs against each other; points above the diagonal improved."""
    a, b = _video_ap(baseline), _video_ap(candidate)
    common = sorted(set(a) & set(b))
    fig = Figure(figsize=(5.2, 5.2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
    if common:
        ax.scatter([a[v] for v in common], [b[v] for v in common], s=18)
    else:
        ax.text(0.5, 0.5, "no video evaluated in both runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("baseline AP per video")
    ax.set_ylabel("this run's AP per video")
    ax.set_title(f"Per-video AP ({len(common)} videos)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def render_plots(metrics: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, bytes]:
    curves = {"this run": metrics.get("pr_curve") or {}}
    if baseline is not None:
        curves["baseline"] = baseline.get("pr_curve") or {}
    plots = {"pr_curves": pr_overlay_png(curves), "slices": slice_bars_png(metrics)}
    if baseline is not None:
        plots["per_video"] = video_scatter_png(baseline, metrics)
    return plots


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def _interval(iv: Any) -> str:
    """``low – high``, or a dash alone where there is no interval."""
    if not isinstance(iv, Mapping) or iv.get("low") is None:
        return "–"
    return f"{_fmt(iv.get('low'))} – {_fmt(iv.get('high'))}"


def render_html(title: str, metrics: Mapping[str, Any], comparison: Mapping[str, Any] | None,
                gates: Mapping[str, Any], plots: Mapping[str, bytes]) -> str:
    """One page, no external resources: headline numbers, gates, missing videos, per-video rows, plots."""
    overall = metrics.get("overall") or {}
    head = overall.get("headline") or {}
    iv = overall.get("intervals") or {}
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td><td>{_interval(iv.get(k))}</td></tr>"
        for k, v in head.items())
    gate_rows = "".join(
        f"<tr><td>{html.escape(json.dumps(g.get('gate') or i, separators=(',', ':')))}</td>"
        f"<td>{html.escape(str(g.get('status', g.get('passed'))))}</td>"
        f"<td>{_fmt(g.get('value'))}</td><td>{html.escape(str(g.get('reason') or ''))}</td></tr>"
        for i, g in enumerate(gates.get("gates") or []))
    missing = "".join(f"<li>{html.escape(m['video_id'])}: {html.escape(str(m.get('error') or m.get('status')))}</li>"
                      for m in metrics.get("missing_videos") or [])
    videos = "".join(
        f"<tr><td>{html.escape(r['video_id'])}</td><td>{_fmt((r.get('coco') or {}).get('AP'))}</td>"
        f"<td>{_fmt((r.get('coco') or {}).get('AP50'))}</td>"
        f"<td>{_fmt((r.get('operating_point') or {}).get('precision'))}</td>"
        f"<td>{_fmt((r.get('operating_point') or {}).get('recall'))}</td></tr>"
        for r in metrics.get("per_video") or [])
    compared = ""
    if comparison and "metrics" in comparison:
        compared = "<h2>Against the baseline</h2><table><tr><th>metric</th><th>baseline</th><th>this run</th>" \
                   "<th>difference</th><th>interval</th><th>verdict</th></tr>" + "".join(
                       f"<tr><td>{html.escape(k)}</td><td>{_fmt(c.get('baseline'))}</td>"
                       f"<td>{_fmt(c.get('candidate'))}</td><td>{_fmt(c.get('difference'))}</td>"
                       f"<td>{_interval(c.get('interval'))}</td>"
                       f"<td>{html.escape(str(c.get('verdict')))}</td></tr>"
                       for k, c in comparison["metrics"].items()) + "</table>"
    elif comparison and comparison.get("error"):
        compared = f"<h2>Against the baseline</h2><p>{html.escape(comparison['error'])}</p>"
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, data in plots.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Gate status: <strong>{html.escape(str(gates.get('gate_status')))}</strong>;
videos: {_fmt((metrics.get('counts') or {}).get('videos'))}; missing: {len(metrics.get('missing_videos') or [])}</p>
<h2>Overall</h2><table><tr><th>metric</th><th>value</th><th>95% interval</th></tr>{rows}</table>
<h2>Gates</h2><table><tr><th>gate</th><th>status</th><th>value</th><th>reason</th></tr>{gate_rows}</table>
{compared}
<h2>Missing videos</h2><ul>{missing or '<li>none</li>'}</ul>
<h2>Per video</h2><table><tr><th>video</th><th>AP</th><th>AP50</th><th>precision</th><th>recall</th></tr>
{videos}</table>
<h2>Plots</h2>{images}
</body></html>
"""
