"""Video upload and listing."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import ValidationError
from sqlalchemy import Select, or_, select

from models import ProjectMember, Video
from storage import store, timeline_key
from vision.probe import NotAVideo, probe_video

from ..auth import Principal, current_user, get_or_404, get_project_for, require_writer
from ..bodies import single_file
from ..db import audit, db_session, paginate
from ..errors import ApiError, validation_error
from ..extensions import limiter
from ..schemas import VideoListArgs, VideoOut, VideoPage, VideoPatch, VideoUploadForm
from ..timelines import save_timeline
from ..uploads import sha256_of

bp = Blueprint("videos", __name__, url_prefix="/api/videos", description="Videos")
KNOWN_EXTENSIONS = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}


def _visible_videos(user: Principal) -> Select[Video]:
    stmt = select(Video)
    if not user.is_admin:
        member_projects = select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)
        stmt = stmt.where(or_(Video.project_id.in_(member_projects),
                              (Video.project_id.is_(None)) & (Video.uploaded_by == user.id)))
    return stmt


@bp.route("", methods=["POST"])
@limiter.limit(lambda: current_app.config["SETTINGS"].rate_limit_upload)
@bp.response(201, VideoOut)
def upload_video() -> Video:
    """Upload a video (multipart field ``file``, optional ``project_id``).

    The file is stored under a generated name and probed with OpenCV; anything that does
    not decode as a video is refused with 415 and leaves nothing behind.
    """
    user = require_writer()
    session = db_session()
    try:
        form = VideoUploadForm().load(request.form.to_dict())
    except ValidationError as exc:
        raise validation_error(exc.messages, "form") from None
    upload = single_file()
    project_id = form.get("project_id")
    if project_id is not None:
        get_project_for(session, user, project_id, write=True)

    part_path = Path(upload.stream.name)
    upload.stream.flush()
    try:
        info = probe_video(part_path)
    except NotAVideo as exc:
        raise ApiError(415, f"the uploaded file is not a decodable video ({exc})") from None
    checksum, size = sha256_of(part_path)

    video_id = uuid.uuid4()
    ext = Path(upload.filename or "").suffix.lower()
    relative = f"videos/{video_id}{ext if ext in KNOWN_EXTENSIONS else '.video'}"
    stored = store(current_app.config["STORAGE_DIR"])
    try:
        with stored.staged(timeline_key(relative)) as timeline:
            save_timeline(timeline, info.timestamps)
        stored.put_file(relative, part_path, move=True)
        video = Video(id=video_id, project_id=project_id, filename=(upload.filename or "upload")[:255],
                      storage_path=relative, size_bytes=size, checksum=checksum, fps=info.fps,
                      frame_count=info.frame_count, width=info.width, height=info.height,
                      duration=info.duration, codec=info.codec, variable_frame_rate=info.variable_frame_rate,
                      uploaded_by=user.id)
        session.add(video)
        audit(session, "create", "video", video_id, {"filename": video.filename, "size_bytes": size})
        session.commit()
    except BaseException:
        stored.delete(relative)
        stored.delete(timeline_key(relative))
        raise
    return video


@bp.route("", methods=["GET"])
@bp.arguments(VideoListArgs, location="query")
@bp.response(200, VideoPage)
def list_videos(args: dict[str, Any]) -> dict[str, Any]:
    session, user = db_session(), current_user()
    stmt = _visible_videos(user)
    if "project_id" in args:
        get_project_for(session, user, args["project_id"])
        stmt = stmt.where(Video.project_id == args["project_id"])
    if args.get("unassigned"):
        stmt = stmt.where(Video.project_id.is_(None))
    return paginate(session, stmt.order_by(Video.created_at, Video.id), args["page"], args["per_page"])


@bp.route("/<video_id>", methods=["GET"])
@bp.response(200, VideoOut)
def get_video(video_id: str) -> Video:
    return get_or_404(Video, video_id, "video")


@bp.route("/<video_id>", methods=["PATCH"])
@bp.arguments(VideoPatch)
@bp.response(200, VideoOut)
def patch_video(data: dict[str, Any], video_id: str) -> Video:
    """Set a video's free tags (``["rain", "urban"]``): validation runs filter and slice by them."""
    session = db_session()
    video = get_or_404(Video, video_id, "video", write=True)
    video.tags = list(dict.fromkeys(data["tags"]))
    audit(session, "update", "video", video.id, {"tags": video.tags})
    session.commit()
    return video
