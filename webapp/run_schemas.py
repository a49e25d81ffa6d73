"""Schemas of validation runs and video tags (request validation and the OpenAPI document)."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from evaluation.motchallenge import PROTOCOLS

from .schemas import MAX_FRAME, FiniteFloat, ModelField, PageArgs, StrictSchema

TAG = validate.Length(min=1, max=64)
RUN_STATUSES = ("processing", "aggregating", "completed", "partial", "failed", "cancelled")


class RangeIn(StrictSchema):
    min = FiniteFloat()
    max = FiniteFloat()


class ConditionField(fields.Field):
    """A measured condition: an exact value, or ``{"min", "max"}`` for a number."""

    def _deserialize(self, value, attr, data, **kwargs):
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

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list):
            if not value or len(value) > 5000:
                raise ValidationError("between 1 and 5000 video ids")
            return {"ids": [fields.UUID().deserialize(v) for v in value]}
        if isinstance(value, dict) and set(value) == {"filter"} and isinstance(value["filter"], dict):
            return {"filter": VideoFilterIn().load(value["filter"])}
        raise ValidationError('a list of video ids or {"filter": {...}}')


class GroundTruthField(fields.Field):
    """``"validated"`` (each video's validated annotation session) or ``{video_id: annotation_session_id}``."""

    def _deserialize(self, value, attr, data, **kwargs):
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
    def _one_selection(self, data, **_kwargs):
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


class CompareArgs(StrictSchema):
    ids = fields.String(required=True, metadata={"description": "two run ids: a,b (b is compared with a)"})


class RunCompareOut(Schema):
    ids = fields.List(fields.String())
    baseline = fields.String()
    candidate = fields.String()
    comparison = fields.Dict(metadata={"description": "per headline metric: baseline, candidate, difference, "
                                                      "paired interval, verdict; per class, slice and video"})


class VideoPatch(StrictSchema):
    tags = fields.List(fields.String(validate=TAG), required=True, validate=validate.Length(max=100))
