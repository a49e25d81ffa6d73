"""One decoded video frame as a JPEG, for frame-exact scrubbing in the dashboard's viewer.

An HTML5 ``<video>`` element cannot land on a given frame number reliably (it seeks by time,
and many containers the platform accepts do not play in browsers at all), so the viewer asks
for frames by number and draws the stored detections of exactly that frame on top.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app
from flask_smorest import Blueprint

from models import Video
from storage import NotFound, video_file
from vision.reader import read_frame

from ..auth import get_or_404
from ..errors import ApiError
from ..schemas import DEFAULT_MAX_WIDTH, MAX_WIDTH, FrameArgs
from ..timelines import video_timeline

T = TypeVar("T")

bp = Blueprint("frames", __name__, url_prefix="/api/videos", description="Video frames as images")

JPEG_QUALITY = 85
CACHE_SIZE = 256
_cache: OrderedDict[tuple, bytes] = OrderedDict()
_lock = threading.Lock()


def _frame_jpeg(path: str, frame_number: int, width: int) -> bytes | None:
    """The frame as JPEG; None when the file has no such frame."""
    frame = read_frame(path, frame_number)
    return None if frame is None else frame.jpeg(width, JPEG_QUALITY)


def _off_the_loop(fn: Callable[..., T], *args: object) -> T:
    """Decoding is CPU work that releases the GIL: under gevent run it on a native thread so
    other requests and Socket.IO traffic keep flowing."""
    try:
        from gevent import get_hub, monkey

        if monkey.is_module_patched("threading"):
            return get_hub().threadpool.apply(fn, args)
    except ImportError:  # pragma: no cover - gevent is a dependency
        pass
    return fn(*args)


@bp.route("/<video_id>/frames/<int:frame_number>.jpg", methods=["GET"])
@bp.arguments(FrameArgs, location="query")
@bp.response(200, content_type="image/jpeg")
def video_frame(args: dict[str, Any], video_id: str, frame_number: int) -> Response:
    """Frame ``frame_number`` (0-based, as in detections and keyframes) as ``image/jpeg``.

    404 beyond the last frame. ``X-Frame-Timestamp`` gives the frame's presentation time in
    seconds. Frames never change, so the answer may be cached privately.
    """
    video = get_or_404(Video, video_id, "video")
    if frame_number >= (video.frame_count or 0):
        raise ApiError(404, f"the video has {video.frame_count} frames (0 to {max(0, video.frame_count - 1)})")
    width = min(args.get("width") or min(video.width or DEFAULT_MAX_WIDTH, DEFAULT_MAX_WIDTH), MAX_WIDTH)
    key = (str(video.id), video.checksum, frame_number, width)
    with _lock:
        data = _cache.get(key)
        if data is not None:
            _cache.move_to_end(key)
    if data is None:
        try:
            path = video_file(video, current_app.config["STORAGE_DIR"])
        except NotFound:
            path = None
        data = _off_the_loop(_frame_jpeg, str(path), frame_number, width) if path is not None else None
        if data is None:
            raise ApiError(404, f"frame {frame_number} could not be decoded")
        with _lock:
            _cache[key] = data
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    response = Response(data, mimetype="image/jpeg")
    try:
        response.headers["X-Frame-Timestamp"] = f"{float(video_timeline(video).time_of([frame_number])[0]):.6f}"
    except Exception:  # noqa: BLE001 - the timestamp is a convenience, the image is the answer
        pass
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
