"""Registered models on the workers: the check job (GPU queue), and a registered model as a ``ModelSpec``.

The check loads the uploaded file the way a detection job will and runs it on blank frames:
the version becomes ``ready``, or ``invalid`` with the reason, and nothing uses it before.
"""
from __future__ import annotations

import uuid
from typing import Any

from celery import Task
from sqlalchemy import select, update

from models import ModelVersion, utcnow
from models.model_files import ModelFileError, open_model_file
from vision.catalogue import ModelError, registered_name

from . import runtime
from .app import app
from .lifecycle import JobContext, run_job


def registered_fields(row: ModelVersion, storage_dir: str) -> dict[str, Any]:
    """What a model spec takes from a registered version: its checked file and its defaults."""
    try:
        path = open_model_file(row.storage_path, row.sha256, storage_dir)
    except ModelFileError as exc:
        raise ModelError(str(exc)) from None
    fields: dict[str, Any] = {"weights": str(path), "format": row.format, "model_classes": list(row.classes),
                              "input_size": row.input_size, "confidence_threshold": row.confidence_threshold,
                              "nms_threshold": row.nms_threshold}
    if row.arch:
        fields["arch"] = row.arch
    return fields


def resolve_registered(raw: dict[str, Any]) -> dict[str, Any]:
    """A request's model dict with a registered ``name:version`` filled in from the registry.

    The request's own thresholds and label map win over the version's defaults; the sha256
    recorded when the job was accepted must still be the version's.
    """
    ref = registered_name(raw.get("name", ""))
    if ref is None:
        return raw
    with runtime.database().Session() as db:
        row = db.scalar(select(ModelVersion).where(ModelVersion.name == ref[0], ModelVersion.version == ref[1]))
        if row is None:
            raise ModelError(f"model {raw['name']} is not registered (deleted?)")
        if raw.get("sha256") and raw["sha256"] != row.sha256:
            raise ModelError(f"model {raw['name']} is not the file this job was accepted with")
        fields = registered_fields(row, str(runtime.settings().storage_dir))
        default_map = dict(row.label_map or {})
    out = {**fields, **{k: v for k, v in raw.items() if k not in ("weights", "format", "arch", "model_classes")}}
    out["label_map"] = {**default_map, **(raw.get("label_map") or {})} or None
    return out


def model_check_body(ctx: JobContext) -> dict[str, Any]:
    from vision.detectors import check_detector

    model_id = uuid.UUID(ctx.params["model_version_id"])
    with runtime.database().Session() as db:
        row = db.get(ModelVersion, model_id)
        if row is None:
            raise ValueError(f"model version {model_id} no longer exists")
        ctx.progress(10, "loading model")
        reason, info = None, {}
        try:
            fields = registered_fields(row, str(runtime.settings().storage_dir))
            settings = runtime.settings()
            device = None if settings.detection_device == "auto" else settings.detection_device
            info = check_detector({"name": row.ref, "device": device, "half": settings.detection_half, **fields})
        except ModelError as exc:
            reason = str(exc)
        status = "invalid" if reason else "ready"
        db.execute(update(ModelVersion).where(ModelVersion.id == model_id)
                   .values(status=status, reason=reason, checked_at=utcnow()))
        db.commit()
    ctx.progress(100, status)
    return {"model": f"{row.name}:{row.version}", "status": status, "reason": reason, **info}


@app.task(name="jobs.model_check", bind=True)
def model_check(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, model_check_body)
