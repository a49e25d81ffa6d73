"""Request and response schemas: validation at the edge and the OpenAPI document."""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

import formats
from evaluation.motchallenge import BENCHMARKS, PROTOCOLS
from models import JOB_STATUSES, ROLES
from models.schemas import BoxSchema, FiniteFloat, JSONObject, JSONValue, Labels, StrictSchema
from tasks.transfer import EXPORT_TYPES, IMPORT_TYPES

from .uploads import display_name

NAME = validate.Length(min=1, max=255)
MAX_FRAME = 10**9  # keeps every integer inside what both databases store


# ------------------------------------------------------------------------------ common


class PageArgs(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "total": fields.Integer(),
        "page": fields.Integer(), "per_page": fields.Integer(),
    })


# ------------------------------------------------------------------------------ auth & users


class TokenIn(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=150))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class TokenOut(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class UserOut(Schema):
    id = fields.UUID()
    username = fields.String()
    role = fields.String()
    is_active = fields.Boolean()
    created_at = fields.DateTime()


class UserCreate(StrictSchema):
    username = fields.String(required=True, validate=[validate.Length(min=1, max=150),
                                                      validate.Regexp(r"^[A-Za-z0-9_.@-]+$")])
    password = fields.String(required=True, validate=validate.Length(min=8, max=1024))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class UserPatch(StrictSchema):
    password = fields.String(validate=validate.Length(min=8, max=1024))
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = fields.Boolean()


# ------------------------------------------------------------------------------ projects


class ProjectCreate(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=10000))
    camera_metadata = JSONObject(load_default=dict)
    labels = Labels()
    wanted_videos = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=1_000_000))


class ProjectPatch(ProjectCreate):
    name = fields.String(validate=NAME)
    description = fields.String(validate=validate.Length(max=10000))
    camera_metadata = JSONObject()


class ProjectOut(Schema):
    id = fields.UUID()
    name = fields.String()
    description = fields.String()
    camera_metadata = fields.Dict()
    labels = fields.List(fields.String())
    wanted_videos = fields.Integer(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    my_role = fields.String()


class MemberIn(StrictSchema):
    user_id = fields.UUID()
    username = fields.String(validate=validate.Length(min=1, max=150))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class MemberOut(Schema):
    project_id = fields.UUID()
    user_id = fields.UUID()
    username = fields.String()
    role = fields.String()


# ------------------------------------------------------------------------------ videos


class VideoOut(Schema):
    id = fields.UUID()
    project_id = fields.UUID(allow_none=True)
    # Stored as uploaded; shown without control or bidi characters.
    filename = fields.Function(lambda video: display_name(video.filename), metadata={"type": "string"})
    size_bytes = fields.Integer()
    checksum = fields.String()
    fps = fields.Float()
    frame_count = fields.Integer()
    width = fields.Integer()
    height = fields.Integer()
    duration = fields.Float()
    codec = fields.String()
    variable_frame_rate = fields.Boolean()
    tags = fields.List(fields.String())
    uploaded_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()


class VideoListArgs(PageArgs):
    project_id = fields.UUID()
    unassigned = fields.Boolean(metadata={"description": "only the videos in no project (that the caller may see)"})


class VideoUploadForm(StrictSchema):
    project_id = fields.UUID()


# ------------------------------------------------------------------------------ jobs


class JobOut(Schema):
    id = fields.UUID()
    kind = fields.String()
    status = fields.String()
    progress_percent = fields.Float()
    stage = fields.String()
    queue = fields.String()
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    params = fields.Dict()
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    project_id = fields.UUID(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    worker = fields.String(allow_none=True)
    cancel_requested = fields.Boolean()
    seq = fields.Integer()


class JobListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    kind = fields.String(validate=validate.Length(min=1, max=32))
    project_id = fields.UUID()


class ProbeIn(StrictSchema):
    queue = fields.String(required=True, validate=validate.OneOf(("gpu", "cpu")))
    steps = fields.Integer(load_default=10, validate=validate.Range(min=0, max=10000))
    step_seconds = FiniteFloat(load_default=0.5, validate=validate.Range(min=0, max=600))
    project_id = fields.UUID()
    crash_at_step = fields.Integer(validate=validate.Range(min=0, max=10000),
                                   metadata={"description": "kill the worker process at this step (rehearsal)"})


# ------------------------------------------------------------------------------ annotations

ANNOTATION_TYPES = ("temporal", "spatial", "behavioral")
SESSION_STATUSES = ("active", "paused", "completed")
VALIDATION_STATUSES = ("pending", "validated", "rejected")


class AnnotationSessionCreate(StrictSchema):
    project_id = fields.UUID(required=True)
    video_id = fields.UUID(required=True)
    session_name = fields.String(required=True, validate=NAME)
    annotation_type = fields.String(required=True, validate=validate.OneOf(ANNOTATION_TYPES))
    metadata = JSONObject(load_default=dict)


class AnnotationSessionPatch(StrictSchema):
    session_name = fields.String(validate=NAME)
    metadata = JSONObject()
    status = fields.String(validate=validate.OneOf(SESSION_STATUSES))


class AnnotationSessionOut(Schema):
    id = fields.UUID()
    project_id = fields.UUID()
    video_id = fields.UUID()
    annotator_id = fields.String()
    session_name = fields.String()
    annotation_type = fields.String()
    status = fields.String()
    start_time = fields.DateTime()
    end_time = fields.DateTime(allow_none=True)
    metadata = fields.Dict(attribute="meta")
    annotation_count = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class AnnotationSessionListArgs(PageArgs):
    project_id = fields.UUID()
    video_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(SESSION_STATUSES))
    annotator_id = fields.String(validate=validate.Length(max=36))


class AnnotationFields(StrictSchema):
    start_timestamp = FiniteFloat(required=True, validate=validate.Range(min=0))
    end_timestamp = FiniteFloat(required=True, validate=validate.Range(min=0))
    annotation_type = fields.String(required=True, validate=validate.OneOf(ANNOTATION_TYPES))
    class_label = fields.String(required=True, validate=validate.Length(min=1, max=100))
    bounding_box = fields.Nested(BoxSchema, allow_none=True, load_default=None)
    confidence = FiniteFloat(load_default=1.0, validate=validate.Range(min=0, max=1))
    annotator_notes = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=10000))
    keyframe_data = JSONObject(load_default=dict)


class AnnotationCreate(AnnotationFields):
    annotation_session_id = fields.UUID(required=True)
    video_id = fields.UUID(required=True)


class AnnotationPatch(StrictSchema):
    start_timestamp = FiniteFloat(validate=validate.Range(min=0))
    end_timestamp = FiniteFloat(validate=validate.Range(min=0))
    annotation_type = fields.String(validate=validate.OneOf(ANNOTATION_TYPES))
    class_label = fields.String(validate=validate.Length(min=1, max=100))
    bounding_box = fields.Nested(BoxSchema, allow_none=True)
    confidence = FiniteFloat(validate=validate.Range(min=0, max=1))
    annotator_notes = fields.String(allow_none=True, validate=validate.Length(max=10000))
    keyframe_data = JSONObject()
    base_version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), load_only=True)


class AnnotationOut(Schema):
    id = fields.UUID()
    annotation_session_id = fields.UUID()
    video_id = fields.UUID()
    start_timestamp = fields.Float()
    end_timestamp = fields.Float()
    annotation_type = fields.String()
    class_label = fields.String()
    bounding_box = fields.Dict(allow_none=True)
    confidence = fields.Float()
    annotator_notes = fields.String(allow_none=True)
    keyframe_data = fields.Dict()
    validation_status = fields.String()
    validated_by = fields.UUID(allow_none=True)
    validated_at = fields.DateTime(allow_none=True)
    validation_reason = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class AnnotationListArgs(PageArgs):
    session_id = fields.UUID()
    video_id = fields.UUID()
    time_from = FiniteFloat()
    time_to = FiniteFloat()
    frame_from = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    frame_to = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    class_label = fields.String()
    validation_status = fields.String(validate=validate.OneOf(VALIDATION_STATUSES))


class KeyframeCreate(StrictSchema):
    annotation_id = fields.UUID(metadata={"description": "the blueprint's body names the annotation; when given it "
                                                         "must be the one of the URL"})
    frame_number = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_FRAME))
    timestamp = FiniteFloat(validate=validate.Range(min=0))
    frame_data = JSONObject(required=True)
    screenshot_path = fields.String(allow_none=True, validate=validate.Length(max=500))


class KeyframePatch(StrictSchema):
    frame_number = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    timestamp = FiniteFloat(validate=validate.Range(min=0))
    frame_data = JSONObject()
    screenshot_path = fields.String(allow_none=True, validate=validate.Length(max=500))


class KeyframeOut(Schema):
    id = fields.UUID()
    annotation_id = fields.UUID()
    frame_number = fields.Integer()
    timestamp = fields.Float()
    frame_data = fields.Dict()
    screenshot_path = fields.String(allow_none=True)
    created_at = fields.DateTime()


class KeyframeEdits(StrictSchema):
    """Keyframe changes carried by a collaborative edit: set by frame number, delete by frame number."""

    keyframes = fields.List(fields.Nested(KeyframeCreate), load_default=list, validate=validate.Length(max=5000))
    delete_keyframes = fields.List(fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME)), load_default=list,
                                   validate=validate.Length(max=5000))


class SplitIn(StrictSchema):
    frame_number = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_FRAME),
                                  metadata={"description": "the first frame of the second track"})
    base_version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    new_id = fields.UUID(metadata={"description": "the second track's id (a retried split makes no third)"})


class MergeIn(StrictSchema):
    other_id = fields.UUID(required=True, metadata={"description": "the track merged into this one, then deleted"})
    base_version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    other_base_version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))


class SplitOut(Schema):
    before = fields.Nested(AnnotationOut)
    after = fields.Nested(AnnotationOut)


class BoxesArgs(StrictSchema):
    frame_from = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    frame_to = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))


class ValidateIn(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(("validated", "rejected")))
    reason = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=2000))
    force = fields.Boolean(load_default=False)


# ------------------------------------------------------------------------------ compatibility


class RequirementIn(StrictSchema):
    requirement_type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    requirement_value = JSONValue(required=True)
    weight = JSONValue(load_default=1.0)


class RequirementPatch(StrictSchema):
    requirement_type = fields.String(validate=validate.Length(min=1, max=50))
    requirement_value = JSONValue()
    weight = JSONValue()


class RequirementOut(Schema):
    id = fields.UUID()
    project_id = fields.UUID()
    requirement_type = fields.String()
    requirement_value = fields.Dict()
    weight = fields.Float()
    created_at = fields.DateTime()


class IntelligentIn(StrictSchema):
    candidate_videos = fields.List(fields.UUID(), validate=validate.Length(min=1, max=100000))
    threshold = FiniteFloat(load_default=0.6, validate=validate.Range(min=0, max=1))
    project_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=1000))


class AssignmentItem(StrictSchema):
    video_id = fields.UUID(required=True)
    compatibility_score = FiniteFloat(load_default=0.0, validate=validate.Range(min=0, max=1))
    assignment_reason = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    confidence = FiniteFloat(allow_none=True, load_default=None, validate=validate.Range(min=0, max=1))


class AssignmentsIn(StrictSchema):
    assignment_type = fields.String(load_default="manual", validate=validate.OneOf(("manual", "intelligent",
                                                                                    "automatic")))
    assignments = fields.List(fields.Nested(AssignmentItem), validate=validate.Length(min=1, max=10000))
    from_job = fields.UUID()


class AssignmentOut(Schema):
    id = fields.UUID()
    project_id = fields.UUID()
    video_id = fields.UUID()
    assignment_type = fields.String()
    compatibility_score = fields.Float()
    assignment_reason = fields.String(allow_none=True)
    assigned_by = fields.String()
    assigned_at = fields.DateTime()
    status = fields.String()
    metadata = fields.Dict(attribute="meta")


# ------------------------------------------------------------------------------ detection

class ModelIn(StrictSchema):
    """A model spec; a bare string is taken as ``{"name": ...}``."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    weights = fields.String(validate=validate.Length(min=1, max=255),
                            metadata={"description": "file name inside the model directory"})
    confidence_threshold = FiniteFloat(validate=validate.Range(min=0, max=1))
    nms_threshold = FiniteFloat(validate=validate.Range(min=0, max=1, min_inclusive=False))
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                          validate=validate.Length(min=1, max=100),
                          metadata={"description": "project labels to keep (default: all)"})
    label_map = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                            values=fields.String(validate=validate.Length(min=1, max=100)),
                            validate=validate.Length(max=1000),
                            metadata={"description": "model class name -> project label"})
    input_size = fields.Integer(validate=validate.Range(min=32, max=4096))
    half = fields.Boolean()

    def load(self, data: str | Mapping[str, Any] | Sequence[Mapping[str, Any]], *args: object,
             **kwargs: object) -> dict[str, Any]:
        if isinstance(data, str):
            data = {"name": data}
        return super().load(data, *args, **kwargs)


class ModelField(fields.Field):
    """Accepts ``"opencv/hog-people"`` or ``{"name": ..., ...}``; documented as the object form."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: object) -> dict[str, Any]:
        if not isinstance(value, (str, dict)):
            raise ValidationError("a model name or a model spec object")
        return ModelIn().load(value)


class TestSessionIn(StrictSchema):
    __test__ = False
    project_id = fields.UUID(required=True)
    video_id = fields.UUID(required=True)
    name = fields.String(validate=validate.Length(max=255))
    source = fields.String(load_default="detection", validate=validate.OneOf(("detection", "import")))
    model = ModelField(load_default=lambda: {"name": "opencv/hog-people"},
                       metadata={"description": "model name or spec {name, weights, confidence_threshold, "
                                                "nms_threshold, classes, label_map, input_size, half}"})
    batch_size = fields.Integer(load_default=4, validate=validate.Range(min=1, max=64))
    frame_stride = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))
    frame_from = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    frame_to = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    enable_tracking = fields.Boolean(load_default=False)
    track_buffer_seconds = FiniteFloat(load_default=1.0, validate=validate.Range(min=0, max=600))
    realtime = fields.Boolean(load_default=False)
    ground_truth_session_id = fields.UUID(allow_none=True)
    include_pending = fields.Boolean(load_default=False)


class TestSessionOut(Schema):
    __test__ = False
    id = fields.UUID()
    project_id = fields.UUID()
    video_id = fields.UUID()
    job_id = fields.UUID(allow_none=True)
    name = fields.String()
    source = fields.String()
    model = fields.Dict()
    config = fields.Dict()
    ground_truth_session_id = fields.UUID(allow_none=True)
    status = fields.String()
    metrics = fields.Dict(allow_none=True)
    summary = fields.Dict(allow_none=True)
    job = fields.Nested(JobOut, allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class TestSessionListArgs(PageArgs):
    __test__ = False
    project_id = fields.UUID()
    video_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))


class DetectionListArgs(PageArgs):
    per_page = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))
    frame_from = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    frame_to = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    class_label = fields.String(validate=validate.Length(min=1, max=100))
    track_id = fields.Integer(validate=validate.Range(min=0, max=2**31 - 1))


class DetectionOut(Schema):
    frame_number = fields.Integer()
    timestamp = fields.Float()
    detection_index = fields.Integer()
    class_label = fields.String()
    confidence = fields.Float()
    bbox = fields.List(fields.Float())
    track_id = fields.Integer(allow_none=True)


# ------------------------------------------------------------------------------ pages


UserPage = page_schema(UserOut, "UserPage")


ProjectPage = page_schema(ProjectOut, "ProjectPage")


MemberPage = page_schema(MemberOut, "MemberPage")


VideoPage = page_schema(VideoOut, "VideoPage")


JobPage = page_schema(JobOut, "JobPage")


AnnotationSessionPage = page_schema(AnnotationSessionOut, "AnnotationSessionPage")


AnnotationPage = page_schema(AnnotationOut, "AnnotationPage")


TestSessionPage = page_schema(TestSessionOut, "TestSessionPage")


DetectionPage = page_schema(DetectionOut, "DetectionPage")


# ------------------------------------------------------------------------------ audit


class AuditOut(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    user_id = fields.UUID(allow_none=True)
    username = fields.String(allow_none=True)
    action = fields.String()
    resource_type = fields.String()
    resource_id = fields.String(allow_none=True)
    details = fields.Dict()
    ip = fields.String(allow_none=True)


class AuditArgs(PageArgs):
    user_id = fields.UUID()
    action = fields.String(validate=validate.Length(max=50))
    resource_type = fields.String(validate=validate.Length(max=50))
    resource_id = fields.String(validate=validate.Length(max=64))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


AuditPage = page_schema(AuditOut, "AuditPage")


# ------------------------------------------------------------------------------ frames


MAX_WIDTH = 1920


DEFAULT_MAX_WIDTH = 1280


class FrameArgs(Schema):
    width = fields.Integer(validate=validate.Range(min=16, max=MAX_WIDTH),
                           metadata={"description": "scale to this width (height follows); default the "
                                                    f"video's width, at most {DEFAULT_MAX_WIDTH}"})


# ------------------------------------------------------------------------------ model validation


MAX_COMPARE = 20


class EvaluateIn(StrictSchema):
    iou_threshold = FiniteFloat(validate=validate.Range(min=0.0, max=1.0, min_inclusive=False))
    score_threshold = FiniteFloat(validate=validate.Range(min=0.0, max=1.0))
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                          validate=validate.Length(min=1, max=100))
    include_pending = fields.Boolean()
    protocol = fields.String(validate=validate.OneOf(PROTOCOLS),
                             metadata={"description": "default: every ground-truth row counts; motchallenge: "
                                                      "MOT16/17/20 rules (conf-0 rows and distractors ignored)"})
    benchmark = fields.String(validate=validate.OneOf(BENCHMARKS),
                              metadata={"description": "motchallenge: whose distractor classes (MOT15 none, "
                                                       "MOT16 and MOT17 the same, MOT20 more)"})
    min_visibility = FiniteFloat(validate=validate.Range(min=0.0, max=1.0),
                                 metadata={"description": "motchallenge: ground truth less visible is ignored"})
    voc_pixel_inclusive = fields.Boolean(metadata={"description": "VOC AP with the devkit's +1 pixel areas"})


class ReportArgs(StrictSchema):
    embed = fields.Boolean(load_default=True)


class SessionCompareArgs(StrictSchema):
    ids = fields.String(required=True, validate=validate.Length(min=1, max=40 * MAX_COMPARE))
    reference = fields.UUID(metadata={"description": "the session the differences are to (default: the first)"})


class BasisArgs(StrictSchema):
    include_pending = fields.Boolean(load_default=False)
    classes = fields.String(validate=validate.Length(min=1, max=10_000),
                            metadata={"description": "comma-separated labels (default: every label)"})


# ------------------------------------------------------------------------------ export and import


class ScopeIn(StrictSchema):
    project_ids = fields.List(fields.UUID(), load_default=list)
    video_ids = fields.List(fields.UUID(), load_default=list)
    annotation_session_ids = fields.List(fields.UUID(), load_default=list)
    test_session_ids = fields.List(fields.UUID(), load_default=list)
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    validation_status = fields.List(fields.String(validate=validate.OneOf(("pending", "validated", "rejected"))),
                                    load_default=list)
    time_from = FiniteFloat(validate=validate.Range(min=0))
    time_to = FiniteFloat(validate=validate.Range(min=0))

    @validates_schema
    def _range(self, data: dict[str, Any], **_kwargs: object) -> None:
        start, end = data.get("time_from"), data.get("time_to")
        if start is not None and end is not None and end < start:
            raise ValidationError("must not be before time_from", "time_to")


class ExportIn(StrictSchema):
    job_name = fields.String(required=True, validate=NAME)
    export_type = fields.String(required=True, validate=validate.OneOf(EXPORT_TYPES))
    format = fields.String(required=True, validate=validate.OneOf(formats.FORMATS))
    scope_filter = fields.Nested(ScopeIn, load_default=dict)
    include_images = fields.Boolean(load_default=True, metadata={
        "description": "yolo: put the frames in the dataset as JPEG (images/), so that it loads in other tools"})

    @validates_schema
    def _combination(self, data: dict[str, Any], **_kwargs: object) -> None:
        if data["export_type"] in ("project", "full") and data["format"] != "json":
            raise ValidationError("project and full exports are written in the platform's json format", "format")
        if data["export_type"] == "results" and data["format"] == "cvat_video":
            raise ValidationError("CVAT for video holds annotations, not results", "format")


class ExportOut(Schema):
    id = fields.UUID()
    job_id = fields.UUID(allow_none=True)
    job_name = fields.String()
    export_type = fields.String()
    format = fields.String()
    scope_filter = fields.Dict()
    status = fields.String()
    progress_percent = fields.Float()
    stage = fields.String(allow_none=True)
    file_size = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    download_count = fields.Integer()
    created_by = fields.String()
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    error_message = fields.String(allow_none=True)
    download_url = fields.String(allow_none=True)


class ImportForm(StrictSchema):
    job_name = fields.String(required=True, validate=NAME)
    import_type = fields.String(required=True, validate=validate.OneOf(IMPORT_TYPES))
    source_format = fields.String(required=True, validate=validate.OneOf(formats.FORMATS))
    project_id = fields.UUID()  # required except for project imports, which create their projects
    video_id = fields.UUID()
    session_id = fields.UUID()
    test_session_id = fields.UUID()
    source_video_id = fields.String(validate=validate.Length(min=1, max=255))
    on_error = fields.String(load_default="abort", validate=validate.OneOf(("abort", "skip")))
    label_map = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    add_missing_labels = fields.Boolean(load_default=False)
    default_label = fields.String(validate=validate.Length(min=1, max=100),
                                  metadata={"description": "the class of boxes the file gives none (MOT results, "
                                                           "det.txt, MOT15 ground truth)"})
    frame_map = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=1000)),
                            values=fields.Integer(validate=validate.Range(min=0)), metadata={
                                "description": "image or label file name -> video frame, where names carry no "
                                               "frame number (COCO, YOLO)"})
    validation_status = fields.String(load_default="pending", validate=validate.OneOf(("pending", "validated")))


class ImportOut(Schema):
    id = fields.UUID()
    job_id = fields.UUID(allow_none=True)
    job_name = fields.String()
    import_type = fields.String()
    source_format = fields.String()
    status = fields.String()
    validation_status = fields.String()
    import_status = fields.String()
    progress_percent = fields.Float()
    stage = fields.String(allow_none=True)
    records_processed = fields.Integer()
    records_total = fields.Integer()
    validation_errors = fields.List(fields.Dict())
    import_errors = fields.List(fields.Dict())
    result = fields.Dict(allow_none=True)
    annotation_session_id = fields.String(allow_none=True)
    test_session_id = fields.String(allow_none=True)
    project_ids = fields.List(fields.String(), allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    error_message = fields.String(allow_none=True)


ExportPage = page_schema(ExportOut, "ExportPage")


ImportPage = page_schema(ImportOut, "ImportPage")


# ------------------------------------------------------------------------------ validation runs and video tags

TAG = validate.Length(min=1, max=64)
RUN_STATUSES = ("processing", "aggregating", "completed", "partial", "failed", "cancelled")


class RangeIn(StrictSchema):
    min = FiniteFloat()
    max = FiniteFloat()


class ConditionField(fields.Field):
    """A measured condition: an exact value, or ``{"min", "max"}`` for a number."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: object) -> dict[str, Any] | str | int | float | bool:
        if isinstance(value, dict):
            return RangeIn().load(value)
        if isinstance(value, str | int | float | bool):
            return value
        raise ValidationError("a value or {min, max}")


class VideoFilterIn(StrictSchema):
    tags = fields.List(fields.String(validate=TAG), validate=validate.Length(max=50),
                       metadata={"description": "every one of these tags"})
    camera_metadata = fields.Dict(keys=fields.String(validate=TAG),
                                  metadata={"description": "the project's camera metadata has these values"})
    conditions = fields.Dict(keys=fields.String(validate=TAG), values=ConditionField(),
                             metadata={"description": "measured conditions (compatibility analysis): "
                                                      "value or {min, max}, e.g. day_night, brightness"})


class VideosField(fields.Field):
    """``[video ids]`` or ``{"filter": {...}}``."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: object) -> dict[str, Any]:
        if isinstance(value, list):
            if not value or len(value) > 5000:
                raise ValidationError("between 1 and 5000 video ids")
            return {"ids": [fields.UUID().deserialize(v) for v in value]}
        if isinstance(value, dict) and set(value) == {"filter"} and isinstance(value["filter"], dict):
            return {"filter": VideoFilterIn().load(value["filter"])}
        raise ValidationError('a list of video ids or {"filter": {...}}')


class GroundTruthField(fields.Field):
    """``"validated"`` (each video's validated annotation session) or ``{video_id: annotation_session_id}``."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: object) -> str | dict[uuid.UUID, uuid.UUID]:
        if value == "validated":
            return "validated"
        if isinstance(value, dict) and value:
            return {fields.UUID().deserialize(k): fields.UUID().deserialize(v) for k, v in value.items()}
        raise ValidationError('"validated" or {video_id: annotation_session_id}')


class RunEvaluationIn(StrictSchema):
    iou_threshold = FiniteFloat(load_default=0.5, validate=validate.Range(min=0, max=1, min_inclusive=False))
    score_threshold = FiniteFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                          validate=validate.Length(min=1, max=100), allow_none=True)
    protocol = fields.String(load_default="default", validate=validate.OneOf(PROTOCOLS),
                             metadata={"description": "as for a test session's evaluation"})
    include_pending = fields.Boolean(load_default=False)


class ValidationRunIn(StrictSchema):
    project_id = fields.UUID(required=True)
    name = fields.String(validate=validate.Length(max=255))
    model = ModelField(load_default=lambda: {"name": "opencv/hog-people"},
                       metadata={"description": "as for test sessions"})
    videos = VideosField(metadata={"description": 'video ids, or {"filter": {tags, camera_metadata, conditions}}; '
                                                  "default: every video of the project"})
    test_session_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=5000),
                                   metadata={"description": "existing test sessions (detected or imported) "
                                                            "instead of new detections"})
    ground_truth = GroundTruthField(load_default="validated")
    evaluation = fields.Nested(RunEvaluationIn, load_default=lambda: RunEvaluationIn().load({}))
    baseline_run_id = fields.UUID(allow_none=True)
    gates = fields.List(fields.Dict(), load_default=list, validate=validate.Length(max=100))
    batch_size = fields.Integer(load_default=4, validate=validate.Range(min=1, max=64))
    frame_stride = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))
    frame_from = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    frame_to = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    enable_tracking = fields.Boolean(load_default=False)
    track_buffer_seconds = FiniteFloat(load_default=1.0, validate=validate.Range(min=0, max=600))

    @validates_schema
    def _one_selection(self, data: dict[str, Any], **_kwargs: object) -> None:
        if "videos" in data and "test_session_ids" in data:
            raise ValidationError("give videos or test_session_ids, not both", "test_session_ids")


class RunVideoOut(Schema):
    video_id = fields.UUID()
    test_session_id = fields.UUID()
    status = fields.String()
    stage = fields.String()
    progress_percent = fields.Float()
    frames = fields.Integer()
    fps = fields.Float()
    error = fields.String(allow_none=True)
    detection_job_id = fields.String(allow_none=True)
    evaluation_job_id = fields.String(allow_none=True)


class RunProgressOut(Schema):
    run_id = fields.String()
    status = fields.String()
    gate_status = fields.String(allow_none=True)
    videos = fields.Dict(keys=fields.String(), values=fields.Integer())
    videos_total = fields.Integer()
    progress_percent = fields.Float()
    fps = fields.Float()
    eta_seconds = fields.Float(allow_none=True)
    aggregation_job_id = fields.String(allow_none=True)
    per_video = fields.List(fields.Nested(RunVideoOut))
    seq = fields.Integer()


class ValidationRunOut(Schema):
    id = fields.UUID()
    project_id = fields.UUID()
    name = fields.String()
    model = fields.Dict()
    request = fields.Dict()
    evaluation = fields.Dict()
    baseline_run_id = fields.UUID(allow_none=True)
    gates = fields.List(fields.Dict())
    status = fields.String()
    videos_total = fields.Integer()
    videos_done = fields.Integer()
    videos_failed = fields.Integer()
    aggregation_job_id = fields.UUID(allow_none=True)
    gate_status = fields.String(allow_none=True)
    gate_results = fields.List(fields.Dict(), allow_none=True)
    error = fields.String(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    progress = fields.Nested(RunProgressOut)


class ValidationRunListArgs(PageArgs):
    project_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))


class RunMetricsOut(Schema):
    run_id = fields.UUID()
    status = fields.String()
    gate_status = fields.String(allow_none=True)
    gates = fields.List(fields.Dict(), allow_none=True)
    metrics = fields.Dict(allow_none=True)
    comparison = fields.Dict(allow_none=True)


class RunCompareArgs(StrictSchema):
    ids = fields.String(required=True, metadata={"description": "two run ids: a,b (b is compared with a)"})


class RunCompareOut(Schema):
    ids = fields.List(fields.String())
    baseline = fields.String()
    candidate = fields.String()
    comparison = fields.Dict(metadata={"description": "per headline metric: baseline, candidate, difference, "
                                                      "paired interval, verdict; per class, slice and video"})


class VideoPatch(StrictSchema):
    tags = fields.List(fields.String(validate=TAG), required=True, validate=validate.Length(max=100))


ValidationRunPage = page_schema(ValidationRunOut, "ValidationRunPage")


# ------------------------------------------------------------------------------ review and pre-annotations

MAX_BULK = 5000


class ReviewArgs(StrictSchema):
    findings = fields.Boolean(load_default=True, metadata={"description": "run the consistency checks per track"})


class BulkValidateIn(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(("validated", "rejected")))
    annotation_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=MAX_BULK))
    class_label = fields.String(validate=validate.Length(min=1, max=100))
    frame_from = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    frame_to = fields.Integer(validate=validate.Range(min=0, max=MAX_FRAME))
    only_pending = fields.Boolean(load_default=True,
                                  metadata={"description": "leave annotations already decided as they are"})
    reason = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=2000))
    force = fields.Boolean(load_default=False, metadata={"description": "validate despite error findings"})


class PreAnnotateIn(StrictSchema):
    session_name = fields.String(validate=validate.Length(min=1, max=255))
    score_threshold = FiniteFloat(load_default=0.0, validate=validate.Range(min=0.0, max=1.0),
                                  metadata={"description": "detections below it are left out"})
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                          validate=validate.Length(min=1, max=100),
                          metadata={"description": "labels to keep (default: every project label)"})
    keyframe_iou = FiniteFloat(load_default=0.9, validate=validate.Range(min=0.05, max=1.0),
                               metadata={"description": "every interpolated box keeps at least this IoU with "
                                                        "the detected one"})
    min_track_length = fields.Integer(load_default=2, validate=validate.Range(min=1, max=1_000_000),
                                      metadata={"description": "shorter tracks (in detections) are left out"})
    max_missed_frames = fields.Integer(load_default=2, validate=validate.Range(min=0, max=1000),
                                       metadata={"description": "evaluated frames a track may be missed on "
                                                                "before it is marked outside"})


class _JsonText(fields.Field):
    """A multipart form field holding JSON text (a list or an object)."""

    def _deserialize(self, value: object, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: object) -> object:
        import json

        if not isinstance(value, str):
            raise ValidationError("JSON text")
        try:
            return json.loads(value)
        except ValueError:
            raise ValidationError("not valid JSON") from None


class ModelUploadForm(StrictSchema):
    """The fields of ``POST /api/models`` besides the file."""

    name = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                                                                 error="letters, digits, '.', '_' and '-'"))
    version = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$",
                                                                    error="letters, digits, '.', '_', '+', '-'"))
    format = fields.String(required=True, validate=validate.OneOf(("onnx", "torchvision", "torchscript")))
    arch = fields.String(validate=validate.Length(min=1, max=100),
                         metadata={"description": "torchvision architecture (format torchvision only)"})
    classes = _JsonText(required=True, metadata={"description": "JSON list: class names in output order"})
    input_size = fields.Integer(load_default=640, validate=validate.Range(min=16, max=4096))
    confidence_threshold = FiniteFloat(load_default=0.3, validate=validate.Range(min=0, max=1))
    nms_threshold = FiniteFloat(load_default=0.45, validate=validate.Range(min=0, max=1, min_inclusive=False))
    label_map = _JsonText(metadata={"description": "JSON object: model class name -> project label"})


class ModelVersionOut(Schema):
    id = fields.UUID()
    name = fields.String()
    version = fields.String()
    ref = fields.String(metadata={"description": "name:version, what test sessions and runs name"})
    format = fields.String()
    arch = fields.String(allow_none=True)
    classes = fields.List(fields.String())
    input_size = fields.Integer()
    confidence_threshold = fields.Float()
    nms_threshold = fields.Float()
    label_map = fields.Dict(allow_none=True)
    sha256 = fields.String()
    size_bytes = fields.Integer()
    status = fields.String()
    reason = fields.String(allow_none=True)
    check_job_id = fields.UUID(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    checked_at = fields.DateTime(allow_none=True)
