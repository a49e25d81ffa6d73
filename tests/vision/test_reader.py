"""The video reader: container timestamps, stride and range, clear errors on damaged files."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from harness import write_video

from vision.reader import VideoDecodeError, VideoReader

VFR_PTS = [0, 40, 80, 120, 300, 340, 700, 733, 766, 1000, 1500, 1533]


def _grey(i: int) -> np.ndarray:
    return np.full((120, 160, 3), 10 + 20 * i, np.uint8)


def test_timestamps_are_the_containers_on_a_variable_frame_rate_video(tmp_path):
    path = write_video(tmp_path / "vfr.mp4", VFR_PTS, _grey)
    cap = cv2.VideoCapture(str(path))
    reference = []
    while cap.read()[0]:
        reference.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
    cap.release()
    frames = list(VideoReader(path))
    assert [f.frame_number for f in frames] == list(range(len(VFR_PTS)))
    assert np.allclose([f.timestamp for f in frames], reference, atol=1e-9)
    # ... and those are the times the file was written with, which no constant rate explains.
    assert np.allclose([f.timestamp for f in frames], np.array(VFR_PTS) / 1000.0, atol=1e-3)
    assert frames[4].image.mean() == pytest.approx(_grey(4).mean(), abs=6)


def test_stride_and_range_keep_the_real_frame_numbers_and_times(tmp_path):
    path = write_video(tmp_path / "vfr.mp4", VFR_PTS, _grey)
    frames = list(VideoReader(path, stride=3, start=2, end=11))
    assert [f.frame_number for f in frames] == [2, 5, 8]
    assert np.allclose([f.timestamp for f in frames], [0.080, 0.340, 0.766], atol=1e-3)
    assert VideoReader(path, stride=3, start=2, end=11).total == 3


def test_a_truncated_file_names_the_frame_where_decoding_failed(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(40):
        writer.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    seen = []
    with pytest.raises(VideoDecodeError) as err:
        for frame in VideoReader(cut):
            seen.append(frame.frame_number)
    assert err.value.frame_number == len(seen) and 0 < len(seen) < 40
    assert f"frame {len(seen)} of 40" in str(err.value)


def test_not_a_video_is_refused_at_once(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoDecodeError, match="frame 0"):
        VideoReader(junk)
    with pytest.raises(ValueError):
        VideoReader(junk, stride=0)
