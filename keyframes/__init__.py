"""Keyframed boxes over time: interpolation on a video's real timeline and consistency checks.

Pure library (numpy only). Boxes are pixel coordinates ``[x1, y1, x2, y2]`` with the origin at
the top-left corner of the frame, ``x2 > x1`` and ``y2 > y1`` (continuous coordinates: a box
covering the whole 640x480 frame is ``[0, 0, 640, 480]``).
"""
from .boxes import box_errors, iou
from .checks import CheckLimits, Finding, check_track
from .simplify import track_keyframes
from .timeline import Timeline
from .tracks import Keyframe, Track, interpolate, visible

__all__ = ["CheckLimits", "Finding", "Keyframe", "Timeline", "Track", "box_errors", "check_track",
           "interpolate", "iou", "track_keyframes", "visible"]
