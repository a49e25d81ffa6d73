"""Validation runs: one model against a whole test set of videos, aggregated from per-video matches.

Each video's evaluation job calls ``video_matches`` beside ``evaluate_session`` on the same
inputs and stores ``VideoMatches.to_bytes()`` (an npz file, no pickle). The run's aggregation
then reads them back one at a time and never holds a detection's box again::

    vm = video_matches(gt, dt, class_names, frames, timeline.timestamps, score_threshold,
                       iou_threshold, tracking=with_tracking, video_id=str(video.id))
    path.write_bytes(vm.to_bytes())
    ...
    result = aggregate(lambda: (VideoMatches.from_bytes(p.read_bytes()) for p in paths),
                       {"<video id>": {"daylight": "night", "camera": "front"}, ...},
                       resamples=1000, seed=0)
    diff = compare_runs(baseline_videos, candidate_videos, video_attributes)
    errors = validate_gates(gates, class_names, slice_keys(video_attributes), has_baseline=True)
    status = evaluate_gates(gates, result, diff)            # evaluation.gates

``videos`` may be a sequence of ``VideoMatches`` or a callable returning a fresh iterable of
them (the form a job uses: it loads one file at a time). The callable is iterated once for the
per-video numbers and once per score window of ``window`` detections (default 400,000) for the
exact COCO part, so memory holds one window, not every detection of the run.

What ``aggregate`` returns (JSON-safe, undefined numbers are None, COCO cells keep -1):

- ``parameters``: thresholds, height buckets, resamples, seed, confidence, minimums.
- ``overall``: a *scope* over every video (below).
- ``per_video``: one row per video in input order, each equal to ``evaluate_session`` of that
  video alone (``coco``, ``operating_point`` counts and ratios, ``temporal`` overall,
  ``tracking`` overall).
- ``slices``: ``{key: {value: scope}}`` for every per-video attribute key given, plus
  ``object_height`` (ground-truth / detection box height buckets, e.g. ``"<50"``, ``"50-100"``:
  COCO area-range semantics on height: ground truth of other heights and unmatched detections
  of other heights are ignored). A slice's ``coco`` has AP, AP50, AP75 and AR100 (the whole
  set has all 12). Where every video's ground truth carries visibility, ``visibility`` slices
  (``<0.25`` ... ``>=0.75``) give recall and latency only (a detection has no visibility, so
  there is no precision, F1 or AP there). A slice below ``min_videos`` videos or ``min_objects``
  ground-truth boxes is ``{"insufficient": true, "reason": ..., "counts": ...}``.

A scope is ``{"counts", "coco", "operating_point", "temporal", "tracking", "hota", "headline",
"intervals", "per_class"}``: ``counts`` says what its numbers rest on (videos, frames,
ground-truth boxes, objects, detections); ``coco`` equals pycocotools run on the concatenated
set (images of all videos in one dataset); ``operating_point`` is precision/recall/F1 at the
score and IoU thresholds; ``temporal`` is per-object detection latency (median, p90 over every
object of the scope); ``tracking`` is motmetrics' OVERALL row (summed counts); ``hota`` is
TrackEval's COMBINED row when every video carries HOTA sufficient statistics (``video_matches``
computes them with ``tracking``; a caller with its own, e.g. after a benchmark's preprocessing,
passes ``hota=``), else None.
``headline`` has the numbers gates and comparisons use: ``ap``, ``ap50``, ``precision``,
``recall``, ``f1``, ``mota``, ``idf1``, ``hota``, ``latency_median``, ``latency_p90``;
``intervals`` has for each a bootstrap interval over videos ``{"low", "high"}`` or None.
``per_class`` has the same per class name (a class below ``min_objects`` in a slice says
insufficient). The concatenated set orders its images by video id, then frame: that order
decides how pycocotools breaks score ties across videos, and makes the result independent of
the order videos are given in.

``compare_runs(baseline, candidate, video_attributes)`` returns ``{"videos", "resamples",
"seed", "confidence", "metrics": {metric: row}, "per_class": {name: {metric: row}}, "slices":
{key: {value: {"metrics", "per_class"}}}, "per_video": [{"video_id", "differences"}]}`` with a
row ``{"baseline", "candidate", "difference" (candidate - baseline), "interval", "verdict",
"higher_is_better"}``; ``per_video`` is sorted by the size of the AP difference.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from . import bootstrap as bs
from .boxes import Boxes, at_threshold
from .coco import CocoParams, prepare, summarize
from .hota import hota_statistics
from .matching import greedy_match
from .temporal import object_runs
from .tracking import evaluate_tracking

HEIGHT_EDGES: tuple[float, ...] = (50.0, 100.0, 200.0)
N_COCO_AREAS = 4
MAX_DET = 100
TRACK_KEYS = ("num_matches", "num_switches", "num_fragmentations", "num_misses", "num_false_positives",
              "num_objects", "num_predictions", "num_unique_objects", "mostly_tracked", "partially_tracked",
              "mostly_lost", "idtp", "idfp", "idfn")
#: headline metric -> higher is better
HEADLINE: dict[str, bool] = {"ap": True, "ap50": True, "precision": True, "recall": True, "f1": True, "mota": True,
                             "idf1": True, "hota": True, "latency_median": False, "latency_p90": False}
HEIGHT_SLICE = "object_height"
VISIBILITY_EDGES: tuple[float, ...] = (0.25, 0.5, 0.75)
VISIBILITY_SLICE = "visibility"


def height_labels(edges: Sequence[float]) -> list[str]:
    """Names of the height buckets: ``<50``, ``50-100``, ..., ``>=200``."""
    e = [f"{v:g}" for v in edges]
    return [f"<{e[0]}", *(f"{a}-{b}" for a, b in zip(e[:-1], e[1:], strict=True)), f">={e[-1]}"]


def _bucket(h: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=np.float64), h, side="right")


# ------------------------------------------------------------------------------ per video


@dataclass
class VideoMatches:
    """What aggregation needs of one video; small (no boxes), stored with ``to_bytes``.

    COCO part: one row per detection kept by COCOeval (the 100 best per frame and class):
    ``det_tp``/``det_ig`` (N, A) bit ``t`` set when the detection is a true positive / ignored
    at COCO IoU threshold ``t`` in area setting ``a`` (COCO's all/small/medium/large, then one
    per height bucket); ``gt_count`` (C, A) non-ignored ground truth. Operating point:
    ``op_tp``/``op_fp``/``op_npos`` (C, 1 + H) at the score and IoU thresholds, column 0 all
    sizes, then per height bucket. Temporal: one row per ground-truth object. Tracking:
    per-class counts ``trk_counts`` (C, len(TRACK_KEYS)) and ``trk_dist`` (summed 1 - IoU of
    matched pairs); ``hota`` (C, 5, 19) TrackEval sufficient statistics per alpha
    (``evaluation.hota.FIELDS``) when known.
    """

    video_id: str
    class_names: tuple[str, ...]
    iou_threshold: float
    score_threshold: float
    height_edges: tuple[float, ...]
    num_frames: int
    gt_digest: str
    tracking: bool
    det_score: np.ndarray
    det_class: np.ndarray
    det_image: np.ndarray
    det_rank: np.ndarray
    det_tp: np.ndarray
    det_ig: np.ndarray
    gt_count: np.ndarray
    op_tp: np.ndarray
    op_fp: np.ndarray
    op_npos: np.ndarray
    obj_class: np.ndarray
    obj_bucket: np.ndarray
    obj_latency: np.ndarray
    obj_share: np.ndarray
    obj_detected: np.ndarray
    trk_counts: np.ndarray
    trk_dist: np.ndarray
    trk_present: np.ndarray
    hota: np.ndarray | None = None
    visibility_edges: tuple[float, ...] = ()
    vis_tp: np.ndarray | None = None
    vis_npos: np.ndarray | None = None
    obj_vis: np.ndarray | None = None

    _META = ("video_id", "class_names", "iou_threshold", "score_threshold", "height_edges", "num_frames",
             "gt_digest", "tracking", "visibility_edges")

    def to_bytes(self) -> bytes:
        """npz (compressed): arrays as they are, the scalars as a JSON member; no pickle."""
        meta = {k: getattr(self, k) for k in self._META}
        meta["class_names"], meta["height_edges"] = list(self.class_names), list(self.height_edges)
        meta["visibility_edges"] = list(self.visibility_edges)
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in self._META and getattr(self, f.name) is not None}
        buf = io.BytesIO()
        np.savez_compressed(buf, _meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> VideoMatches:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["_meta"].tobytes().decode())
            arrays = {k: z[k] for k in z.files if k != "_meta"}
        meta["class_names"], meta["height_edges"] = tuple(meta["class_names"]), tuple(meta["height_edges"])
        meta["visibility_edges"] = tuple(meta.get("visibility_edges", ()))
        return cls(**meta, **arrays)


def _digest(gt: Boxes, frames: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (np.asarray(frames, dtype=np.int64), gt.frame_index, gt.xyxy, gt.class_id, gt.tracker_id, gt.ignore,
              gt.iscrowd, gt.area):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _bits(flags: np.ndarray) -> np.ndarray:
    """(A, T, N) booleans -> (N, A) uint16 with bit t set."""
    weights = (1 << np.arange(flags.shape[1])).astype(np.uint16)
    return np.tensordot(flags.transpose(2, 0, 1).astype(np.uint16), weights, axes=([2], [0])).astype(np.uint16)


def video_matches(
    gt: Boxes,
    dt: Boxes,
    class_names: Sequence[str],
    frames: np.ndarray,
    timestamps: Mapping[int, float] | np.ndarray | None,
    score_threshold: float,
    iou_threshold: float = 0.5,
    tracking: bool = False,
    *,
    video_id: str,
    height_edges: Sequence[float] = HEIGHT_EDGES,
    hota: np.ndarray | None = None,
    visibility: np.ndarray | None = None,
    visibility_edges: Sequence[float] = VISIBILITY_EDGES,
) -> VideoMatches:
    """Match one video once, the way ``evaluate_session`` does on the same inputs, and keep
    only what aggregation needs. With ``tracking``, HOTA sufficient statistics are computed per
    class (``evaluation.hota``) unless given as ``hota`` (C, 5, 19)."""
    names = tuple(class_names)
    n_cls = len(names)
    cats = np.arange(n_cls)
    edges = tuple(float(e) for e in height_edges)
    n_h = len(edges) + 1
    frames = np.asarray(frames, dtype=np.int64)
    image_ids = np.union1d(frames, dt.frame_index)
    p = CocoParams()

    # COCO: COCOeval's matching with its area ranges plus one setting per height bucket.
    prep = prepare(gt, dt, image_ids, cats, max_det=MAX_DET)
    g, d = prep.gt, prep.dt
    n_img = prep.image_ids.size
    areas = np.asarray(p.area_ranges, dtype=np.float64)
    hb = np.arange(n_h)[:, None]
    gb, db = _bucket(g.xyxy[:, 3] - g.xyxy[:, 1], edges), _bucket(d.xyxy[:, 3] - d.xyxy[:, 1], edges)
    d_area = (d.xyxy[:, 2] - d.xyxy[:, 0]) * (d.xyxy[:, 3] - d.xyxy[:, 1])
    gt_ig = np.vstack([g.ignore[None, :] | (g.area[None, :] < areas[:, :1]) | (g.area[None, :] > areas[:, 1:]),
                       g.ignore[None, :] | (gb[None, :] != hb)])
    dt_out = np.vstack([(d_area[None, :] < areas[:, :1]) | (d_area[None, :] > areas[:, 1:]), db[None, :] != hb])
    match = greedy_match(prep.gt_cat * n_img + prep.gt_img, g.xyxy, g.iscrowd, gt_ig,
                         prep.dt_cat * n_img + prep.dt_img, d.xyxy, p.iou_thresholds)
    matched = match >= 0
    a_idx = np.arange(gt_ig.shape[0])[:, None, None]
    pad = np.concatenate([gt_ig, np.zeros((gt_ig.shape[0], 1), dtype=bool)], axis=1)
    dig = np.where(matched, pad[a_idx, match], dt_out[:, None, :])
    gt_count = np.stack([np.bincount(prep.gt_cat[~gt_ig[a]], minlength=n_cls) for a in range(gt_ig.shape[0])], 1)

    # Operating point: every detection (no cap), one IoU threshold, all sizes then per bucket.
    prep0 = prepare(gt, dt, image_ids, cats, max_det=None)
    g0, d0 = prep0.gt, prep0.dt
    gb0, db0 = _bucket(g0.xyxy[:, 3] - g0.xyxy[:, 1], edges), _bucket(d0.xyxy[:, 3] - d0.xyxy[:, 1], edges)
    gt_ig0 = np.vstack([g0.ignore[None, :], g0.ignore[None, :] | (gb0[None, :] != hb)])
    dt_out0 = np.vstack([np.zeros((1, len(d0)), dtype=bool), db0[None, :] != hb])
    n_img0 = prep0.image_ids.size
    m0 = greedy_match(prep0.gt_cat * n_img0 + prep0.gt_img, g0.xyxy, g0.iscrowd, gt_ig0,
                      prep0.dt_cat * n_img0 + prep0.dt_img, d0.xyxy, np.array([iou_threshold]))[:, 0]
    pad0 = np.concatenate([gt_ig0, np.zeros((gt_ig0.shape[0], 1), dtype=bool)], axis=1)
    hit0 = m0 >= 0
    dig0 = np.where(hit0, pad0[np.arange(gt_ig0.shape[0])[:, None], m0], dt_out0)
    active = at_threshold(d0.confidence, score_threshold)
    op_tp = np.stack([np.bincount(prep0.dt_cat[hit0[a] & ~dig0[a] & active], minlength=n_cls)
                      for a in range(1 + n_h)], 1)
    op_fp = np.stack([np.bincount(prep0.dt_cat[~hit0[a] & ~dig0[a] & active], minlength=n_cls)
                      for a in range(1 + n_h)], 1)
    op_npos = np.stack([np.bincount(prep0.gt_cat[~gt_ig0[a]], minlength=n_cls) for a in range(1 + n_h)], 1)

    vis: dict[str, Any] = {}
    gt_obj = gt
    if visibility is not None:
        v_edges = tuple(float(e) for e in visibility_edges)
        values = np.asarray(visibility, dtype=np.float64).reshape(-1)
        if values.size != len(gt):
            raise ValueError(f"visibility has {values.size} values for {len(gt)} ground-truth boxes")
        # the area column carries visibility through the sorting and filtering of prepare
        gt_obj = Boxes(gt.frame_index, gt.xyxy, gt.class_id, gt.confidence, gt.tracker_id, gt.iscrowd, gt.ignore,
                       values)
        pv = prepare(gt_obj, dt, image_ids, cats, max_det=None)
        vb = np.arange(len(v_edges) + 1)[:, None]
        gig = pv.gt.ignore[None, :] | (_bucket(pv.gt.area, v_edges)[None, :] != vb)
        mv = greedy_match(pv.gt_cat * n_img0 + pv.gt_img, pv.gt.xyxy, pv.gt.iscrowd, gig,
                          pv.dt_cat * n_img0 + pv.dt_img, pv.dt.xyxy, np.array([iou_threshold]))[:, 0]
        padv = np.concatenate([gig, np.zeros((gig.shape[0], 1), dtype=bool)], axis=1)
        good = (mv >= 0) & ~padv[vb, mv] & at_threshold(pv.dt.confidence, score_threshold)[None, :]
        vis = {"visibility_edges": v_edges,
               "vis_tp": np.stack([np.bincount(pv.dt_cat[good[b]], minlength=n_cls) for b in range(vb.size)], 1),
               "vis_npos": np.stack([np.bincount(pv.gt_cat[~gig[b]], minlength=n_cls) for b in range(vb.size)], 1)}
    obj = _objects(gt_obj, dt, timestamps, score_threshold, iou_threshold, edges,
                   vis.get("visibility_edges"))

    trk_counts = np.zeros((n_cls, len(TRACK_KEYS)), dtype=np.int64)
    trk_dist = np.zeros(n_cls)
    trk_present = np.zeros(n_cls, dtype=bool)
    if tracking:
        kept = dt.select(at_threshold(dt.confidence, score_threshold))
        for c in range(n_cls):
            gc, hc = gt.select(gt.class_id == c), kept.select(kept.class_id == c)
            if len(gc) or len(hc):
                r = evaluate_tracking(gc, hc, max_distance=1.0 - iou_threshold)
                trk_counts[c] = [getattr(r, k) for k in TRACK_KEYS]
                trk_dist[c] = (r.motp or 0.0) * (r.num_matches + r.num_switches)
                trk_present[c] = True
        if hota is None:
            hota = np.stack([hota_statistics(gt.select(gt.class_id == c), kept.select(kept.class_id == c))
                             for c in range(n_cls)])

    return VideoMatches(
        video_id=str(video_id), class_names=names, iou_threshold=float(iou_threshold),
        score_threshold=float(score_threshold), height_edges=edges, num_frames=int(image_ids.size),
        gt_digest=_digest(gt, frames), tracking=bool(tracking),
        det_score=d.confidence.astype(np.float64), det_class=prep.dt_cat.astype(np.int16),
        det_image=d.frame_index.astype(np.int64), det_rank=prep.dt_rank.astype(np.uint8),
        det_tp=_bits(matched & ~dig), det_ig=_bits(dig), gt_count=gt_count.astype(np.int64),
        op_tp=op_tp.astype(np.int64), op_fp=op_fp.astype(np.int64), op_npos=op_npos.astype(np.int64), **obj,
        trk_counts=trk_counts, trk_dist=trk_dist, trk_present=trk_present,
        hota=None if hota is None else np.asarray(hota, dtype=np.float64), **vis)


def _objects(gt: Boxes, dt: Boxes, timestamps: Any, score_threshold: float, iou_threshold: float,
             edges: Sequence[float], vis_edges: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Per ground-truth object, as ``evaluate_temporal`` defines it, plus its height bucket
    (and, with ``vis_edges``, the visibility bucket of the ``area`` column) on its first frame."""
    frame, cls, _, hit, height, area, starts, ends = object_runs(gt, dt, score_threshold, iou_threshold)
    out = {"obj_class": [], "obj_bucket": [], "obj_latency": [], "obj_share": [], "obj_detected": []}
    if frame.size:
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            f, h = frame[s:e], hit[s:e]
            first_hit = int(f[h][0]) if h.any() else None
            lat = np.nan
            if first_hit is not None and timestamps is not None:
                lat = float(timestamps[first_hit]) - float(timestamps[int(f[0])])
            out["obj_class"].append(int(cls[s]))
            out["obj_bucket"].append(int(_bucket(np.array([height[s]]), edges)[0]))
            out["obj_latency"].append(lat)
            out["obj_share"].append(np.unique(f[h]).size / np.unique(f).size)
            out["obj_detected"].append(first_hit is not None)
    res = {"obj_class": np.asarray(out["obj_class"], dtype=np.int64),
           "obj_bucket": np.asarray(out["obj_bucket"], dtype=np.int64),
           "obj_latency": np.asarray(out["obj_latency"], dtype=np.float64),
           "obj_share": np.asarray(out["obj_share"], dtype=np.float64),
           "obj_detected": np.asarray(out["obj_detected"], dtype=bool)}
    if vis_edges is not None:
        res["obj_vis"] = _bucket(area[starts], vis_edges).astype(np.int64) if frame.size else np.zeros(0, np.int64)
    return res


# ------------------------------------------------------------------------------ COCO from matches

_PARAMS = CocoParams()
_T = _PARAMS.iou_thresholds.size
_SHIFTS = np.arange(_T, dtype=np.uint16)


def _unbits(v: np.ndarray) -> np.ndarray:
    """(n,) uint16 -> (T, n) booleans."""
    return ((v[None, :] >> _SHIFTS[:, None]) & 1).astype(bool)


def _cells(tp16: np.ndarray, ig16: np.ndarray, npig: int) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one class, area and max-dets over rows already in its order."""
    rthr = _PARAMS.recall_thresholds
    if npig == 0:
        return -np.ones((_T, rthr.size)), -np.ones(_T)
    keep = ig16 != (1 << _T) - 1  # a row ignored at every threshold changes no point of the curve
    tps, ig = _unbits(tp16[keep]), _unbits(ig16[keep])
    nd = tps.shape[1]
    if nd == 0:
        return np.zeros((_T, rthr.size)), np.zeros(_T)
    tp = np.cumsum(tps, axis=1).astype(float)
    fp = np.cumsum(~tps & ~ig, axis=1).astype(float)
    rc = tp / npig
    pr = tp / (fp + tp + bs.EPS)
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    prec = np.empty((_T, rthr.size))
    for t in range(_T):
        inds = np.searchsorted(rc[t], rthr, side="left")
        ok = inds < nd
        prec[t] = np.where(ok, pr[t, np.where(ok, inds, 0)], 0.0)
    return prec, rc[:, -1].copy()


@dataclass
class _ClassRows:
    """One class's detections of a set of videos in COCOeval's accumulate order."""

    score: np.ndarray
    vpos: np.ndarray
    rank: np.ndarray
    tp: np.ndarray
    ig: np.ndarray


def _class_rows(score: np.ndarray, vpos: np.ndarray, image: np.ndarray, rank: np.ndarray, tp: np.ndarray,
                ig: np.ndarray, vorder: np.ndarray | None = None) -> _ClassRows:
    """pycocotools sorts by -score with mergesort over the images in id order, each image's
    detections in rank order; the images of the concatenated set are ordered by video id
    (``vorder``: the place of each video in that order), then frame."""
    order = np.lexsort((rank, image, vpos if vorder is None else vorder[vpos], -score))
    return _ClassRows(score[order], vpos[order], rank[order], tp[order], ig[order])


def _coco_tables(rows: Sequence[_ClassRows], npig: np.ndarray, settings: Sequence[int],
                 max_dets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """precision (T, R, C, len(settings), M) and recall (T, C, S, M) as COCOeval has them."""
    n_c = len(rows)
    prec = -np.ones((_T, _PARAMS.recall_thresholds.size, n_c, len(settings), len(max_dets)))
    rec = -np.ones((_T, n_c, len(settings), len(max_dets)))
    for k, r in enumerate(rows):
        done: dict[int, int] = {}  # rows kept -> max-dets index already computed with them
        for mi in sorted(range(len(max_dets)), key=lambda i: -max_dets[i]):
            sub = r.rank < max_dets[mi]
            kept = int(sub.sum())
            if kept in done:  # the smaller cap removes nothing: the same rows, the same cells
                prec[:, :, k, :, mi], rec[:, k, :, mi] = prec[:, :, k, :, done[kept]], rec[:, k, :, done[kept]]
                continue
            done[kept] = mi
            tp, ig = (r.tp[sub], r.ig[sub]) if kept < sub.size else (r.tp, r.ig)
            for si, a in enumerate(settings):
                prec[:, :, k, si, mi], rec[:, k, si, mi] = _cells(tp[:, a], ig[:, a], int(npig[k, a]))
    return prec, rec


def _coco_stats(prec: np.ndarray, rec: np.ndarray) -> dict[str, float]:
    return summarize(prec, rec, _PARAMS).to_dict()


def _slice_stats(prec: np.ndarray, rec: np.ndarray) -> dict[str, float]:
    """AP, AP50, AP75 and AR100 of a slice's one area setting (treated as COCO's 'all' area)."""
    full = summarize(np.repeat(prec, 4, axis=3), np.repeat(rec, 4, axis=2), _PARAMS).to_dict()
    return {k: full[k] for k in ("AP", "AP50", "AP75", "AR100")}


# ------------------------------------------------------------------------------ ratios


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else float(a) / float(b)


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _op_dict(tp: int, fp: int, npos: int) -> dict[str, Any]:
    p, r = _ratio(tp, tp + fp), _ratio(tp, npos)
    return {"tp": int(tp), "fp": int(fp), "fn": int(npos - tp), "precision": p, "recall": r, "f1": _f1(p, r)}


def _op_arrays(tp: np.ndarray, fp: np.ndarray, npos: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        r = np.where(npos > 0, tp / npos, np.nan)
        f = np.where(p + r > 0, 2 * p * r / (p + r), np.where(np.isnan(p + r), np.nan, 0.0))
    return {"precision": p, "recall": r, "f1": f}


def _tracking_dict(counts: np.ndarray, dist: float) -> dict[str, Any]:
    """motmetrics' OVERALL row from summed counts (as evaluation.session does over classes)."""
    tot = {k: int(v) for k, v in zip(TRACK_KEYS, counts.tolist(), strict=True)}
    idtp, idfp, idfn = tot["idtp"], tot["idfp"], tot["idfn"]
    n_obj = tot["num_objects"]
    return {"mota": None if n_obj == 0 else
            1.0 - (tot["num_misses"] + tot["num_false_positives"] + tot["num_switches"]) / n_obj,
            "motp": _ratio(dist, tot["num_matches"] + tot["num_switches"]),
            "idf1": _ratio(2 * idtp, 2 * idtp + idfp + idfn), "idp": _ratio(idtp, idtp + idfp),
            "idr": _ratio(idtp, idtp + idfn), **tot}


def _track_arrays(c: np.ndarray) -> dict[str, np.ndarray]:
    """(..., K) summed counts -> MOTA and IDF1 arrays (NaN where undefined)."""
    k = {name: c[..., i] for i, name in enumerate(TRACK_KEYS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        mota = np.where(k["num_objects"] > 0, 1.0 - (k["num_misses"] + k["num_false_positives"] + k["num_switches"])
                        / k["num_objects"], np.nan)
        den = 2 * k["idtp"] + k["idfp"] + k["idfn"]
        idf1 = np.where(den > 0, 2 * k["idtp"] / den, np.nan)
    return {"mota": mota, "idf1": idf1}


def combine_hota(stats: np.ndarray) -> dict[str, Any] | None:
    """TrackEval's COMBINED row from summed sufficient statistics (5, 19) (FIELDS of
    ``evaluation.hota``): DetA = TP / (TP + FN + FP), AssA and LocA TP-weighted means, HOTA the
    mean over alpha of sqrt(DetA * AssA). Classes combine the same way (detection-averaged).
    None when there is nothing to judge (no ground truth and no detection)."""
    arr = _hota_arrays(stats[None])
    if not np.isfinite(arr["hota"][0]):
        return None
    return {k: float(v[0]) for k, v in arr.items()}


def _hota_arrays(stats: np.ndarray) -> dict[str, np.ndarray]:
    tp, fn, fp, assa_tp, loca_tp = (stats[..., i, :] for i in range(5))
    det_a = tp / np.maximum(1, tp + fn + fp)
    ass_a = assa_tp / np.maximum(1, tp)
    loc_a = np.maximum(1e-10, loca_tp) / np.maximum(1e-10, tp)
    hota = np.sqrt(det_a * ass_a)
    empty = (tp + fn + fp).sum(axis=-1) == 0
    return {"hota": np.where(empty, np.nan, hota.mean(-1)), "deta": np.where(empty, np.nan, det_a.mean(-1)),
            "assa": np.where(empty, np.nan, ass_a.mean(-1)), "loca": np.where(empty, np.nan, loc_a.mean(-1))}


def _ap(v: float) -> float | None:
    return None if v == -1 else float(v)


def _pct(values: np.ndarray, q: float) -> float | None:
    return None if values.size == 0 else float(np.percentile(values, q))


# ------------------------------------------------------------------------------ a run in memory


class RunError(ValueError):
    """Videos that cannot be aggregated or compared together."""


@dataclass
class _Scope:
    key: str | None  # None: every video
    value: str | None
    videos: np.ndarray  # positions in the run
    bucket: int | None = None  # height bucket (COCO setting 4 + bucket, operating point column 1 + bucket)
    vis: int | None = None  # visibility bucket (recall and latency only)

    @property
    def name(self) -> str:
        return "overall" if self.key is None else f"{self.key}={self.value}"


class _Stream:
    """COCOeval.accumulate for one (scope, class, area setting, max dets), fed window by window
    in descending score order: exact, without holding the whole curve.

    Recall thresholds are found as the cumulative true positives pass them; the interpolated
    precision there is the larger of the best precision later in its window and the best of
    every later window, resolved at the end.
    """

    def __init__(self, npig: int):
        self.npig = int(npig)
        n_r = _PARAMS.recall_thresholds.size
        self.tp = np.zeros(_T, dtype=np.int64)
        self.fp = np.zeros(_T, dtype=np.int64)
        self.nd = 0
        self.window = np.full((_T, n_r), -1, dtype=np.int64)
        self.within = np.zeros((_T, n_r))
        self.best: list[np.ndarray] = []  # per window: best precision in it, per threshold

    def feed(self, tps: np.ndarray, fps: np.ndarray) -> None:
        """(T, n) true / false positive flags of the window's rows, in order."""
        w = len(self.best)
        n = tps.shape[1]
        if self.npig == 0 or n == 0:
            self.best.append(np.full(_T, -np.inf))
            return
        tp = np.cumsum(tps, axis=1, dtype=np.int32) + self.tp[:, None].astype(float)
        fp = np.cumsum(fps, axis=1, dtype=np.int32) + self.fp[:, None].astype(float)
        rc = tp / self.npig
        pr = tp / (fp + tp + bs.EPS)
        env = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        for t in range(_T):
            inds = np.searchsorted(rc[t], _PARAMS.recall_thresholds, side="left")
            new = (inds < n) & (self.window[t] < 0)
            self.window[t, new] = w
            self.within[t, new] = env[t, inds[new]]
        self.best.append(env[:, 0].copy())
        self.tp += tps.sum(axis=1)
        self.fp += fps.sum(axis=1)
        self.nd += n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        n_r = _PARAMS.recall_thresholds.size
        if self.npig == 0:
            return -np.ones((_T, n_r)), -np.ones(_T)
        if self.nd == 0:
            return np.zeros((_T, n_r)), np.zeros(_T)
        best = np.vstack([*self.best, np.full(_T, -np.inf)])  # (W + 1, T)
        later = np.maximum.accumulate(best[::-1], axis=0)[::-1]  # best of windows w.. end
        found = self.window >= 0
        nxt = later[np.where(found, self.window + 1, len(self.best)), np.arange(_T)[:, None]]
        prec = np.where(found, np.maximum(self.within, nxt), 0.0)
        return prec, self.tp / self.npig


class _Run:
    """Per-video statistics of a run, stacked; detections are read window by window of score
    (``window`` rows at a time), so memory does not grow with the number of detections."""

    def __init__(self, videos: Iterable[VideoMatches] | Callable[[], Iterable[VideoMatches]],
                 attributes: Mapping[str, Mapping[str, Any]] | None = None, bins: int = 64,
                 window: int = 400_000):
        self._source = videos if callable(videos) else (lambda items=list(videos): items)
        first: VideoMatches | None = None
        self.ids: list[str] = []
        self.frames: list[int] = []
        self.digests: list[str] = []
        small: dict[str, list[np.ndarray]] = {k: [] for k in ("gt_count", "op_tp", "op_fp", "op_npos", "trk_counts",
                                                              "trk_dist", "hota")}
        self.tracking: list[bool] = []
        objs: dict[str, list[np.ndarray]] = {k: [] for k in ("obj_class", "obj_bucket", "obj_latency", "obj_v",
                                                             "obj_vis")}
        vis: list[tuple[tuple[float, ...], np.ndarray | None, np.ndarray | None]] = []
        self.per_video: list[dict[str, Any]] = []
        sketch: list[list[np.ndarray]] = []
        for v, vm in enumerate(self._source()):
            if first is None:
                first = vm
                sketch = [[] for _ in vm.class_names]
            elif (vm.class_names, vm.iou_threshold, vm.score_threshold, vm.height_edges) != (
                    first.class_names, first.iou_threshold, first.score_threshold, first.height_edges):
                raise RunError(f"video {vm.video_id} was matched with other classes or thresholds than "
                               f"video {first.video_id}")
            if vm.video_id in self.ids:
                raise RunError(f"video {vm.video_id} appears twice")
            self.ids.append(vm.video_id)
            self.frames.append(vm.num_frames)
            self.digests.append(vm.gt_digest)
            self.tracking.append(vm.tracking)
            for k in small:
                if k != "hota":
                    small[k].append(getattr(vm, k))
            small["hota"].append(vm.hota)
            objs["obj_class"].append(vm.obj_class)
            objs["obj_bucket"].append(vm.obj_bucket)
            objs["obj_latency"].append(vm.obj_latency)
            objs["obj_v"].append(np.full(vm.obj_class.size, v, dtype=np.int64))
            objs["obj_vis"].append(vm.obj_vis if vm.obj_vis is not None else np.full(vm.obj_class.size, -1))
            vis.append((vm.visibility_edges, vm.vis_tp, vm.vis_npos))
            for c in range(len(sketch)):
                sketch[c].append(_sketch(vm.det_score[vm.det_class == c]))
            self.per_video.append(_video_row(vm))
        if first is None:
            raise RunError("a run needs at least one video")
        self.names = list(first.class_names)
        self.edges = first.height_edges
        self.score_threshold, self.iou_threshold = first.score_threshold, first.iou_threshold
        self.n_h = len(self.edges) + 1
        self.n_v = len(self.ids)
        self.gt_count = np.stack(small["gt_count"])  # (V, C, A)
        self.op = np.stack([np.stack(small[k]) for k in ("op_tp", "op_fp", "op_npos")])  # (3, V, C, 1+H)
        self.trk = np.stack(small["trk_counts"])
        self.trk_dist = np.stack(small["trk_dist"])
        self.hota = np.stack(small["hota"]) if all(h is not None for h in small["hota"]) else None
        self.obj = {k: np.concatenate(v) for k, v in objs.items()}
        # visibility slices only when every video's ground truth carries it, in the same buckets
        self.vis_edges: tuple[float, ...] | None = None
        if all(t is not None and e == vis[0][0] for e, t, _ in vis) and vis[0][0]:
            self.vis_edges = vis[0][0]
            self.vis_tp, self.vis_npos = np.stack([t for _, t, _ in vis]), np.stack([n for _, _, n in vis])
        self.vorder = np.argsort(np.argsort(np.asarray(self.ids), kind="stable"), kind="stable")
        self.scope_list = self.scopes(attributes or {})
        # score cells of the bootstrap (per class) and score windows of the exact pass (all classes)
        self.grids = []
        for c in range(len(self.names)):
            vals, wts = (np.concatenate(x) for x in zip(*sketch[c], strict=True)) if sketch[c] else (np.zeros(0),) * 2
            self.grids.append(_weighted_edges(vals, wts, bins))
        everything = [np.concatenate(x) for x in zip(*(s for per in sketch for s in per), strict=True)]
        total = int(everything[1].sum())
        self.windows = _weighted_edges(everything[0], everything[1], max(1, -(-total // window)))[::-1]
        self.bins = bins
        self._exact_pass()

    def _exact_pass(self) -> None:
        """Stream every window of score once through every scope's accumulators; the bootstrap
        histograms are filled on the first."""
        settings = [0, *range(N_COCO_AREAS, N_COCO_AREAS + self.n_h)]
        self.hist = np.zeros((self.n_v, len(self.names), len(settings), _T, self.bins, 2), dtype=np.float32)
        # the whole set gets COCOeval's 12 numbers; a slice gets AP, AP50, AP75 and AR100 of its
        # area setting (all sizes, or its height bucket) at 100 detections per frame
        last = len(_PARAMS.max_dets) - 1
        streams: dict[tuple[str, int, int, int], _Stream | None] = {}
        plan: list[tuple[_Scope, list[int], list[int]]] = []
        for sc in self.scope_list:
            if sc.vis is not None:
                continue  # no COCO where detections carry no visibility
            npig = self.gt_count[sc.videos].sum(axis=0)
            if sc.key is None:
                areas, dets = list(range(N_COCO_AREAS)), list(range(len(_PARAMS.max_dets)))
            else:
                areas, dets = [0 if sc.bucket is None else N_COCO_AREAS + sc.bucket], [last]
            plan.append((sc, areas, dets))
            for c in range(len(self.names)):
                for a in areas:
                    for mi in dets:
                        # None: the same rows as at the largest max-dets so far (frames rarely have more
                        # detections of one class than the smaller caps), so the same numbers
                        streams[sc.name, c, a, mi] = None if 0 < mi < last else _Stream(int(npig[c, a]))
        members = np.zeros((len(plan), self.n_v), dtype=bool)
        for i, (sc, _, _) in enumerate(plan):
            members[i, sc.videos] = True
        bounds = [np.inf, *self.windows.tolist(), -np.inf]
        for w in range(len(bounds) - 1):
            hi, lo = bounds[w], bounds[w + 1]
            parts: dict[str, list[np.ndarray]] = {k: [] for k in ("score", "cls", "vpos", "image", "rank", "tp", "ig")}
            for v, vm in enumerate(self._source()):
                if w == 0:
                    self._histogram(v, vm, settings)
                sel = (vm.det_score < hi) & (vm.det_score >= lo)
                for k, a in (("score", vm.det_score), ("cls", vm.det_class), ("image", vm.det_image),
                             ("rank", vm.det_rank), ("tp", vm.det_tp), ("ig", vm.det_ig)):
                    parts[k].append(a[sel])
                parts["vpos"].append(np.full(int(sel.sum()), v, dtype=np.int32))
            d = {k: np.concatenate(x) for k, x in parts.items()}
            del parts
            for c in range(len(self.names)):
                mine = d["cls"] == c
                rows = _class_rows(*(d[k][mine] for k in ("score", "vpos", "image", "rank", "tp", "ig")),
                                   vorder=self.vorder)
                in_scope = members[:, rows.vpos]
                for a in sorted({a for _, areas, _ in plan for a in areas}):
                    tp_a, ig_a = _unbits(rows.tp[:, a]), _unbits(rows.ig[:, a])
                    fp_a = ~tp_a & ~ig_a
                    for i, (sc, areas, dets) in enumerate(plan):
                        if a not in areas:
                            continue
                        full = in_scope[i] & (rows.rank < _PARAMS.max_dets[last])
                        n_full = int(full.sum())
                        for mi in sorted(dets):
                            key = (sc.name, c, a, mi)
                            sub = full if mi == last else in_scope[i] & (rows.rank < _PARAMS.max_dets[mi])
                            if streams[key] is None:
                                if int(sub.sum()) == n_full:
                                    continue  # still the same rows as the largest cap
                                streams[key] = copy.deepcopy(streams[sc.name, c, a, last])
                            if int(sub.sum()) == sub.size:
                                streams[key].feed(tp_a, fp_a)
                            else:
                                streams[key].feed(tp_a[:, sub], fp_a[:, sub])
            del d
        self.tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        n_r = _PARAMS.recall_thresholds.size
        for sc, areas, dets in plan:
            prec = -np.ones((_T, n_r, len(self.names), len(areas), len(_PARAMS.max_dets)))
            rec = -np.ones((_T, len(self.names), len(areas), len(_PARAMS.max_dets)))
            for c in range(len(self.names)):
                for ai, a in enumerate(areas):
                    for mi in dets:
                        stream = streams[sc.name, c, a, mi] or streams[sc.name, c, a, last]
                        prec[:, :, c, ai, mi], rec[:, c, ai, mi] = stream.result()
            self.tables[sc.name] = (prec, rec)

    # --- bootstrap histograms: (V, C, 1 + H, T, G, 2) true/false positives per score cell
    def _histogram(self, v: int, vm: VideoMatches, settings: Sequence[int]) -> None:
        offsets = (np.arange(_T) * self.bins)[:, None]
        for c, edges in enumerate(self.grids):
            mine = vm.det_class == c
            cell = bs.cell_index(edges, vm.det_score[mine])[None, :] + offsets
            for si, a in enumerate(settings):
                tp, ig = _unbits(vm.det_tp[mine, a]), _unbits(vm.det_ig[mine, a])
                size = _T * self.bins
                self.hist[v, c, si, :, :, 0] = np.bincount(cell[tp], minlength=size).reshape(_T, self.bins)
                self.hist[v, c, si, :, :, 1] = np.bincount(cell[~tp & ~ig], minlength=size).reshape(_T, self.bins)

    # --- scopes
    def scopes(self, attributes: Mapping[str, Mapping[str, Any]]) -> list[_Scope]:
        out = [_Scope(None, None, np.arange(self.n_v))]
        keys = sorted({k for a in attributes.values() for k in a})
        for key in keys:
            values: dict[str, list[int]] = {}
            for v, vid in enumerate(self.ids):
                val = attributes.get(vid, {}).get(key)
                if val is not None:
                    values.setdefault(str(val), []).append(v)
            for val in sorted(values):
                out.append(_Scope(key, val, np.asarray(values[val], dtype=np.int64)))
        for h, label in enumerate(height_labels(self.edges)):
            out.append(_Scope(HEIGHT_SLICE, label, np.arange(self.n_v), bucket=h))
        if self.vis_edges is not None:
            for b, label in enumerate(height_labels(self.vis_edges)):
                out.append(_Scope(VISIBILITY_SLICE, label, np.arange(self.n_v), vis=b))
        return out

    def _obj_mask(self, scope: _Scope, cls: int | None) -> np.ndarray:
        m = np.isin(self.obj["obj_v"], scope.videos)
        if scope.bucket is not None:
            m &= self.obj["obj_bucket"] == scope.bucket
        if scope.vis is not None:
            m &= self.obj["obj_vis"] == scope.vis
        if cls is not None:
            m &= self.obj["obj_class"] == cls
        return m

    def _tracked(self, scope: _Scope) -> bool:
        return scope.bucket is None and scope.vis is None and all(self.tracking[v] for v in scope.videos)

    # --- exact numbers of a scope
    def exact(self, scope: _Scope) -> dict[str, Any]:
        col = 0 if scope.bucket is None else 1 + scope.bucket
        coco: dict[str, float] | None = None
        coco_c: list[dict[str, float] | None] = [None] * len(self.names)
        if scope.vis is None:
            prec, rec = self.tables[scope.name]
            stats = _coco_stats if scope.key is None else _slice_stats
            coco = stats(prec, rec)
            coco_c = [stats(prec[:, :, k:k + 1], rec[:, k:k + 1]) for k in range(len(self.names))]
            tp, fp, npos = (self.op[i][scope.videos][:, :, col].sum(axis=0) for i in range(3))
        else:  # recall only: a detection has no visibility to be a false positive of
            tp = self.vis_tp[scope.videos][:, :, scope.vis].sum(axis=0)
            npos = self.vis_npos[scope.videos][:, :, scope.vis].sum(axis=0)
            fp = None
        tracked = self._tracked(scope)
        trk = self.trk[scope.videos].sum(axis=0)
        dist = self.trk_dist[scope.videos].sum(axis=0)
        hota = self.hota[scope.videos].sum(axis=0) if self.hota is not None and tracked else None

        def part(c: int | None) -> dict[str, Any]:
            sel = slice(None) if c is None else slice(c, c + 1)
            om = self._obj_mask(scope, c)
            lat = np.sort(self.obj["obj_latency"][om])
            lat = lat[np.isfinite(lat)]
            if fp is None:
                n_tp, n_pos = int(tp[sel].sum()), int(npos[sel].sum())
                op = {"tp": n_tp, "fp": None, "fn": n_pos - n_tp, "precision": None, "recall": _ratio(n_tp, n_pos),
                      "f1": None}
            else:
                op = _op_dict(int(tp[sel].sum()), int(fp[sel].sum()), int(npos[sel].sum()))
            temporal = {"objects": int(om.sum()), "median_latency_seconds": _pct(lat, 50),
                        "p90_latency_seconds": _pct(lat, 90), "objects_with_latency": int(lat.size)}
            track = _tracking_dict(trk[sel].sum(axis=0), float(dist[sel].sum())) if tracked else None
            h = combine_hota(hota[sel].sum(axis=0)) if hota is not None else None
            cc = coco if c is None else coco_c[c]
            headline = {"ap": _ap(cc["AP"]) if cc else None, "ap50": _ap(cc["AP50"]) if cc else None,
                        "precision": op["precision"],
                        "recall": op["recall"], "f1": op["f1"], "mota": track["mota"] if track else None,
                        "idf1": track["idf1"] if track else None, "hota": h["hota"] if h else None,
                        "latency_median": temporal["median_latency_seconds"],
                        "latency_p90": temporal["p90_latency_seconds"]}
            counts = {"videos": int(scope.videos.size), "frames": int(sum(self.frames[v] for v in scope.videos)),
                      "ground_truth_boxes": int(npos[sel].sum()), "objects": int(om.sum()),
                      "detections": int(tp[sel].sum() + (0 if fp is None else fp[sel].sum()))}
            return {"counts": counts, "coco": cc, "operating_point": op, "temporal": temporal, "tracking": track,
                    "hota": h, "headline": headline}

        out = part(None)
        out["per_class"] = {name: part(c) for c, name in enumerate(self.names)}
        return out

    # --- resampled headline numbers: metric -> (1 + C, R) (row 0 all classes, then per class)
    def samples(self, scope: _Scope, w: np.ndarray, chunk: int = 128) -> dict[str, np.ndarray]:
        n_c, r_n = len(self.names), w.shape[0]
        vids = scope.videos
        col = 0 if scope.bucket is None else 1 + scope.bucket
        out: dict[str, np.ndarray] = {}
        if scope.vis is not None:
            tp, npos = ((w @ a[vids][:, :, scope.vis].astype(np.float64)).T for a in (self.vis_tp, self.vis_npos))
            with np.errstate(divide="ignore", invalid="ignore"):
                t, n = np.vstack([tp.sum(0), tp]), np.vstack([npos.sum(0), npos])
                out["recall"] = np.where(n > 0, t / n, np.nan)
            self._latency_samples(scope, w, out)
            return out
        # COCO AP / AP50 from the score-cell histograms
        si = 0 if scope.bucket is None else 1 + scope.bucket
        a = 0 if scope.bucket is None else N_COCO_AREAS + scope.bucket
        hist = self.hist[vids, :, si].reshape(vids.size, -1)
        npig = self.gt_count[vids][:, :, a].astype(np.float64)
        counts = w.astype(np.float32) @ hist  # (R, C * T * G * 2): one product for every resample
        n = (w @ npig).astype(np.float32)  # (R, C)
        ap = np.full((n_c, _T, r_n), np.nan)
        for s in range(0, r_n, chunk):
            cc = counts[s:s + chunk].reshape(-1, n_c, _T, self.bins, 2)
            cell = bs.binned_ap(cc, np.broadcast_to(n[s:s + chunk, :, None], cc.shape[:3]), _PARAMS.recall_thresholds)
            ap[:, :, s:s + chunk] = cell.transpose(1, 2, 0)
        with np.errstate(invalid="ignore"):
            per_class_ap = ap.mean(axis=1)
            per_class_ap50 = ap[:, 0]
            out["ap"] = np.vstack([_nanmean0(per_class_ap), per_class_ap])
            out["ap50"] = np.vstack([_nanmean0(per_class_ap50), per_class_ap50])
        tp, fp, npos = ((w @ self.op[i][vids][:, :, col].astype(np.float64)).T for i in range(3))  # (C, R)
        for name, arr in _op_arrays(np.vstack([tp.sum(0), tp]), np.vstack([fp.sum(0), fp]),
                                    np.vstack([npos.sum(0), npos])).items():
            out[name] = arr
        if self._tracked(scope):
            trk = np.einsum("rv,vck->crk", w, self.trk[vids].astype(np.float64))
            for name, arr in _track_arrays(np.concatenate([trk.sum(0, keepdims=True), trk])).items():
                out[name] = arr
            if self.hota is not None:
                hs = np.einsum("rv,vcfa->crfa", w, self.hota[vids])
                out["hota"] = _hota_arrays(np.concatenate([hs.sum(0, keepdims=True), hs]))["hota"]
        self._latency_samples(scope, w, out)
        return out

    def _latency_samples(self, scope: _Scope, w: np.ndarray, out: dict[str, np.ndarray]) -> None:
        n_c, r_n, vids = len(self.names), w.shape[0], scope.videos
        col_of = np.full(self.n_v, -1)
        col_of[vids] = np.arange(vids.size)
        med, p90 = np.full((1 + n_c, r_n), np.nan), np.full((1 + n_c, r_n), np.nan)
        for i, c in enumerate([None, *range(n_c)]):
            om = self._obj_mask(scope, c) & np.isfinite(self.obj["obj_latency"])
            order = np.argsort(self.obj["obj_latency"][om], kind="stable")
            vals = self.obj["obj_latency"][om][order]
            grp = col_of[self.obj["obj_v"][om][order]]
            med[i], p90[i] = bs.weighted_percentiles(vals, grp, w, (50, 90))
        out["latency_median"], out["latency_p90"] = med, p90


def _sketch(scores: np.ndarray, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Every ``n / size``-th score of one video's class, each standing for that many scores."""
    if scores.size <= size:
        return scores.astype(np.float64), np.ones(scores.size)
    s = np.sort(scores)
    idx = np.linspace(0, s.size - 1, size).round().astype(np.int64)
    return s[idx], np.full(size, s.size / size)


def _weighted_edges(values: np.ndarray, weights: np.ndarray, parts: int) -> np.ndarray:
    """Ascending edges cutting the weighted values into about ``parts`` equal shares."""
    if values.size == 0 or parts <= 1:
        return np.zeros(0)
    order = np.argsort(values, kind="stable")
    cw = np.cumsum(weights[order])
    cuts = np.searchsorted(cw, cw[-1] * np.arange(1, parts) / parts, side="left")
    return np.unique(values[order][np.minimum(cuts, values.size - 1)])


def _nanmean0(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    return np.where(n > 0, np.where(ok, a, 0).sum(axis=0) / np.maximum(n, 1), np.nan)


def _video_row(vm: VideoMatches) -> dict[str, Any]:
    """One video's metrics from its matches alone: what ``evaluate_session`` gives for it."""
    rows = [_class_rows(*(a[vm.det_class == c] for a in (vm.det_score, np.zeros(vm.det_score.size, np.int32),
                                                           vm.det_image, vm.det_rank, vm.det_tp, vm.det_ig)))
            for c in range(len(vm.class_names))]
    prec, rec = _coco_tables(rows, vm.gt_count, range(N_COCO_AREAS), _PARAMS.max_dets)
    op = _op_dict(int(vm.op_tp[:, 0].sum()), int(vm.op_fp[:, 0].sum()), int(vm.op_npos[:, 0].sum()))
    lat = vm.obj_latency[np.isfinite(vm.obj_latency)]
    temporal = {"objects": int(vm.obj_class.size), "missed_objects": int((~vm.obj_detected).sum()),
                "median_latency_seconds": _pct(lat, 50), "p90_latency_seconds": _pct(lat, 90),
                "mean_detected_share": float(vm.obj_share.mean()) if vm.obj_share.size else None}
    track = None
    if vm.tracking:
        track = _tracking_dict(vm.trk_counts[vm.trk_present].sum(axis=0), float(vm.trk_dist[vm.trk_present].sum()))
    return {"video_id": vm.video_id, "counts": {"frames": vm.num_frames, "ground_truth_boxes":
                                                int(vm.op_npos[:, 0].sum()), "objects": int(vm.obj_class.size)},
            "coco": _coco_stats(prec, rec), "operating_point": op, "temporal": temporal, "tracking": track,
            "hota": combine_hota(vm.hota.sum(axis=0)) if vm.hota is not None else None}


# ------------------------------------------------------------------------------ aggregate / compare


def slice_keys(video_attributes: Mapping[str, Mapping[str, Any]], visibility: bool = False) -> dict[str, list[str]]:
    """Slice keys (and their values) that gates may name: the attribute keys, object height and,
    when the ground truth carries it, visibility."""
    keys: dict[str, set[str]] = {}
    for attrs in video_attributes.values():
        for k, v in attrs.items():
            keys.setdefault(k, set()).add(str(v))
    out = {k: sorted(v) for k, v in sorted(keys.items())}
    out[HEIGHT_SLICE] = height_labels(HEIGHT_EDGES)
    if visibility:
        out[VISIBILITY_SLICE] = height_labels(VISIBILITY_EDGES)
    return out


def _insufficient(counts: Mapping[str, int], min_videos: int, min_objects: int, height: bool) -> str | None:
    if not height and counts["videos"] < min_videos:
        return f"{counts['videos']} videos, fewer than {min_videos}"
    if counts["ground_truth_boxes"] < min_objects:
        return f"{counts['ground_truth_boxes']} ground-truth boxes, fewer than {min_objects}"
    return None


def _with_intervals(part: dict[str, Any], samples: dict[str, np.ndarray], full: dict[str, np.ndarray], row: int,
                    confidence: float) -> None:
    iv: dict[str, Any] = {}
    for metric in HEADLINE:
        value = part["headline"][metric]
        if value is None or metric not in samples:
            iv[metric] = None
            continue
        shift = value - float(full[metric][row, 0]) if metric in ("ap", "ap50") else 0.0
        iv[metric] = bs.interval(samples[metric][row], confidence, shift if np.isfinite(shift) else 0.0)
    part["intervals"] = iv


def aggregate(
    videos: Iterable[VideoMatches] | Callable[[], Iterable[VideoMatches]],
    video_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_videos: int = 3,
    min_objects: int = 30,
    bins: int = 64,
    window: int = 400_000,
) -> dict[str, Any]:
    """Every metric over the whole set, per class, per video and per slice, with bootstrap
    intervals over videos (see the module docstring for the shape)."""
    attrs = video_attributes or {}
    run = _Run(videos, attrs, bins=bins, window=window)
    out: dict[str, Any] = {
        "parameters": {"score_threshold": run.score_threshold, "iou_threshold": run.iou_threshold,
                       "classes": run.names, "height_buckets": height_labels(run.edges), "resamples": resamples,
                       "seed": seed, "confidence": confidence, "min_videos": min_videos,
                       "min_objects": min_objects, "score_cells": bins},
        "per_video": run.per_video, "slices": {},
    }
    for scope in run.scope_list:
        res = run.exact(scope)
        if scope.key is not None:
            why = _insufficient(res["counts"], min_videos, min_objects, scope.key in (HEIGHT_SLICE, VISIBILITY_SLICE))
            if why:
                out["slices"].setdefault(scope.key, {})[scope.value] = {"insufficient": True, "reason": why,
                                                                       "counts": res["counts"]}
                continue
        w = bs.resample_weights(scope.videos.size, resamples, seed, scope.name)
        samples = run.samples(scope, w)
        full = run.samples(scope, np.ones((1, scope.videos.size)))
        _with_intervals(res, samples, full, 0, confidence)
        for c, name in enumerate(run.names):
            part = res["per_class"][name]
            why = None if scope.key is None else _insufficient(part["counts"], 0, min_objects, True)
            if why:
                res["per_class"][name] = {"insufficient": True, "reason": why, "counts": part["counts"]}
            else:
                _with_intervals(part, samples, full, 1 + c, confidence)
        if scope.key is None:
            out["overall"] = res
            out["per_class"] = res["per_class"]
        else:
            out["slices"].setdefault(scope.key, {})[scope.value] = res
    out["counts"] = out["overall"]["counts"]
    return out


def _paired(va: float | None, vb: float | None, sa: np.ndarray | None, sb: np.ndarray | None, shift: float,
            higher: bool, confidence: float) -> dict[str, Any]:
    diff = None if va is None or vb is None else vb - va
    iv = None if diff is None or sa is None or sb is None else bs.interval(sb - sa, confidence, shift)
    verdict = "no detectable change"
    if iv is not None and (iv["low"] > 0 or iv["high"] < 0):
        verdict = "improved" if (iv["low"] > 0) == higher else "regressed"
    if diff is None:
        verdict = "undefined"
    return {"baseline": va, "candidate": vb, "difference": diff, "interval": iv, "verdict": verdict,
            "higher_is_better": higher}


def _table(pa: dict[str, Any], pb: dict[str, Any], row: int, sides: tuple[dict[str, np.ndarray], ...],
           confidence: float) -> dict[str, Any]:
    sma, smb, fa, fb = sides
    res = {}
    for metric, higher in HEADLINE.items():
        va, vb = pa["headline"][metric], pb["headline"][metric]
        shift = 0.0
        if metric in ("ap", "ap50") and va is not None and vb is not None:
            shift = (vb - float(fb[metric][row, 0])) - (va - float(fa[metric][row, 0]))
            shift = shift if np.isfinite(shift) else 0.0
        res[metric] = _paired(va, vb, sma[metric][row] if metric in sma else None,
                              smb[metric][row] if metric in smb else None, shift, higher, confidence)
    return res


def compare_runs(
    a: Iterable[VideoMatches] | Callable[[], Iterable[VideoMatches]],
    b: Iterable[VideoMatches] | Callable[[], Iterable[VideoMatches]],
    video_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    bins: int = 64,
    window: int = 400_000,
) -> dict[str, Any]:
    """Paired comparison of baseline ``a`` and candidate ``b`` on the same videos and ground truth.

    Differences are ``b - a``; each has a paired bootstrap interval (both runs use the same
    video draws) and a verdict: ``improved`` / ``regressed`` when the interval excludes 0,
    else ``no detectable change``. Raises ``RunError`` when the video sets, ground truth,
    classes or thresholds differ.
    """
    attrs = video_attributes or {}
    ra, rb = _Run(a, attrs, bins=bins, window=window), _Run(b, attrs, bins=bins, window=window)
    if sorted(ra.ids) != sorted(rb.ids):
        only_a, only_b = sorted(set(ra.ids) - set(rb.ids)), sorted(set(rb.ids) - set(ra.ids))
        raise RunError(f"the runs cover different videos (only in baseline: {only_a[:5]}, "
                       f"only in candidate: {only_b[:5]})")
    pos_b = {vid: i for i, vid in enumerate(rb.ids)}
    bad = [vid for i, vid in enumerate(ra.ids) if ra.digests[i] != rb.digests[pos_b[vid]]]
    if bad:
        raise RunError(f"the ground truth or evaluated frames differ for videos {bad[:5]}")
    if (ra.names, ra.edges, ra.iou_threshold) != (rb.names, rb.edges, rb.iou_threshold):
        raise RunError("the runs were matched with different classes, height buckets or IoU thresholds")
    # the same videos in the same order on both sides (by id) so the draws pair up
    order_a = np.argsort(np.asarray(ra.ids))
    order_b = np.asarray([pos_b[ra.ids[i]] for i in order_a])
    out: dict[str, Any] = {"videos": ra.n_v, "resamples": resamples, "seed": seed, "confidence": confidence,
                           "slices": {}}
    for sc_a in ra.scope_list:
        keep = np.isin(order_a, sc_a.videos)
        sa_vids, sb_vids = order_a[keep], order_b[keep]
        sc_a = _Scope(sc_a.key, sc_a.value, sa_vids, sc_a.bucket)
        sc_b = _Scope(sc_a.key, sc_a.value, sb_vids, sc_a.bucket)
        ea, eb = ra.exact(sc_a), rb.exact(sc_b)
        w = bs.resample_weights(sa_vids.size, resamples, seed, sc_a.name)
        ones = np.ones((1, sa_vids.size))
        sma, smb = ra.samples(sc_a, w), rb.samples(sc_b, w)
        fa, fb = ra.samples(sc_a, ones), rb.samples(sc_b, ones)

        sides = (sma, smb, fa, fb)
        entry = {"metrics": _table(ea, eb, 0, sides, confidence),
                 "per_class": {n: _table(ea["per_class"][n], eb["per_class"][n], 1 + c, sides, confidence)
                               for c, n in enumerate(ra.names)}}
        if sc_a.key is None:
            out.update(entry)
        else:
            out["slices"].setdefault(sc_a.key, {})[sc_a.value] = entry
    rows = []
    for i in order_a:
        va, vb = ra.per_video[i], rb.per_video[pos_b[ra.ids[i]]]
        d = {}
        for name, path in (("ap", ("coco", "AP")), ("ap50", ("coco", "AP50")), ("precision", ("operating_point",
                           "precision")), ("recall", ("operating_point", "recall")), ("f1", ("operating_point", "f1"))):
            x, y = va[path[0]][path[1]], vb[path[0]][path[1]]
            ok = x is not None and y is not None and not (path[0] == "coco" and (x == -1 or y == -1))
            d[name] = (y - x) if ok else None
        rows.append({"video_id": ra.ids[i], "differences": d})
    rows.sort(key=lambda r: -abs(r["differences"]["ap"] or 0.0))
    out["per_video"] = rows
    return out
