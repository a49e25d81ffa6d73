"""Draw the vtest.avi ground truth on chosen frames, the way the platform interpolates it.

    python demo/render_ground_truth.py VIDEO OUT_DIR FRAME [FRAME ...]

Reads ``demo/vtest_ground_truth.csv`` with the platform's CSV reader and rebuilds each track
as an import stores it (it spans its first to last keyframe; ``outside`` rows only mark where
it ends), interpolated between keyframes by ``keyframes`` as every export does; prints how many boxes frames 0-149 hold
and writes ``OUT_DIR/frame_NNN.png`` per frame asked for (thick box: a keyframe).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from formats import csvfile  # noqa: E402
from formats.records import VideoInfo  # noqa: E402
from keyframes import Keyframe, Timeline, Track  # noqa: E402
from keyframes.exchange import track_records  # noqa: E402

CSV = Path(__file__).with_name("vtest_ground_truth.csv")
COLOURS = ((0, 0, 255), (0, 200, 0), (255, 0, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0), (0, 128, 255),
           (255, 128, 0), (128, 0, 255), (0, 255, 128))


def boxes_by_frame(frame_count: int = 795, fps: float = 10.0) -> dict[int, list[tuple[int, tuple, bool]]]:
    """Frame -> [(track id, box, is keyframe)] on every frame a track spans, as an import stores it."""
    video = VideoInfo(768, 576, frame_count, fps, "vtest.avi")
    keys: dict[int, list] = defaultdict(list)
    for rec in csvfile.read(CSV, video=video, classes=["pedestrian"]):
        if not rec.outside:
            keys[rec.track_id].append((rec.frame_number, rec.box, {}))
    timeline = Timeline.constant(frame_count, fps)
    out: dict[int, list[tuple[int, tuple, bool]]] = defaultdict(list)
    for tid, kf in sorted(keys.items()):
        frames = [f for f, _, _ in kf]
        track = Track(tid, "pedestrian", float(timeline.time_of(min(frames))),
                      float(timeline.time_of(max(frames))), None, [Keyframe.stored(*k) for k in kf])
        for rec in track_records(track, timeline):
            out[rec.frame_number].append((tid, rec.box, rec.keyframe))
    return out


def main(video: str, out_dir: str, frames: list[int]) -> None:
    boxes = boxes_by_frame()
    print(f"{sum(len(boxes[f]) for f in range(150))} boxes over frames 0-149, "
          f"{len({t for f in boxes for t, _, _ in boxes[f]})} tracks")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(video)
    for f in frames:
        cap.set(cv2.CAP_PROP_POS_FRAMES, f)
        ok, img = cap.read()
        if not ok:
            raise SystemExit(f"cannot read frame {f} of {video}")
        for tid, box, key in boxes.get(f, []):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            colour = COLOURS[tid % len(COLOURS)]
            cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2 if key else 1)
            cv2.putText(img, str(tid), (x1, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        cv2.putText(img, f"frame {f}", (10, 566), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
        cv2.imwrite(str(Path(out_dir) / f"frame_{f:03d}.png"), img)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], [int(a) for a in sys.argv[3:]])
