"""The detection pipeline: read → batch → infer → filter and NMS → track, with backpressure.

A reader thread decodes frames into a bounded queue while the caller's thread runs
inference, so decoding overlaps inference and memory stays bounded by the queue, not by
the video. When inference is slower than decoding the reader waits: no frame asked for is
ever dropped. Only ``realtime`` mode, which paces the reader like a live camera, may skip
frames to keep up, and it reports every frame it skipped.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms

from .detections import Detections
from .detectors import Detector, ModelSpec
from .labels import DEFAULT_LABEL_MAP, VRU_CLASSES, LabelMap
from .reader import Frame, VideoReader
from .tracker import ByteTracker, TrackerConfig


@dataclass
class PipelineConfig:
    batch_size: int = 4
    frame_stride: int = 1
    start_frame: int = 0
    end_frame: int | None = None
    confidence_threshold: float = 0.3
    nms_threshold: float = 0.45
    #: Project class names to keep; None keeps every mapped class.
    classes: list[str] | None = None
    enable_tracking: bool = False
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    #: Pace the reader at the video's own rate and skip frames when inference falls behind.
    realtime: bool = False
    #: Batches the reader may run ahead of inference.
    queue_batches: int = 2
    #: Keep the decoded image on each result (for drawing); off for jobs.
    keep_images: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.frame_stride < 1:
            raise ValueError("batch_size and frame_stride must be >= 1")
        if not 0.0 <= self.confidence_threshold <= 1.0 or not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError("confidence_threshold must be in [0,1] and nms_threshold in (0,1]")


@dataclass
class FrameResult:
    frame_number: int
    timestamp: float
    #: Boxes in project class ids (see ``LabelMap.project_classes``), tracked when enabled.
    detections: Detections
    image: np.ndarray | None = None


@dataclass
class PipelineStats:
    """What a run did; ``summary()`` is what a job stores."""

    device: str = "cpu"
    frames_processed: int = 0
    frames_skipped: list[int] = field(default_factory=list)
    detections: int = 0
    per_class: Counter = field(default_factory=Counter)
    confidence_sum: float = 0.0
    tracks: int = 0
    wall_seconds: float = 0.0
    inference_seconds: float = 0.0
    reader_wait_seconds: float = 0.0
    first_timestamp: float | None = None
    last_timestamp: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "frames_processed": self.frames_processed,
            "frames_skipped": len(self.frames_skipped),
            "skipped_frame_numbers": list(self.frames_skipped),
            "detections": self.detections,
            "per_class": dict(sorted(self.per_class.items())),
            "mean_confidence": round(self.confidence_sum / self.detections, 6) if self.detections else None,
            "tracks": self.tracks,
            "wall_seconds": round(self.wall_seconds, 4),
            "inference_seconds": round(self.inference_seconds, 4),
            "reader_wait_seconds": round(self.reader_wait_seconds, 4),
            "fps": round(self.frames_processed / self.wall_seconds, 3) if self.wall_seconds > 0 else None,
            "device": self.device,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
        }


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class DetectionPipeline:
    """Run ``detector`` over a video; iterate :meth:`run` to get per-frame results in order."""

    def __init__(self, detector: Detector, label_map: LabelMap, config: PipelineConfig | None = None) -> None:
        self.detector = detector
        self.label_map = label_map
        self.config = config or PipelineConfig()
        self.stats = PipelineStats(device=getattr(detector, "device", "cpu"))
        self.tracker = ByteTracker(self.config.tracker) if self.config.enable_tracking else None
        names = self.config.classes
        unknown = set(names or ()) - set(label_map.project_classes)
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}; known: {list(label_map.project_classes)}")
        self._keep_classes = (
            None if names is None else np.array([label_map.project_classes.index(n) for n in names], dtype=np.int64)
        )

    @classmethod
    def from_spec(cls, detector: Detector, spec: ModelSpec, project_classes: Sequence[str] | None = None,
                  **config: Any) -> DetectionPipeline:
        """Thresholds, classes and label map from the model spec, the rest from keyword arguments.

        ``project_classes`` are the labels results are given in (the VRU set by default); the
        spec's ``label_map`` adds to (and overrides) the default model-to-project mapping.
        """
        config.setdefault("confidence_threshold", spec.confidence_threshold)
        config.setdefault("nms_threshold", spec.nms_threshold)
        config.setdefault("classes", spec.classes)
        mapping = {**DEFAULT_LABEL_MAP, **(spec.label_map or {})}
        label_map = LabelMap(detector.class_names, mapping, project_classes or VRU_CLASSES)
        return cls(detector, label_map, PipelineConfig(**config))

    # -- reading -----------------------------------------------------------------------------

    def _reader(self, source: VideoReader, out: queue.Queue, stop: threading.Event) -> None:
        batch: list[Frame] = []
        cfg = self.config
        started = None
        try:
            for frame in source:
                if stop.is_set():
                    return
                if cfg.realtime:
                    # A live camera: the frame exists at its presentation time, not before.
                    if started is None:
                        started = time.perf_counter() - frame.timestamp
                    delay = started + frame.timestamp - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    batch.append(frame)
                    if len(batch) >= cfg.batch_size:
                        try:
                            out.put_nowait(batch)
                        except queue.Full:
                            self.stats.frames_skipped.extend(f.frame_number for f in batch)
                        batch = []
                    continue
                batch.append(frame)
                if len(batch) >= cfg.batch_size:
                    self._put(out, batch, stop)
                    batch = []
            if batch:
                self._put(out, batch, stop)
            self._put(out, _END, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            if batch and not cfg.realtime:  # what decoded before the failure is still processed
                self._put(out, batch, stop)
            self._put(out, _Failure(exc), stop)

    @staticmethod
    def _put(out: queue.Queue, item: Any, stop: threading.Event) -> None:
        """Block while the queue is full (backpressure), but give up when the run is abandoned."""
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- running -----------------------------------------------------------------------------

    def run(self, path: str | Path, cancelled: Callable[[], bool] | None = None) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per processed frame, in frame order."""
        cfg = self.config
        source = VideoReader(path, stride=cfg.frame_stride, start=cfg.start_frame, end=cfg.end_frame)
        self.total_frames = source.total
        frames: queue.Queue = queue.Queue(maxsize=max(1, cfg.queue_batches))
        stop = threading.Event()
        thread = threading.Thread(target=self._reader, args=(source, frames, stop), name="video-reader", daemon=True)
        started = time.perf_counter()
        thread.start()
        try:
            while True:
                if cancelled is not None and cancelled():
                    return
                t0 = time.perf_counter()
                item = frames.get()
                self.stats.reader_wait_seconds += time.perf_counter() - t0
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield from self._process(item)
                self.stats.wall_seconds = time.perf_counter() - started
        finally:
            stop.set()
            thread.join(timeout=5)
            self.stats.wall_seconds = time.perf_counter() - started
            if self.tracker is not None:
                self.stats.tracks = self.tracker.track_count

    def _process(self, batch: list[Frame]) -> list[FrameResult]:
        t0 = time.perf_counter()
        raw = self.detector.predict([f.image for f in batch])
        self.stats.inference_seconds += time.perf_counter() - t0
        kept = self.postprocess(raw)
        results = []
        for frame, dets in zip(batch, kept, strict=True):
            dets.frame_index[:] = frame.frame_number
            dets.timestamp[:] = frame.timestamp
            if self.tracker is not None:
                dets = self.tracker.update(dets, frame.timestamp)
            self._count(frame, dets)
            results.append(FrameResult(frame.frame_number, frame.timestamp, dets,
                                       frame.image if self.config.keep_images else None))
        return results

    def postprocess(self, raw: list[Detections]) -> list[Detections]:
        """Confidence filter, label map, class filter and class-aware NMS for a whole batch at once."""
        cfg = self.config
        merged = Detections.merge(
            Detections.from_arrays(d.xyxy, d.confidence, d.class_id, frame_index=i) for i, d in enumerate(raw)
        )
        if len(merged):
            merged.class_id = self.label_map(merged.class_id)
            keep = (merged.confidence >= cfg.confidence_threshold) & (merged.class_id >= 0)
            if self._keep_classes is not None:
                keep &= np.isin(merged.class_id, self._keep_classes)
            merged = merged[keep]
        if len(merged):
            # One NMS call for the batch: boxes only suppress boxes of the same frame and class.
            groups = merged.frame_index * (len(self.label_map.project_classes) + 1) + merged.class_id
            order = batched_nms(torch.from_numpy(merged.xyxy), torch.from_numpy(merged.confidence),
                                torch.from_numpy(groups), cfg.nms_threshold).numpy()
            order = order[np.lexsort((-merged.confidence[order], merged.frame_index[order]))]
            merged = merged[order]
        return [merged.for_frame(i) for i in range(len(raw))]

    def _count(self, frame: Frame, dets: Detections) -> None:
        s = self.stats
        s.frames_processed += 1
        s.detections += len(dets)
        s.confidence_sum += float(dets.confidence.sum())
        for cid, count in zip(*np.unique(dets.class_id, return_counts=True), strict=True):
            s.per_class[self.label_map.name(int(cid))] += int(count)
        if s.first_timestamp is None:
            s.first_timestamp = frame.timestamp
        s.last_timestamp = frame.timestamp
