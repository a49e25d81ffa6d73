"""Request and response schemas: validation at the edge and the OpenAPI document."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from models import JOB_STATUSES, ROLES
from models.schemas import BoxSchema, FiniteFloat, JSONObject, JSONValue, Labels, StrictSchema

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


class ErrorDetail(Schema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()


class ErrorOut(Schema):
    error = fields.Nested(ErrorDetail)


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


class ProjectListArgs(PageArgs):
    pass


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

    def load(self, data, *args, **kwargs):
        if isinstance(data, str):
            data = {"name": data}
        return super().load(data, *args, **kwargs)


class ModelField(fields.Field):
    """Accepts ``"opencv/hog-people"`` or ``{"name": ..., ...}``; documented as the object form."""

    def _deserialize(self, value, attr, data, **kwargs):
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
