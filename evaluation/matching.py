"""Greedy score-ordered matching of detections to ground truth, as COCOeval does it.

COCO's matcher walks detections one by one within each (image, class) group, so it is
sequential per group. We keep it exact but vectorize across groups, IoU thresholds and area
ranges at once: step ``r`` handles the r-th best detection of every group together. Groups are
bucketed by ground-truth and detection counts so padding stays small.
"""
from __future__ import annotations

import numpy as np

from .boxes import box_iou


def _bucket(n: np.ndarray) -> np.ndarray:
    return np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64)


def greedy_match(
    gt_group: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_crowd: np.ndarray,
    gt_ignore: np.ndarray,
    dt_group: np.ndarray,
    dt_xyxy: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """Return, for each area setting, threshold and detection, the matched gt row or -1.

    Preconditions (the caller sorts once): ``gt_group`` ascending with ties in input order;
    detections sorted by group, then descending score, ties in input order. ``gt_ignore`` has
    shape (A, n_gt): one ignore flag set per area range.

    A detection takes, among still-free ground truth (crowd regions never become busy), the
    one with the highest IoU >= threshold, preferring non-ignored ground truth and, on equal
    IoU, the later one in input order - COCOeval's exact tie behaviour.
    """
    n_area = gt_ignore.shape[0]
    thr = np.minimum(np.asarray(thresholds, dtype=np.float64), 1 - 1e-10)
    n_thr = thr.shape[0]
    out = np.full((n_area, n_thr, dt_group.shape[0]), -1, dtype=np.int64)
    if gt_group.size == 0 or dt_group.size == 0:
        return out
    groups, d_start, d_count = np.unique(dt_group, return_index=True, return_counts=True)
    g_start = np.searchsorted(gt_group, groups, side="left")
    g_count = np.searchsorted(gt_group, groups, side="right") - g_start
    has = g_count > 0
    groups, d_start, d_count, g_start, g_count = (x[has] for x in (groups, d_start, d_count, g_start, g_count))
    if groups.size == 0:
        return out
    keys = _bucket(g_count) * 64 + _bucket(d_count)
    for key in np.unique(keys):
        sel = np.nonzero(keys == key)[0]
        n_g, n_d = g_count[sel], d_count[sel]
        big_g, big_d = int(n_g.max()), int(n_d.max())
        g_valid = np.arange(big_g)[None, :] < n_g[:, None]
        d_valid = np.arange(big_d)[None, :] < n_d[:, None]
        gidx = np.where(g_valid, g_start[sel, None] + np.arange(big_g)[None, :], 0)
        didx = np.where(d_valid, d_start[sel, None] + np.arange(big_d)[None, :], 0)
        crowd = gt_crowd[gidx] & g_valid
        ign = gt_ignore[:, gidx]
        iou = box_iou(dt_xyxy[didx][:, :, None, :], gt_xyxy[gidx][:, None, :, :], crowd[:, None, :])
        iou = np.where(g_valid[:, None, :], iou, -np.inf)
        busy = np.zeros((n_area, sel.size, n_thr, big_g), dtype=bool)
        res = np.full((big_d, n_area, sel.size, n_thr), -1, dtype=np.int64)
        for r in range(big_d):
            act = np.nonzero(n_d > r)[0]
            full = act.size == sel.size
            iou_r = iou[:, r, :] if full else iou[act, r, :]
            busy_a = busy if full else busy[:, act]
            crowd_a = crowd if full else crowd[act]
            ign_a = (ign if full else ign[:, act])[:, :, None, :]
            ok = (~busy_a | crowd_a[None, :, None, :]) & (iou_r[None, :, None, :] >= thr[None, None, :, None])
            ious = iou_r[None, :, None, :]
            v1 = np.where(ok & ~ign_a, ious, -1.0)[..., ::-1]
            v2 = np.where(ok & ign_a, ious, -1.0)[..., ::-1]
            i1 = np.argmax(v1, axis=-1)
            i2 = np.argmax(v2, axis=-1)
            h1 = np.take_along_axis(v1, i1[..., None], -1)[..., 0] >= 0
            h2 = np.take_along_axis(v2, i2[..., None], -1)[..., 0] >= 0
            m = np.where(h1, big_g - 1 - i1, np.where(h2, big_g - 1 - i2, -1))
            a_i, b_i, t_i = np.nonzero(m >= 0)
            busy[a_i, act[b_i], t_i, m[a_i, b_i, t_i]] = True
            res[r][:, act] = m
        r_i, a_i, b_i, t_i = np.nonzero(res >= 0)
        out[a_i, t_i, didx[b_i, r_i]] = gidx[b_i, res[r_i, a_i, b_i, t_i]]
    return out
