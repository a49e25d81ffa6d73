"""Tables of the platform: the blueprint's, plus jobs, users, membership and audit."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .types import GUID, BigIntPK, JSONType, UTCDateTime, new_id, utcnow

JOB_STATUSES = ("pending", "processing", "completed", "failed", "cancelled")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")
ROLES = ("admin", "annotator", "viewer")
DEFAULT_LABELS = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType}


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(GUID, primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


# ----------------------------------------------------------------------------- people


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin','annotator','viewer')", name="ck_users_role"),)

    id: Mapped[uuid.UUID] = _pk()
    username: Mapped[str] = mapped_column(String(150), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False, default="viewer")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Raised on password change: tokens carry it, older ones stop working.
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    camera_metadata: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    labels: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=lambda: list(DEFAULT_LABELS))
    # How many videos the project wants (intelligent assignment fills up to this); None: no limit.
    wanted_videos: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    members: Mapped[list[ProjectMember]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (
        CheckConstraint("role IN ('admin','annotator','viewer')", name="ck_project_members_role"),
        Index("idx_project_members_user", "user_id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), nullable=False, default="viewer")
    created_at: Mapped[datetime] = _created()

    project: Mapped[Project] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (Index("idx_videos_project", "project_id"), Index("idx_videos_checksum", "checksum"))

    id: Mapped[uuid.UUID] = _pk()
    project_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("projects.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255), nullable=False)  # the client's name, display only
    storage_path: Mapped[str] = mapped_column(String(500), nullable=False)  # relative to STORAGE_DIR
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checksum: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256
    fps: Mapped[float] = mapped_column(Float, nullable=False)
    frame_count: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    duration: Mapped[float] = mapped_column(Float, nullable=False)
    codec: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    variable_frame_rate: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Free labels ("rain", "urban", "camera-b") that validation runs filter and slice by.
    tags: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()


# ------------------------------------------------------------------------ annotations


class AnnotationSession(Base):
    __tablename__ = "annotation_sessions"
    __table_args__ = (Index("idx_annotation_sessions_project_video", "project_id", "video_id"),)

    id: Mapped[uuid.UUID] = _pk()
    project_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    video_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False)
    annotator_id: Mapped[str] = mapped_column(String(36), nullable=False, default="anonymous")
    session_name: Mapped[str] = mapped_column(String(255), nullable=False)
    annotation_type: Mapped[str] = mapped_column(String(50), nullable=False)  # temporal, spatial, behavioral
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")  # active, completed, paused
    start_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class VideoAnnotation(Base):
    __tablename__ = "video_annotations"
    __table_args__ = (
        Index("idx_video_annotations_session_time", "annotation_session_id", "start_timestamp"),
        Index("idx_video_annotations_video", "video_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    annotation_session_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("annotation_sessions.id", ondelete="CASCADE"), nullable=False
    )
    video_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False)
    start_timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    end_timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    annotation_type: Mapped[str] = mapped_column(String(50), nullable=False)
    class_label: Mapped[str] = mapped_column(String(100), nullable=False)
    bounding_box: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    confidence: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    annotator_notes: Mapped[str | None] = mapped_column(Text)
    keyframe_data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    validation_status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    validated_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    validation_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    # Optimistic concurrency: every UPDATE/DELETE checks the version it read and bumps it,
    # so two editors can never both win against the same version.
    __mapper_args__ = {"version_id_col": version}

    keyframes: Mapped[list[AnnotationKeyframe]] = relationship(
        back_populates="annotation", cascade="all, delete-orphan", passive_deletes=True,
        order_by="AnnotationKeyframe.frame_number")


class AnnotationKeyframe(Base):
    __tablename__ = "annotation_keyframes"
    __table_args__ = (Index("idx_annotation_keyframes_annotation_frame", "annotation_id", "frame_number"),)

    id: Mapped[uuid.UUID] = _pk()
    annotation_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("video_annotations.id", ondelete="CASCADE"), nullable=False
    )
    frame_number: Mapped[int] = mapped_column(Integer, nullable=False)
    timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    frame_data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    screenshot_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = _created()

    annotation: Mapped[VideoAnnotation] = relationship(back_populates="keyframes")


# --------------------------------------------------------------- projects and videos


class ProjectVideoAssignment(Base):
    __tablename__ = "project_video_assignments"
    __table_args__ = (
        UniqueConstraint("project_id", "video_id", name="uq_project_video_assignments_project_video"),
        Index("idx_project_video_assignments_project", "project_id"),
        Index("idx_project_video_assignments_compatibility", text("compatibility_score DESC")),
    )

    id: Mapped[uuid.UUID] = _pk()
    project_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    video_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False)
    assignment_type: Mapped[str] = mapped_column(String(20), nullable=False, default="automatic")
    compatibility_score: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    assignment_reason: Mapped[str | None] = mapped_column(Text)
    assigned_by: Mapped[str] = mapped_column(String(36), nullable=False, default="system")
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, nullable=False, default=dict)


class VideoCompatibilityCache(Base):
    __tablename__ = "video_compatibility_cache"
    __table_args__ = (
        UniqueConstraint("video_id", name="uq_video_compatibility_cache_video"),
        Index("idx_video_compatibility_cache_updated", "last_updated"),
    )

    id: Mapped[uuid.UUID] = _pk()
    video_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False)
    compatibility_vector: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    extractor_version: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    video_checksum: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ProjectRequirement(Base):
    __tablename__ = "project_requirements"
    __table_args__ = (Index("idx_project_requirements_project", "project_id"),)

    id: Mapped[uuid.UUID] = _pk()
    project_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    requirement_type: Mapped[str] = mapped_column(String(50), nullable=False)
    requirement_value: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    weight: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    created_at: Mapped[datetime] = _created()


# ------------------------------------------------------------------------------- jobs


class Job(Base):
    """One lifecycle for every job kind; its id is the Celery task id."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','processing','completed','failed','cancelled')", name="ck_jobs_status"
        ),
        CheckConstraint("progress_percent >= 0 AND progress_percent <= 100", name="ck_jobs_progress"),
        Index("idx_jobs_status_created", "status", "created_at"),
        Index("idx_jobs_project_created", "project_id", "created_at"),
        Index("idx_jobs_undispatched", "dispatched_at", "status"),
    )

    id: Mapped[uuid.UUID] = _pk()
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    queue: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    progress_percent: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    stage: Mapped[str] = mapped_column(String(255), nullable=False, default="queued")
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # What a redelivered attempt needs to resume instead of starting over.
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    project_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("projects.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    claim_token: Mapped[str | None] = mapped_column(String(36))
    worker: Mapped[str | None] = mapped_column(String(255))
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Outbox: NULL until the broker accepted the message.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = _updated()


class TestSession(Base):
    __tablename__ = "test_sessions"
    __test__ = False  # not a pytest class
    __table_args__ = (Index("idx_test_sessions_project_video", "project_id", "video_id"),
                      Index("idx_test_sessions_job", "job_id"))

    id: Mapped[uuid.UUID] = _pk()
    project_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    video_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("jobs.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="detection")  # detection, import
    model: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    ground_truth_session_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("annotation_sessions.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DetectionEvent(Base):
    __tablename__ = "detection_events"
    __table_args__ = (
        # A redelivered job rewrites the same (frame, index) keys, so results exist once.
        UniqueConstraint("test_session_id", "frame_number", "detection_index", name="uq_detection_events_frame_index"),
        Index("idx_detection_events_session_frame", "test_session_id", "frame_number"),
        Index("idx_detection_events_session_track", "test_session_id", "track_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    test_session_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("test_sessions.id", ondelete="CASCADE"), nullable=False
    )
    frame_number: Mapped[int] = mapped_column(Integer, nullable=False)
    detection_index: Mapped[int] = mapped_column(Integer, nullable=False)
    timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    class_label: Mapped[str] = mapped_column(String(100), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    x1: Mapped[float] = mapped_column(Float, nullable=False)
    y1: Mapped[float] = mapped_column(Float, nullable=False)
    x2: Mapped[float] = mapped_column(Float, nullable=False)
    y2: Mapped[float] = mapped_column(Float, nullable=False)
    track_id: Mapped[int | None] = mapped_column(Integer)


class ExportJob(Base):
    __tablename__ = "export_jobs"
    __table_args__ = (Index("idx_export_jobs_status_created", "status", "created_at"),
                      Index("idx_export_jobs_job", "job_id"))

    id: Mapped[uuid.UUID] = _pk()
    job_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("jobs.id", ondelete="SET NULL"))
    job_name: Mapped[str] = mapped_column(String(255), nullable=False)
    export_type: Mapped[str] = mapped_column(String(50), nullable=False)
    format: Mapped[str] = mapped_column(String(20), nullable=False)
    scope_filter: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    progress_percent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    file_path: Mapped[str | None] = mapped_column(String(500))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    download_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_by: Mapped[str] = mapped_column(String(36), nullable=False, default="anonymous")
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_message: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job | None] = relationship()


class ImportJob(Base):
    __tablename__ = "import_jobs"
    __table_args__ = (Index("idx_import_jobs_status_created", "import_status", "created_at"),
                      Index("idx_import_jobs_job", "job_id"))

    id: Mapped[uuid.UUID] = _pk()
    job_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("jobs.id", ondelete="SET NULL"))
    job_name: Mapped[str] = mapped_column(String(255), nullable=False)
    import_type: Mapped[str] = mapped_column(String(50), nullable=False)
    source_format: Mapped[str] = mapped_column(String(20), nullable=False)
    file_path: Mapped[str] = mapped_column(String(500), nullable=False)
    validation_status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    import_status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    progress_percent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    records_processed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    records_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    validation_errors: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    import_errors: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    created_by: Mapped[str] = mapped_column(String(36), nullable=False, default="anonymous")
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_message: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job | None] = relationship()


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("idx_audit_log_at", "at"),
        Index("idx_audit_log_resource", "resource_type", "resource_id"),
        Index("idx_audit_log_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    user_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    username: Mapped[str | None] = mapped_column(String(150))
    action: Mapped[str] = mapped_column(String(50), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(50), nullable=False)
    resource_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


# ------------------------------------------------------------------------ validation runs

RUN_STATUSES = ("pending", "processing", "aggregating", "completed", "partial", "failed", "cancelled")
RUN_TERMINAL = ("completed", "partial", "failed", "cancelled")
RUN_VIDEO_STATUSES = ("pending", "done", "failed", "cancelled")


class ValidationRun(Base):
    """One model configuration against a whole test set: a test session per video, then one aggregate."""

    __tablename__ = "validation_runs"
    __table_args__ = (Index("idx_validation_runs_project_created", "project_id", "created_at"),)

    id: Mapped[uuid.UUID] = _pk()
    project_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    model: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # What was asked: video selection, ground truth, detection config, evaluation parameters.
    request: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    baseline_run_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("validation_runs.id", ondelete="SET NULL"))
    gates: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    videos_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    videos_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    videos_failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    aggregation_job_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("jobs.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    gate_status: Mapped[str | None] = mapped_column(String(20))  # passed, failed, None before aggregation
    gate_results: Mapped[list[Any] | None] = mapped_column(JSONType)
    report_path: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ValidationRunVideo(Base):
    """A video of a run: its test session, and whether its matches are in (``done``) or why not."""

    __tablename__ = "validation_run_videos"
    __table_args__ = (
        UniqueConstraint("run_id", "video_id", name="uq_validation_run_videos_run_video"),
        Index("idx_validation_run_videos_test_session", "test_session_id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    run_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("validation_runs.id", ondelete="CASCADE"),
                                              nullable=False)
    video_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False)
    test_session_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("test_sessions.id", ondelete="CASCADE"),
                                                       nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    evaluation_job_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    matches_path: Mapped[str | None] = mapped_column(String(500))  # relative to STORAGE_DIR
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


MODEL_STATUSES = ("checking", "ready", "invalid")


class ModelVersion(Base):
    """One immutable version of an uploaded model: its file (by sha256) and how to run it.

    A check job loads the file and runs it once before anything may use it: ``checking``
    until then, ``ready`` or ``invalid`` (with ``reason``) after.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        CheckConstraint("status IN ('checking','ready','invalid')", name="ck_model_versions_status"),
    )

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    version: Mapped[str] = mapped_column(String(50), nullable=False)
    format: Mapped[str] = mapped_column(String(20), nullable=False)
    arch: Mapped[str | None] = mapped_column(String(100))
    # The model's own class names, indexed by the class ids it answers.
    classes: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    input_size: Mapped[int] = mapped_column(Integer, nullable=False, default=640)
    confidence_threshold: Mapped[float] = mapped_column(Float, nullable=False, default=0.3)
    nms_threshold: Mapped[float] = mapped_column(Float, nullable=False, default=0.45)
    label_map: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    storage_path: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="checking")
    reason: Mapped[str | None] = mapped_column(Text)
    check_job_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"
