"""Models: the built-in catalogue and uploaded versions (``name:version``), checked on the GPU queue.

Nothing here imports torch: names are checked against :mod:`vision.catalogue` and the
registry table; only the check job on a worker loads a model.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Job, ModelVersion, ProjectMember
from models.model_files import delete_model_file, put_model_file
from tasks.dispatch import create_job
from vision.catalogue import DEFAULT_MODEL, TORCHVISION_ARCHS, list_models, registered_name
from vision.labels import VRU_CLASSES

from ..auth import WRITE_ROLES, Principal, current_user
from ..bodies import single_file
from ..db import audit, db_session
from ..errors import ApiError, validation_error
from ..extensions import limiter
from ..realtime import submit
from ..schemas import ModelUploadForm, ModelVersionOut

bp = Blueprint("model_registry", __name__, url_prefix="/api/models", description="Models")
#: Job states in which a job still needs its model file.
ACTIVE = ("pending", "processing")


def require_uploader(db: Session, user: Principal) -> None:
    """Administrators, and users who may write to at least one project, upload models."""
    if user.is_admin:
        return
    writer = db.scalar(select(ProjectMember.project_id).where(
        ProjectMember.user_id == user.id, ProjectMember.role.in_(WRITE_ROLES)).limit(1))
    if writer is None:
        raise ApiError(403, "only administrators and project writers upload models")


def _check_form(form: dict[str, Any]) -> None:
    if form["format"] == "torchvision":
        if form.get("arch") not in TORCHVISION_ARCHS:
            raise validation_error({"arch": "a torchvision model names its arch, one of "
                                            f"{sorted(TORCHVISION_ARCHS)}"}, "form")
    elif form.get("arch") is not None:
        raise validation_error({"arch": "only a torchvision model has an arch"}, "form")
    classes = form["classes"]
    if not (isinstance(classes, list) and 1 <= len(classes) <= 1000
            and all(isinstance(c, str) and 0 < len(c) <= 100 for c in classes)):
        raise validation_error({"classes": "a JSON list of 1 to 1000 class names of 1 to 100 characters"}, "form")
    label_map = form.get("label_map")
    if label_map is not None:
        if not (isinstance(label_map, dict) and len(label_map) <= 1000
                and all(isinstance(v, str) and 0 < len(v) <= 100 for v in label_map.values())):
            raise validation_error({"label_map": "a JSON object of model class name -> project label"}, "form")
        unknown = sorted(set(label_map) - set(classes))
        if unknown:
            raise validation_error({"label_map": f"not classes of this model: {unknown}"}, "form")


def find_version(db: Session, ref: str) -> ModelVersion | None:
    parts = registered_name(ref)
    if parts is None:
        return None
    return db.scalar(select(ModelVersion).where(ModelVersion.name == parts[0], ModelVersion.version == parts[1]))


def check_registered(db: Session, model: dict[str, Any]) -> bool:
    """For a ``name:version`` model: 422 unless that version is ready; records its sha256 in ``model``.

    False when ``model`` does not name a registered version (a built-in model).
    """
    if registered_name(model["name"]) is None:
        return False
    row = find_version(db, model["name"])
    if row is None:
        raise validation_error({"model": f"model {model['name']} is not registered"})
    if row.status != "ready":
        why = f": {row.reason}" if row.reason else " (its check has not finished)"
        raise validation_error({"model": f"model {model['name']} is {row.status}{why}"})
    if model.get("weights") is not None:
        raise validation_error({"model": "a registered model brings its own file; weights cannot be named"})
    model["sha256"] = row.sha256
    return True


def _version_or_404(db: Session, name: str, version: str) -> ModelVersion:
    row = find_version(db, f"{name}:{version}")
    if row is None:
        raise ApiError(404, "model version not found")
    return row


def _registered_item(row: ModelVersion) -> dict[str, Any]:
    """A registered version in the catalogue's shape; ``name`` is what a test session names (name:version)."""
    return {**ModelVersionOut().dump(row), "name": row.ref, "weights_present": row.status == "ready",
            "weights_file": None, "registered": True}


@bp.route("", methods=["GET"])
def list_all() -> dict[str, Any]:
    """Built-in models (and the weight file each missing one needs), then every registered version."""
    db = db_session()
    current_user()
    builtin = [{**m, "registered": False} for m in list_models(current_app.config["SETTINGS"].model_dir)]
    rows = db.scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.created_at)).all()
    return {"items": builtin + [_registered_item(r) for r in rows], "default": DEFAULT_MODEL,
            "classes": list(VRU_CLASSES)}


@bp.route("", methods=["POST"])
@limiter.limit(lambda: current_app.config["SETTINGS"].rate_limit_upload)
@bp.response(202, ModelVersionOut)
def upload() -> tuple[ModelVersion, int, dict[str, str]]:
    """Upload a model version (multipart: ``file`` plus the form fields); a check job is queued.

    The version is ``checking`` until a GPU-queue worker has loaded it and run it on blank
    frames, then ``ready`` or ``invalid`` with the reason. A name:version is never replaced.
    """
    db, user = db_session(), current_user()
    require_uploader(db, user)
    try:
        form = ModelUploadForm().load(request.form.to_dict())
    except ValidationError as exc:
        raise validation_error(exc.messages, "form") from None
    _check_form(form)
    part = single_file()
    if find_version(db, f"{form['name']}:{form['version']}") is not None:
        raise ApiError(409, f"model {form['name']}:{form['version']} exists; versions are immutable")
    part.stream.flush()
    if Path(part.stream.name).stat().st_size == 0:
        raise validation_error({"file": "empty file"}, "files")
    storage = current_app.config["STORAGE_DIR"]
    model_id = uuid.uuid4()
    key, sha256, size = put_model_file(part.stream.name, model_id, storage, move=True)
    row = ModelVersion(id=model_id, name=form["name"], version=form["version"], format=form["format"],
                       arch=form.get("arch"), classes=form["classes"], input_size=form["input_size"],
                       confidence_threshold=form["confidence_threshold"], nms_threshold=form["nms_threshold"],
                       label_map=form.get("label_map"), sha256=sha256, size_bytes=size, storage_path=key,
                       status="checking", created_by=user.id)
    try:
        db.add(row)
        db.flush()
        job = create_job(db, "model_check", {"model_version_id": str(model_id), "model": row.ref},
                         created_by=user.id)
        row.check_job_id = job.id
        audit(db, "create", "model_version", model_id, {"model": row.ref, "sha256": sha256, "size_bytes": size})
        submit(db, job)
    except IntegrityError:  # the same name:version uploaded at the same moment
        db.rollback()
        delete_model_file(key, storage)
        raise ApiError(409, f"model {form['name']}:{form['version']} exists; versions are immutable") from None
    except BaseException:
        delete_model_file(key, storage)
        raise
    return row, 202, {"Location": f"/api/models/{row.name}/{row.version}"}


@bp.route("/<name>/<version>", methods=["GET"])
@bp.response(200, ModelVersionOut)
def get_version(name: str, version: str) -> ModelVersion:
    current_user()
    return _version_or_404(db_session(), name, version)


def jobs_using(db: Session, row: ModelVersion) -> list[str]:
    """Ids of pending or running jobs that need this version's file."""
    out = []
    for job in db.scalars(select(Job).where(Job.status.in_(ACTIVE), Job.kind.in_(("detection", "model_check")))):
        model = (job.params or {}).get("model")
        name = model.get("name") if isinstance(model, dict) else model
        if name == row.ref or (job.params or {}).get("model_version_id") == str(row.id):
            out.append(str(job.id))
    return out


@bp.route("/<name>/<version>", methods=["DELETE"])
@bp.response(204)
def delete_version(name: str, version: str) -> None:
    """Delete a version (its uploader or an administrator); 409 while a pending or running job uses it."""
    db, user = db_session(), current_user()
    row = _version_or_404(db, name, version)
    if not user.is_admin and row.created_by != user.id:
        raise ApiError(403, "only its uploader or an administrator deletes a model version")
    using = jobs_using(db, row)
    if using:
        raise ApiError(409, f"model {row.ref} is used by pending or running jobs", details={"job_ids": using})
    key = row.storage_path
    audit(db, "delete", "model_version", row.id, {"model": row.ref, "sha256": row.sha256})
    db.delete(row)
    db.commit()
    delete_model_file(key, current_app.config["STORAGE_DIR"])
    return None
