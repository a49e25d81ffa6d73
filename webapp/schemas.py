"""Request and response schemas: validation at the edge and the OpenAPI document."""
from __future__ import annotations

import math

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from models import JOB_STATUSES, ROLES

NAME = validate.Length(min=1, max=255)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class FiniteFloat(fields.Float):
    """Floats without NaN or infinity (JSON allows neither, some clients send them anyway)."""

    def _validated(self, value):
        value = super()._validated(value)
        if value is not None and not math.isfinite(value):
            raise self.make_error("special")
        return value


# ------------------------------------------------------------------------------ common


class PageArgs(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
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
    camera_metadata = fields.Dict(keys=fields.String(), load_default=dict)
    labels = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                         validate=validate.Length(min=1, max=500))

    @validates("labels")
    def _unique_labels(self, value, **_kwargs):
        if len(set(value)) != len(value):
            raise ValidationError("labels must be unique")


class ProjectPatch(ProjectCreate):
    name = fields.String(validate=NAME)
    description = fields.String(validate=validate.Length(max=10000))
    camera_metadata = fields.Dict(keys=fields.String())


class ProjectOut(Schema):
    id = fields.UUID()
    name = fields.String()
    description = fields.String()
    camera_metadata = fields.Dict()
    labels = fields.List(fields.String())
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
    filename = fields.String()
    size_bytes = fields.Integer()
    checksum = fields.String()
    fps = fields.Float()
    frame_count = fields.Integer()
    width = fields.Integer()
    height = fields.Integer()
    duration = fields.Float()
    codec = fields.String()
    variable_frame_rate = fields.Boolean()
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
    crash_at_step = fields.Integer(validate=validate.Range(min=0),
                                   metadata={"description": "kill the worker process at this step (rehearsal)"})
