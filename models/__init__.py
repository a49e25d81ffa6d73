"""Database models, the session factory and migrations."""
from .db import Database, SchemaOutOfDate, check_schema, current_revision, head_revision, make_engine, migrate
from .entities import (
    DEFAULT_LABELS,
    JOB_STATUSES,
    MODEL_STATUSES,
    ROLES,
    RUN_TERMINAL,
    TERMINAL_STATUSES,
    AnnotationKeyframe,
    AnnotationSession,
    AuditLog,
    Base,
    DetectionEvent,
    ExportJob,
    ImportJob,
    Job,
    ModelVersion,
    Project,
    ProjectMember,
    ProjectRequirement,
    ProjectVideoAssignment,
    TestSession,
    User,
    ValidationRun,
    ValidationRunVideo,
    Video,
    VideoAnnotation,
    VideoCompatibilityCache,
)
from .types import utcnow

__all__ = [
    "DEFAULT_LABELS", "JOB_STATUSES", "ROLES", "TERMINAL_STATUSES", "AnnotationKeyframe", "AnnotationSession",
    "AuditLog", "Base", "Database", "DetectionEvent", "ExportJob", "ImportJob", "Job",
    "MODEL_STATUSES", "ModelVersion", "Project", "ProjectMember",
    "ProjectRequirement", "ProjectVideoAssignment", "RUN_TERMINAL", "SchemaOutOfDate", "TestSession", "User",
    "ValidationRun", "ValidationRunVideo", "Video",
    "VideoAnnotation", "VideoCompatibilityCache", "check_schema", "current_revision", "head_revision",
    "make_engine", "migrate", "utcnow",
]
