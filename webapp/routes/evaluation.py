"""Model validation over HTTP: evaluate a test session, read its metrics and report, compare sessions.

``POST /api/test-sessions/<id>/evaluate`` queues an evaluation job on the CPU pool (another
IoU threshold or class subset is simply another job; detection is not rerun).
``GET …/metrics`` answers the state of the latest evaluation and the numbers of the latest
completed one. ``GET …/report`` adds the plots: each as base64 PNG inline and as a URL to
``GET …/report/<plot>.png`` (``?embed=false`` leaves the base64 out). ``GET
/api/test-sessions/compare?ids=a,b`` puts evaluated sessions of the same video and ground truth
side by side, with each value's difference to the first session.
"""
from __future__ import annotations

import base64
import uuid
from typing import Any

from flask import Response, current_app, url_for
from flask_smorest import Blueprint
from sqlalchemy import select

from evaluation.session import compare_metrics
from models import AnnotationSession, Job, TestSession, Video
from storage import NotFound, store
from tasks.evaluation import EvaluationError, ground_truth_basis, plot_key, queue_evaluation

from ..auth import current_user, get_or_404, get_project_for
from ..db import audit, db_session
from ..errors import ApiError, validation_error
from ..realtime import submit
from ..schemas import MAX_COMPARE, BasisArgs, EvaluateIn, JobOut, ReportArgs, SessionCompareArgs
from ..timelines import video_timeline

bp = Blueprint("evaluation", __name__, url_prefix="/api/test-sessions", description="Model validation")

PLOT_NAMES = ("pr_curves", "confusion_matrix", "latency_histogram")
ACTIVE = ("pending", "processing")


def _state(ts: TestSession) -> dict[str, Any]:
    """The latest evaluation request (its job and parameters) with its job's status and error:
    the jobs row is their one source."""
    request = (ts.metrics or {}).get("evaluation") or {}
    if not request.get("job_id"):
        return {"status": "not_evaluated", "job_id": None}
    state = {k: v for k, v in request.items() if k not in ("status", "error")}  # rows written before
    job = db_session().get(Job, uuid.UUID(request["job_id"]))
    if job is None:
        state.update(status="failed", error="the evaluation job no longer exists")
    else:
        state.update(status=job.status, error=job.error, updated_at=job.updated_at.isoformat())
    return state


def _results(ts: TestSession) -> dict[str, Any] | None:
    return (ts.metrics or {}).get("results")


def _basis(ts: TestSession, include_pending: bool, classes: list[str] | None) -> dict[str, Any]:
    db = db_session()
    video = db.get(Video, ts.video_id)
    return ground_truth_basis(db, ts, video, video_timeline(video), include_pending, classes)


def refusal(basis: dict[str, Any] | None) -> dict[str, Any] | None:
    """Why precision and recall of an evaluation are not worth showing, and the ways out; None when
    they are (the numbers stay in ``metrics``: false positives still count)."""
    if not basis or not basis.get("empty"):
        return None
    counts = basis.get("annotations") or {}
    why = ("the ground truth has no box on the frames the model ran on"
           f" ({counts.get('validated', 0)} validated, {counts.get('pending', 0)} pending, "
           f"{counts.get('rejected', 0)} rejected annotation(s)"
           f"{', pending ones not counted' if not basis.get('include_pending') else ''})")
    return {"code": "empty_ground_truth", "message": f"No precision or recall: {why}.",
            "remedies": basis.get("remedies") or []}


def _stored_basis(ts: TestSession, results: dict[str, Any]) -> dict[str, Any]:
    """The basis the evaluation recorded; for results stored before it did, the basis now."""
    if results.get("basis") is not None:
        return results["basis"]
    params = results.get("parameters") or {}
    return _basis(ts, bool(params.get("include_pending")), params.get("classes"))


# ------------------------------------------------------------------------------ evaluate


@bp.route("/<uuid:test_session_id>/evaluate", methods=["POST"])
@bp.arguments(EvaluateIn)
@bp.response(202, JobOut)
def evaluate(data: dict[str, Any], test_session_id: uuid.UUID) -> tuple[Job, int, dict[str, str]]:
    """Queue an evaluation of the session's detections against its ground truth.

    ``iou_threshold`` (default 0.5) is the match threshold of the operating point, temporal and
    tracking metrics (COCO metrics always use 0.50:0.95); ``classes`` restricts the evaluation to
    these labels; ``include_pending`` also counts annotations not yet validated; ``score_threshold``
    overrides the session's confidence threshold as the operating point; ``protocol`` chooses
    the evaluation protocol (``motchallenge``: the benchmark's ignore rows and distractor classes,
    with ``benchmark`` and ``min_visibility``); ``voc_pixel_inclusive`` switches VOC AP to the
    devkit's integer-pixel areas.
    """
    db, user = db_session(), current_user()
    ts = get_or_404(TestSession, test_session_id, "test session", write=True)
    if ts.ground_truth_session_id is None:
        raise validation_error({"ground_truth_session_id":
                                "The test session has no ground-truth annotation session to evaluate against."})
    gt = db.get(AnnotationSession, ts.ground_truth_session_id)
    if gt is None or gt.video_id != ts.video_id:
        raise validation_error({"ground_truth_session_id":
                                "The ground-truth annotation session is missing or of another video."})
    if ts.status in ACTIVE:
        raise ApiError(409, f"the test session's detections are not complete (status {ts.status})")
    if "classes" in data:
        project = get_project_for(db, user, ts.project_id)
        unknown = sorted(set(data["classes"]) - {str(x) for x in project.labels or []})
        if unknown:
            raise validation_error({"classes": f"Not labels of this project: {', '.join(unknown)}."})
    try:
        job = queue_evaluation(db, ts, data, created_by=user.id)
    except EvaluationError as exc:
        raise ApiError(422, str(exc)) from None
    audit(db, "create", "job", job.id, {"kind": "evaluation", "test_session_id": str(ts.id)})
    return submit(db, job)


# ------------------------------------------------------------------------------ metrics and report


@bp.route("/<uuid:test_session_id>/metrics", methods=["GET"])
def get_metrics(test_session_id: uuid.UUID) -> dict[str, Any]:
    """State of the latest evaluation and the numbers of the latest completed one (``metrics`` is
    null until an evaluation has completed)."""
    ts = get_or_404(TestSession, test_session_id, "test session")
    results = _results(ts)
    basis = None
    if results is not None:
        basis = _stored_basis(ts, results)
        results = {k: v for k, v in results.items() if k != "plots"}
    return {"test_session_id": str(ts.id), "evaluation": _state(ts), "metrics": results, "basis": basis,
            "refusal": refusal(basis)}


@bp.route("/<uuid:test_session_id>/evaluation-basis", methods=["GET"])
@bp.arguments(BasisArgs, location="query")
def get_basis(args: dict[str, Any], test_session_id: uuid.UUID) -> dict[str, Any]:
    """What an evaluation with these parameters would rest on, now: the ground truth's annotations
    by review status, the objects, boxes and frames counted, the frames the model skipped; with
    ``refusal`` when precision and recall would mean nothing, and how to fix that."""
    ts = get_or_404(TestSession, test_session_id, "test session")
    classes = None
    if "classes" in args:
        classes = list(dict.fromkeys(c.strip() for c in args["classes"].split(",") if c.strip())) or None
    basis = _basis(ts, args["include_pending"], classes)
    return {"test_session_id": str(ts.id), "basis": basis, "refusal": refusal(basis)}


def plot_file(ts: TestSession, results: dict[str, Any], name: str) -> str | None:
    """Where the evaluation job that produced ``results`` wrote plot ``name`` for this session.

    The path is built from the session's id, the job id (a UUID) and a name of
    :data:`PLOT_NAMES`, never from a stored path; None when it cannot be built that way.
    """
    try:
        job_id = uuid.UUID(str(results.get("job_id")))
    except ValueError:
        return None
    if name not in PLOT_NAMES:
        return None
    return plot_key(ts.id, job_id, name)


def _plot_bytes(ts: TestSession, results: dict[str, Any], name: str) -> bytes:
    """The plot the evaluation job drew; drawn again from the stored numbers if its file is gone."""
    key = plot_file(ts, results, name)
    if key is not None:
        try:
            return store(current_app.config["STORAGE_DIR"]).read_bytes(key)
        except NotFound:
            pass
    from evaluation.report import render_plot

    try:
        return render_plot(name, results)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise ApiError(409, "the stored evaluation results cannot be drawn: evaluate again") from None


def _completed(ts: TestSession) -> dict[str, Any]:
    results = _results(ts)
    if results is None:
        raise ApiError(404, "no completed evaluation yet: POST /api/test-sessions/{id}/evaluate")
    return results


@bp.route("/<uuid:test_session_id>/report", methods=["GET"])
@bp.arguments(ReportArgs, location="query")
def get_report(args: dict[str, Any], test_session_id: uuid.UUID) -> dict[str, Any]:
    """The metrics plus the plots (PNG): per-class precision-recall curves, the confusion matrix
    with background, and the detection-latency histogram."""
    ts = get_or_404(TestSession, test_session_id, "test session")
    results = _completed(ts)
    plots = {}
    for name in PLOT_NAMES:
        entry: dict[str, Any] = {"content_type": "image/png",
                                 "url": url_for("evaluation.get_report_plot", test_session_id=ts.id, plot=name)}
        if args["embed"]:
            entry["data"] = base64.b64encode(_plot_bytes(ts, results, name)).decode("ascii")
        plots[name] = entry
    basis = _stored_basis(ts, results)
    return {"test_session_id": str(ts.id), "name": ts.name, "model": ts.model, "evaluation": _state(ts),
            "metrics": {k: v for k, v in results.items() if k != "plots"}, "plots": plots, "basis": basis,
            "refusal": refusal(basis)}


@bp.route("/<uuid:test_session_id>/report/<string:plot>.png", methods=["GET"])
def get_report_plot(test_session_id: uuid.UUID, plot: str) -> Response:
    """One plot of the report as ``image/png``."""
    ts = get_or_404(TestSession, test_session_id, "test session")
    if plot not in PLOT_NAMES:
        raise ApiError(404, f"unknown plot {plot!r}; known: {', '.join(PLOT_NAMES)}")
    return Response(_plot_bytes(ts, _completed(ts), plot), mimetype="image/png")


# ------------------------------------------------------------------------------ comparison


@bp.route("/compare", methods=["GET"])
@bp.arguments(SessionCompareArgs, location="query")
def compare(args: dict[str, Any]) -> dict[str, Any]:
    """Evaluated sessions side by side: same video, same ground truth and the same evaluation
    parameters (IoU threshold, classes, include_pending, protocol) are required, else 422. Each row has the
    values in the order of ``ids``, their ``differences`` to the first session and the ``best``
    index."""
    raw = [p.strip() for p in args["ids"].split(",") if p.strip()]
    ids: list[uuid.UUID] = []
    for part in raw:
        try:
            value = uuid.UUID(part)
        except ValueError:
            raise validation_error({"ids": f"Not a test session id: {part[:40]!r}."}, "query") from None
        if value not in ids:
            ids.append(value)
    if len(ids) > MAX_COMPARE:
        raise validation_error({"ids": f"Give at most {MAX_COMPARE} test session ids."}, "query")
    found = {ts.id: ts for ts in db_session().scalars(select(TestSession).where(TestSession.id.in_(ids)))}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ApiError(404, "test session not found", details={"ids": missing})
    sessions = [found[i] for i in ids]
    for project_id in dict.fromkeys(ts.project_id for ts in sessions):
        get_project_for(db_session(), current_user(), project_id)
    if len(ids) < 2:
        raise validation_error({"ids": "Give at least 2 distinct test session ids."}, "query")
    problems: dict[str, list[str]] = {}
    if len({ts.video_id for ts in sessions}) > 1:
        problems.setdefault("video_id", []).append("The test sessions are of different videos.")
    if len({ts.ground_truth_session_id for ts in sessions}) > 1 or sessions[0].ground_truth_session_id is None:
        problems.setdefault("ground_truth_session_id", []).append(
            "The test sessions must share one ground-truth annotation session.")
    not_evaluated = [str(ts.id) for ts in sessions if _results(ts) is None]
    if not_evaluated:
        problems.setdefault("ids", []).append(f"Not evaluated yet: {', '.join(not_evaluated)}.")
    if not problems:
        keys = ("iou_threshold", "classes", "include_pending", "protocol", "ground_truth_session_id")
        # evaluations stored before protocols existed followed the default one
        params = [{k: _results(ts)["parameters"].get(k, "default" if k == "protocol" else None) for k in keys}
                  for ts in sessions]
        for k in keys:
            if len({repr(p[k]) for p in params}) > 1:
                problems.setdefault(k, []).append(
                    "Evaluated with different values; evaluate again with the same parameters to compare.")
    if problems:
        raise validation_error(problems, "query", "these test sessions cannot be compared")
    results = [_results(ts) for ts in sessions]
    reference = 0
    if args.get("reference") is not None:
        if args["reference"] not in ids:
            raise validation_error({"reference": "The reference must be one of the compared sessions."}, "query")
        reference = ids.index(args["reference"])
    first = results[0]["parameters"]
    return {
        "ids": [str(i) for i in ids],
        "video_id": str(sessions[0].video_id),
        "ground_truth_session_id": str(sessions[0].ground_truth_session_id),
        "parameters": {**{k: first.get(k) for k in ("iou_threshold", "classes", "include_pending")},
                       "protocol": first.get("protocol", "default")},
        "sessions": [{"id": str(ts.id), "name": ts.name, "source": ts.source, "model": ts.model,
                      "evaluation_job_id": r.get("job_id"), "evaluated_at": r.get("evaluated_at"),
                      "score_threshold": r["parameters"].get("score_threshold"), "counts": r.get("counts")}
                     for ts, r in zip(sessions, results, strict=True)],
        "reference": reference,
        "warnings": frame_warnings(sessions),
        "metrics": compare_metrics(results, reference),
    }


def frame_warnings(sessions: list[TestSession]) -> list[dict[str, Any]]:
    """Sessions that ran on different frames (stride or range) are compared on different footage."""
    def frames_of(ts: TestSession) -> tuple[int, int, int | None]:
        config = ts.config or {}
        to = config.get("frame_to")
        return (max(1, int(config.get("frame_stride") or 1)), int(config.get("frame_from") or 0),
                None if to is None else int(to))

    seen = [frames_of(ts) for ts in sessions]
    if len(set(seen)) <= 1:
        return []
    def every(n: int) -> str:
        if n == 1:
            return "every frame"
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"every {n}{suffix} frame"

    described = "; ".join(f"{ts.name}: {every(s)} of frames {a}–{'the last' if b is None else b}"
                          for ts, (s, a, b) in zip(sessions, seen, strict=True))
    return [{"code": "different_frames", "message": "The sessions ran on different frames, so their numbers "
                                                    f"are not measured on the same footage ({described}).",
             "sessions": [{"id": str(ts.id), "frame_stride": s, "frame_from": a, "frame_to": b}
                          for ts, (s, a, b) in zip(sessions, seen, strict=True)]}]
