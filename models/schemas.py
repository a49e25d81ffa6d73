"""What the JSON columns of stored rows may hold: one definition for every way a row comes in.

The API's request schemas (``webapp.schemas``) are built from these fields, and an import
checks each row of a document with :func:`column_problems` before it writes anything, so a
value the API would refuse cannot reach the database through a file either (where every list
that serializes it would then fail).
"""
from __future__ import annotations

import json
import math
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate


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


class BoxSchema(StrictSchema):
    """Pixels, origin top-left; x2 > x1 and y2 > y1; must overlap the frame."""

    x1 = FiniteFloat(required=True)
    y1 = FiniteFloat(required=True)
    x2 = FiniteFloat(required=True)
    y2 = FiniteFloat(required=True)


_BOX = BoxSchema()


def _field_cap() -> int:
    from settings import cached_settings

    return cached_settings().max_json_field_bytes


class _Bounded:
    """Free-form JSON whose serialized size is at most ``MAX_JSON_FIELD_BYTES`` (a field error).

    The same cap holds whatever path a row comes in by: HTTP, Socket.IO or an import.
    """

    def _check_size(self, value: Any) -> Any:
        cap = _field_cap()
        try:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        except (TypeError, ValueError, RecursionError):
            raise ValidationError("must be plain JSON") from None
        if size > cap:
            raise ValidationError(f"holds {size} bytes as JSON; at most {cap} are allowed (MAX_JSON_FIELD_BYTES)")
        return value


class JSONObject(_Bounded, fields.Dict):
    """A JSON object with string keys (what every ``*_data``, ``metadata`` and ``config`` column holds)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("keys", fields.String())
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return self._check_size(super()._deserialize(value, attr, data, **kwargs))


class JSONValue(_Bounded, fields.Raw):
    """Any free-form JSON value (a requirement's value or weight), bounded in size."""

    def _deserialize(self, value, attr, data, **kwargs):
        return self._check_size(super()._deserialize(value, attr, data, **kwargs))


class Labels(fields.List):
    """A project's class labels: 1 to 500 distinct names of 1 to 100 characters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(validate=validate.Length(min=1, max=100)),
                         validate=validate.Length(min=1, max=500), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        out = super()._deserialize(value, attr, data, **kwargs)
        if len(set(out)) != len(out):
            raise ValidationError("labels must be unique")
        return out


class FrameData(JSONObject):
    """A keyframe's data: an object whose ``bounding_box``, when given, is a box."""

    def _deserialize(self, value, attr, data, **kwargs):
        out = super()._deserialize(value, attr, data, **kwargs)
        if out.get("bounding_box") is not None:
            try:
                _BOX.load(out["bounding_box"])
            except ValidationError as exc:
                raise ValidationError({"bounding_box": exc.messages}) from None
        return out


class Metrics(JSONObject):
    """A test session's evaluation state and results: an object of objects."""

    def _deserialize(self, value, attr, data, **kwargs):
        out = super()._deserialize(value, attr, data, **kwargs)
        for key in ("evaluation", "results"):
            if out.get(key) is not None and not isinstance(out[key], dict):
                raise ValidationError({key: ["Not a valid mapping type."]})
        return out


class _Columns(Schema):
    class Meta:
        unknown = EXCLUDE


class ProjectColumns(_Columns):
    camera_metadata = JSONObject(required=True)
    labels = Labels(required=True)


class MetadataColumns(_Columns):
    metadata = JSONObject(required=True)


class AnnotationColumns(_Columns):
    bounding_box = fields.Nested(BoxSchema, allow_none=True)
    keyframe_data = JSONObject(required=True)


class KeyframeColumns(_Columns):
    frame_data = FrameData(required=True)


class TestSessionColumns(_Columns):
    __test__ = False
    model = JSONObject(required=True)
    config = JSONObject(required=True)
    metrics = Metrics(allow_none=True)


#: The JSON columns of each section of a platform document, and the schema they pass.
COLUMN_SCHEMAS: dict[str, type[Schema]] = {
    "projects": ProjectColumns, "assignments": MetadataColumns, "annotation_sessions": MetadataColumns,
    "annotations": AnnotationColumns, "keyframes": KeyframeColumns, "test_sessions": TestSessionColumns,
}


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix, "; ".join(messages))]
    if isinstance(messages, list):
        return [p for m in messages for p in _flatten(m, prefix)]
    return [(prefix, str(messages))]


_LOADERS = {section: schema() for section, schema in COLUMN_SCHEMAS.items()}
_BOX_KEYS = {"x1", "y1", "x2", "y2"}


def _plain_object(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str for k in value)


def _plain_box(box: Any) -> bool:
    return type(box) is dict and box.keys() == _BOX_KEYS and all(
        type(v) in (int, float) and math.isfinite(v) for v in box.values())


def _surely_valid(section: str, row: dict[str, Any]) -> bool:
    """A quick pass for the sections of millions of rows: True only for values the schemas accept
    (anything else goes through them, for the verdict and its messages)."""
    if section == "annotations":
        box = row.get("bounding_box")
        return _plain_object(row.get("keyframe_data")) and (box is None or _plain_box(box))
    if section == "keyframes":
        data = row.get("frame_data")
        return _plain_object(data) and (data.get("bounding_box") is None or _plain_box(data["bounding_box"]))
    return False


def column_problems(section: str, row: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` for each JSON column of ``row`` the API would refuse (empty: all fine).

    The field is the column, with the path inside it after a dot (``frame_data.bounding_box.x1``).
    """
    loader = _LOADERS.get(section)
    if loader is None or _surely_valid(section, row):
        return []
    try:
        loader.load({name: row[name] for name in loader.fields if name in row})
    except ValidationError as exc:
        return [(field or "_schema", message) for field, message in _flatten(exc.messages)]
    return []


__all__ = ["COLUMN_SCHEMAS", "BoxSchema", "FiniteFloat", "FrameData", "JSONObject", "Labels", "StrictSchema",
           "column_problems"]
