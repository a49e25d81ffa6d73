"""ByteTrack-style multi-object tracking on columnar detections, in real time units.

Association runs in two rounds, as in ByteTrack: confident detections against every live
track first, then the low-confidence leftovers against the tracks still unmatched, which
keeps tracks alive through occlusion without letting weak boxes start new ones.

Everything that depends on time uses the frames' presentation timestamps: the motion model
predicts with the real interval between frames, and a lost track is kept for
``lost_buffer_seconds`` of video time, not a number of frames. The same scene sampled at 5
or 60 fps (or with a stride, or with a variable frame rate) therefore behaves the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detections import Detections


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``[N,4]`` and ``[M,4]`` xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    a = a.astype(np.float64)[:, None, :]
    b = b.astype(np.float64)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


class KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, w, h) with velocities per second.

    Noise scales with the box height, as in SORT/ByteTrack, and the process noise grows with
    the real time step, so a long gap widens the uncertainty as it should.
    """

    pos_weight = 1.0 / 20
    vel_weight = 1.0 / 160

    def __init__(self, box: np.ndarray) -> None:
        z = _to_cxcywh(box)
        self.x = np.concatenate([z, np.zeros(4)])
        h = max(z[3], 1.0)
        std = np.array([2 * self.pos_weight * h] * 4 + [10 * self.vel_weight * h * 30] * 4)
        self.P = np.diag(std ** 2)

    def predict(self, dt: float) -> None:
        dt = max(dt, 0.0)
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * dt
        h = max(self.x[3], 1.0)
        # Noise per second of video: frames per second do not change the filter's belief.
        q_pos = (self.pos_weight * h) ** 2 * dt * 30
        q_vel = (self.vel_weight * h * 30) ** 2 * dt * 30
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + np.diag([q_pos] * 4 + [q_vel] * 4)
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)

    def update(self, box: np.ndarray) -> None:
        z = _to_cxcywh(box)
        H = np.zeros((4, 8))
        H[:, :4] = np.eye(4)
        h = max(self.x[3], 1.0)
        R = np.diag([(self.pos_weight * h) ** 2] * 4)
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - H @ self.x)
        self.P = (np.eye(8) - K @ H) @ self.P

    @property
    def xyxy(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)


@dataclass
class Track:
    track_id: int
    class_id: int
    kf: KalmanBox
    last_seen: float
    predicted_at: float
    hits: int = 1
    lost: bool = False


@dataclass
class TrackerConfig:
    #: Detections at or above this confidence take part in the first round and may start tracks.
    high_threshold: float = 0.5
    #: Detections between this and ``high_threshold`` only extend existing tracks.
    low_threshold: float = 0.1
    #: A new track needs at least this confidence (ByteTrack's ``new_track_thresh``).
    new_track_threshold: float = 0.6
    #: Minimum IoU between a predicted track box and a detection to match, per round.
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    #: How long a lost track can be recovered, in seconds of video time.
    lost_buffer_seconds: float = 1.0
    #: Match only detections and tracks of the same class.
    class_aware: bool = True


@dataclass
class ByteTracker:
    """Assigns ``tracker_id`` to each frame's detections; ids are unique for the tracker's life."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, detections: Detections, timestamp: float) -> Detections:
        """Track one frame's detections (all from the frame at ``timestamp`` seconds)."""
        cfg = self.config
        n = len(detections)
        out_ids = np.full(n, -1, dtype=np.int64)
        # Drop tracks lost for longer than the buffer, measured in video time.
        self.tracks = [t for t in self.tracks if timestamp - t.last_seen <= cfg.lost_buffer_seconds]
        for t in self.tracks:
            t.kf.predict(timestamp - t.predicted_at)
            t.predicted_at = timestamp

        conf = detections.confidence
        high = np.flatnonzero(conf >= cfg.high_threshold)
        low = np.flatnonzero((conf >= cfg.low_threshold) & (conf < cfg.high_threshold))

        unmatched_tracks = list(range(len(self.tracks)))
        matched_tracks: set[int] = set()

        # Round 1: confident boxes against every live track, lost ones included.
        pairs, unmatched_high = self._associate(detections, high, unmatched_tracks, cfg.match_iou)
        for d, ti in pairs:
            self._apply(ti, detections, d, timestamp, out_ids)
            matched_tracks.add(ti)
        # Round 2: weak boxes only against tracks that were tracked (not lost) and still unmatched.
        remaining = [ti for ti in unmatched_tracks if ti not in matched_tracks and not self.tracks[ti].lost]
        pairs, _ = self._associate(detections, low, remaining, cfg.low_match_iou)
        for d, ti in pairs:
            self._apply(ti, detections, d, timestamp, out_ids)
            matched_tracks.add(ti)

        for ti, t in enumerate(self.tracks):
            if ti not in matched_tracks:
                t.lost = True
        for d in unmatched_high:
            if conf[d] >= cfg.new_track_threshold:
                track = Track(self.next_id, int(detections.class_id[d]), KalmanBox(detections.xyxy[d]),
                              last_seen=timestamp, predicted_at=timestamp)
                self.next_id += 1
                self.tracks.append(track)
                out_ids[d] = track.track_id

        result = detections[np.arange(n)]
        result.tracker_id = out_ids
        return result

    def _apply(self, ti: int, detections: Detections, d: int, timestamp: float, out_ids: np.ndarray) -> None:
        t = self.tracks[ti]
        t.kf.update(detections.xyxy[d])
        t.last_seen = timestamp
        t.hits += 1
        t.lost = False
        out_ids[d] = t.track_id

    def _associate(self, detections: Detections, det_idx: np.ndarray, track_idx: list[int],
                   min_iou: float) -> tuple[list[tuple[int, int]], list[int]]:
        if len(det_idx) == 0 or not track_idx:
            return [], [int(d) for d in det_idx]
        boxes = np.stack([self.tracks[ti].kf.xyxy for ti in track_idx])
        iou = iou_matrix(detections.xyxy[det_idx], boxes)
        if self.config.class_aware:
            track_classes = np.array([self.tracks[ti].class_id for ti in track_idx])
            iou = np.where(detections.class_id[det_idx][:, None] == track_classes[None, :], iou, 0.0)
        rows, cols = linear_sum_assignment(-iou)
        pairs, used = [], set()
        for r, c in zip(rows, cols, strict=True):
            if iou[r, c] >= min_iou:
                pairs.append((int(det_idx[r]), track_idx[c]))
                used.add(r)
        unmatched = [int(det_idx[r]) for r in range(len(det_idx)) if r not in used]
        return pairs, unmatched

    @property
    def track_count(self) -> int:
        """How many distinct tracks have been started so far."""
        return self.next_id - 1
