"""``vru``: the platform from a shell or a CI pipeline.

Exit codes a pipeline can act on:
  0  done (and every gate passed)
  1  a validation run's gates failed
  2  usage or input error (a bad option, a refused file, a missing or expired login)
  3  the platform or a job failed (unreachable, 5xx, a job that failed or was cancelled)

Human tables by default; ``--json`` prints the API's objects for scripts.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import config
from .api import Client
from .errors import JobFailed, PlatformError, Unauthorized, Unavailable

EXIT_OK, EXIT_GATES_FAILED, EXIT_INPUT, EXIT_PLATFORM = 0, 1, 2, 3

#: API field → the option of this command line that sets it (for error messages).
FIELD_OPTIONS = {
    "project_id": "--project", "video_id": "--video", "session_id": "--session", "test_session_id": "--test-session",
    "source_format": "--format", "format": "--format", "import_type": "--type", "export_type": "--type",
    "label_map": "--label-map", "on_error": "--on-error", "model": "--model", "name": "--name",
    "labels": "--label", "gates": "--gates", "baseline_run_id": "--baseline", "videos": "--video",
    "ground_truth": "--ground-truth", "evaluation": "--iou/--score-threshold/--class", "file": "FILE",
    "username": "--username", "password": "--password-stdin", "default_label": "--default-label",
}

err = Console(stderr=True)
out = Console()


class State:
    def __init__(self, url: str | None, token: str | None, as_json: bool) -> None:
        self.url, self.token = config.resolve(url, token)
        self.as_json = as_json

    def client(self, need_token: bool = True) -> Client:
        if need_token and not self.token:
            fail(EXIT_INPUT, "not logged in: run `vru login --url URL --username NAME` or set VRU_TOKEN")
        return Client(self.url, self.token)


def fail(code: int, message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


def _fields(details: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """Flatten ``{"json": {"project_id": ["..."]}}`` into (field, message) pairs."""
    if isinstance(details, dict):
        for key, value in details.items():
            name = key if key not in ("json", "form", "query", "files") else ""
            yield from _fields(value, f"{prefix}.{name}".strip(".") if name else prefix)
    elif isinstance(details, list):
        for value in details:
            if isinstance(value, str):
                yield prefix, value
            else:
                yield from _fields(value, prefix)
    elif details is not None:
        yield prefix, str(details)


def explain(exc: PlatformError) -> NoReturn:
    """Print the platform's message, each field error with the option that fixes it, and exit."""
    if isinstance(exc, JobFailed):
        job = exc.job
        fail(EXIT_PLATFORM, f"job {job.get('id')} ({job.get('kind')}) {job.get('status')}: "
                            f"{job.get('error') or exc.message}")
    if isinstance(exc, Unauthorized):
        fail(EXIT_INPUT, f"{exc.message} — log in again with `vru login --username NAME` (or set VRU_TOKEN)")
    lines = [exc.message]
    for field, message in _fields(exc.field_errors()):
        top = field.split(".")[0]
        option = FIELD_OPTIONS.get(top)
        lines.append(f"  {field or 'request'}: {message}" + (f"  (set it with {option})" if option else ""))
    if isinstance(exc, Unavailable) or exc.status == 0 or exc.status >= 500:
        fail(EXIT_PLATFORM, "\n".join(lines))
    fail(EXIT_INPUT, "\n".join(lines))


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the client's typed errors into messages and exit codes."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PlatformError as exc:
            explain(exc)
        except TimeoutError as exc:
            fail(EXIT_PLATFORM, str(exc))
        except OSError as exc:
            fail(EXIT_INPUT, f"{exc.filename or ''}: {exc.strerror or exc}")

    return wrapper


def emit(state: State, data: Any, table: Callable[[Any], Table | str] | None = None) -> None:
    if state.as_json or table is None:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    rendered = table(data)
    if isinstance(rendered, str):
        out.print(rendered, highlight=False)
    else:
        out.print(rendered)


def rows_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Table:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    return table


def _bytes_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TaskProgressColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


def _job_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[stage]}"), console=err, transient=False)


def wait_jobs(state: State, api: Client, jobs: dict[str, str], timeout: float | None = None) -> dict[str, Any]:
    """Wait for jobs with a bar each (live over Socket.IO, polling when refused); raise JobFailed."""
    if state.as_json:
        return api.jobs.wait(list(jobs), timeout=timeout)
    with _job_progress() as bars:
        tasks = {job_id: bars.add_task(label, total=100, stage="") for job_id, label in jobs.items()}

        def update(event: dict[str, Any]) -> None:
            task = tasks.get(event["job_id"])
            if task is not None:
                bars.update(task, completed=float(event.get("progress_percent") or 0),
                            stage=f"{event.get('status', '')} {event.get('stage') or ''}".strip())

        return api.jobs.wait(list(jobs), on_update=update, timeout=timeout)


# ---------------------------------------------------------------------------------------- root


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="VRU_URL", help="The platform's base URL (default: the saved login, then "
              f"{config.DEFAULT_URL}).")
@click.option("--token", envvar="VRU_TOKEN", help="An access token (default: the saved login).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables.")
@click.version_option(package_name="vru-validation-platform", prog_name="vru")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
    """Validate detection models on video: upload, import, run, compare, gate."""
    ctx.obj = State(url, token, as_json)


@cli.command()
@click.option("--username", "-u", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.pass_obj
@guarded
def login(state: State, username: str, password_stdin: bool) -> None:
    """Log in and keep the token in the user's config directory (mode 0600)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True)
    api = state.client(need_token=False)
    token = api.login(username, password)
    path = config.save({"url": state.url, "token": token, "username": username})
    if state.as_json:
        emit(state, {"url": state.url, "username": username, "config": str(path)})
    else:
        err.print(f"logged in to {state.url} as {username}; token saved in {path}", highlight=False)


@cli.command()
@click.pass_obj
@guarded
def logout(state: State) -> None:
    """Revoke the saved token and forget it."""
    if state.token:
        try:
            state.client().logout()
        except Unauthorized:
            pass  # already expired or revoked: forgetting it is all that is left
    saved = config.load()
    saved.pop("token", None)
    config.save(saved)
    err.print("logged out")


@cli.command()
@click.pass_obj
@guarded
def whoami(state: State) -> None:
    """The user the token belongs to."""
    me = state.client().me()
    emit(state, me, lambda m: f"{m['username']} ({m['role']}) at {state.url}")


# ---------------------------------------------------------------------------------------- projects


@cli.group()
def projects() -> None:
    """Projects: list, create, show."""


@projects.command("list")
@click.pass_obj
@guarded
def projects_list(state: State) -> None:
    items = list(state.client().projects.list())
    emit(state, items, lambda rows: rows_table("projects", rows, ["id", "name", "labels", "created_at"]))


@projects.command("create")
@click.argument("name")
@click.option("--label", "labels", multiple=True, help="A label of the project (repeat); default: the platform's.")
@click.option("--description", default="")
@click.pass_obj
@guarded
def projects_create(state: State, name: str, labels: tuple[str, ...], description: str) -> None:
    project = state.client().projects.create(name, labels=list(labels) or None, description=description)
    emit(state, project, lambda p: f"created project {p['name']}: {p['id']}")


@projects.command("show")
@click.argument("project_id")
@click.pass_obj
@guarded
def projects_show(state: State, project_id: str) -> None:
    emit(state, state.client().projects.get(project_id), None)


# ---------------------------------------------------------------------------------------- videos


@cli.group()
def videos() -> None:
    """Videos: upload, list."""


@videos.command("upload")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "project_id", help="The project the videos belong to.")
@click.pass_obj
@guarded
def videos_upload(state: State, files: tuple[Path, ...], project_id: str | None) -> None:
    """Upload video files, streamed: a bar per file and one overall."""
    api = state.client()
    total = sum(f.stat().st_size for f in files)
    uploaded: list[dict[str, Any]] = []
    with _bytes_progress() as bars:
        overall = bars.add_task(f"{len(files)} file(s)", total=total)
        done_before = 0
        for f in files:
            task = bars.add_task(f.name, total=f.stat().st_size)

            def progress(done: int, _total: int, task: int = task, base: int = done_before) -> None:
                bars.update(task, completed=done)
                bars.update(overall, completed=base + done)

            uploaded.append(api.videos.upload(f, project_id=project_id, progress=progress))
            done_before += f.stat().st_size
    emit(state, uploaded, lambda rows: rows_table("uploaded", rows, ["id", "filename", "frame_count", "fps",
                                                                    "width", "height"]))


@videos.command("list")
@click.option("--project", "project_id")
@click.pass_obj
@guarded
def videos_list(state: State, project_id: str | None) -> None:
    items = list(state.client().videos.list(project_id=project_id))
    emit(state, items, lambda rows: rows_table("videos", rows, ["id", "filename", "frame_count", "fps", "project_id"]))


# ---------------------------------------------------------------------------------------- annotations


def _label_map(pairs: Sequence[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise click.BadParameter(f"{pair!r} is not SOURCE=LABEL", param_hint="--label-map")
        mapping[source] = target
    return mapping


@cli.group()
def annotations() -> None:
    """Annotations: import files other tools wrote."""


@annotations.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "source_format", required=True, help="csv, coco, yolo, cvat_video, mot, ...")
@click.option("--project", "project_id", required=True)
@click.option("--session", "session_id", help="Import into this annotation session.")
@click.option("--video", "video_id", help="Or create a session on this video.")
@click.option("--label-map", "label_map", multiple=True, help="SOURCE=LABEL, mapping the file's classes (repeat).")
@click.option("--on-error", type=click.Choice(["abort", "skip"]), default="abort", show_default=True)
@click.option("--validated", is_flag=True, help="Import as validated ground truth instead of pending.")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.pass_obj
@guarded
def annotations_import(state: State, file: Path, source_format: str, project_id: str, session_id: str | None,
                       video_id: str | None, label_map: tuple[str, ...], on_error: str, validated: bool,
                       wait: bool) -> None:
    """Import annotations; every warning and error the platform found is printed with its location."""
    api = state.client()
    extra = {"validation_status": "validated"} if validated else {}
    created = api.imports.create(file, import_type="annotations", source_format=source_format,
                                 project_id=project_id, session_id=session_id, video_id=video_id,
                                 label_map=_label_map(label_map), on_error=on_error, **extra)
    if not wait:
        emit(state, created, lambda i: f"import {i['id']} queued (job {i['job_id']})")
        return
    try:
        wait_jobs(state, api, {created["job_id"]: f"import {file.name}"})
    except JobFailed:
        report = api.imports.get(created["id"])
        _print_import_findings(report)
        raise
    report = api.imports.get(created["id"])
    emit(state, report, _import_summary)


def _print_import_findings(report: dict[str, Any]) -> None:
    for kind in ("validation_errors", "import_errors", "warnings"):
        for item in (report.get(kind) or [])[:50]:
            where = item.get("location") or item.get("line") or item.get("path") or ""
            err.print(f"  {kind.split('_')[0]}: {where} {item.get('message', item)}", highlight=False)


def _import_summary(report: dict[str, Any]) -> str:
    _print_import_findings(report)
    return (f"import {report['id']}: {report.get('status')}, {report.get('records_processed')} of "
            f"{report.get('records_total')} records; session {report.get('annotation_session_id')}")


# ---------------------------------------------------------------------------------------- detection


@cli.command()
@click.option("--project", "project_id", required=True)
@click.option("--video", "video_id", required=True)
@click.option("--model", required=True, help="A model name from `vru models`.")
@click.option("--threshold", type=float, help="Confidence threshold.")
@click.option("--name")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.pass_obj
@guarded
def detect(state: State, project_id: str, video_id: str, model: str, threshold: float | None, name: str | None,
           wait: bool) -> None:
    """Run a model on one video (a test session)."""
    api = state.client()
    spec: dict[str, Any] = {"name": model}
    if threshold is not None:
        spec["confidence_threshold"] = threshold
    ts = api.test_sessions.create(project_id, video_id, spec, name=name)
    if wait:
        wait_jobs(state, api, {ts["job_id"]: f"detect {model}"})
        ts = api.test_sessions.get(ts["id"])
    emit(state, ts, lambda t: f"test session {t['id']}: {t['status']}")


@cli.command("models")
@click.pass_obj
@guarded
def models_list(state: State) -> None:
    """The models the platform can run."""
    data = state.client().models.list()
    items = data.get("items", data) if isinstance(data, dict) else data
    emit(state, data, lambda _d: rows_table("models", items if isinstance(items, list) else [],
                                            ["name", "kind", "description"]))


# ---------------------------------------------------------------------------------------- export


@cli.command()
@click.option("--type", "export_type", required=True, help="annotations, results, project or full.")
@click.option("--format", "fmt", required=True)
@click.option("--project", "project_ids", multiple=True)
@click.option("--video", "video_ids", multiple=True)
@click.option("--session", "session_ids", multiple=True)
@click.option("--test-session", "test_session_ids", multiple=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Download the file here.")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.pass_obj
@guarded
def export(state: State, export_type: str, fmt: str, project_ids: tuple[str, ...], video_ids: tuple[str, ...],
           session_ids: tuple[str, ...], test_session_ids: tuple[str, ...], output: Path | None, wait: bool) -> None:
    """Start an export job; with --output, wait for it and download the file."""
    api = state.client()
    scope = {k: list(v) for k, v in (("project_ids", project_ids), ("video_ids", video_ids),
                                     ("annotation_session_ids", session_ids),
                                     ("test_session_ids", test_session_ids)) if v}
    exp = api.exports.create(export_type, fmt, **scope)
    if wait or output:
        wait_jobs(state, api, {exp["job_id"]: f"export {fmt}"})
        exp = api.exports.get(exp["id"])
    if output:
        _download(state, api, exp["id"], output)
    emit(state, exp, lambda e: f"export {e['id']}: {e['status']}" + (f", saved to {output}" if output else ""))


def _download(state: State, api: Client, export_id: str, output: Path) -> Path:
    if state.as_json:
        return api.exports.download(export_id, output)
    with _bytes_progress() as bars:
        task = bars.add_task(output.name, total=None)
        return api.exports.download(export_id, output,
                                    progress=lambda done, total: bars.update(task, completed=done, total=total or None))


@cli.command()
@click.argument("export_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@guarded
def download(state: State, export_id: str, output: Path) -> None:
    """Download a completed export's file (written whole or not at all)."""
    path = _download(state, state.client(), export_id, output)
    emit(state, {"export_id": export_id, "path": str(path), "bytes": path.stat().st_size},
         lambda d: f"saved {d['bytes']} bytes to {d['path']}")


# ---------------------------------------------------------------------------------------- jobs


@cli.group()
def jobs() -> None:
    """Jobs: show, wait, cancel."""


@jobs.command("show")
@click.argument("job_id")
@click.pass_obj
@guarded
def jobs_show(state: State, job_id: str) -> None:
    emit(state, state.client().jobs.get(job_id), None)


@jobs.command("wait")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--timeout", type=float)
@click.pass_obj
@guarded
def jobs_wait(state: State, job_ids: tuple[str, ...], timeout: float | None) -> None:
    """Wait until every job ends; exit 3 if one failed or was cancelled."""
    api = state.client()
    final = wait_jobs(state, api, {j: f"job {j[:8]}" for j in job_ids}, timeout)
    emit(state, final, lambda f: rows_table("jobs", list(f.values()), ["id", "kind", "status", "error"]))


@jobs.command("cancel")
@click.argument("job_id")
@click.pass_obj
@guarded
def jobs_cancel(state: State, job_id: str) -> None:
    emit(state, state.client().jobs.cancel(job_id), lambda j: f"job {j['id']}: {j['status']}")


# ---------------------------------------------------------------------------------------- validation runs


RUN_HEADLINE = ("ap", "ap50", "precision", "recall", "f1", "mota", "idf1", "hota", "latency_median", "latency_p90")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _interval(iv: Any) -> str:
    if not isinstance(iv, dict) or iv.get("low") is None:
        return ""
    return f"[{iv['low']:.3f}, {iv['high']:.3f}]"


def metrics_table(title: str, scope: dict[str, Any]) -> Table:
    """Headline numbers with their 95 % intervals and what they rest on."""
    counts = scope.get("counts") or {}
    rests = ", ".join(f"{v} {k}" for k, v in counts.items() if v is not None)
    table = Table(title=f"{title}" + (f"  ({rests})" if rests else ""), title_justify="left")
    for c in ("metric", "value", "95% interval"):
        table.add_column(c, justify="right" if c != "metric" else "left")
    headline, intervals = scope.get("headline") or {}, scope.get("intervals") or {}
    for metric in RUN_HEADLINE:
        if metric in headline:
            table.add_row(metric, _number(headline[metric]), _interval(intervals.get(metric)))
    return table


def gates_table(gates: Sequence[dict[str, Any]], status: str | None) -> Table:
    table = Table(title=f"gates: {status or 'none'}", title_justify="left")
    for c in ("#", "gate", "status", "value", "interval", "reason"):
        table.add_column(c)
    for g in gates:
        rule = {k: v for k, v in (g.get("gate") or {}).items()}
        table.add_row(str(g.get("index")), json.dumps(rule, separators=(",", ":")), str(g.get("status")),
                      _number(g.get("value")), _interval(g.get("interval")), str(g.get("reason") or ""))
    return table


def comparison_table(comparison: dict[str, Any], baseline: str, candidate: str) -> Table:
    """Per metric: both values, the paired difference, its interval and the verdict."""
    table = Table(title=f"{candidate} against {baseline}, paired over {comparison.get('videos')} videos",
                  title_justify="left")
    for c in ("metric", baseline, candidate, "difference", "95% interval", "verdict"):
        table.add_column(c)
    for metric, row in (comparison.get("metrics") or {}).items():
        table.add_row(metric, _number(row.get("baseline")), _number(row.get("candidate")),
                      _number(row.get("difference")), _interval(row.get("interval")), str(row.get("verdict")))
    return table


def _load_gates(path: Path | None) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path} is not YAML/JSON: {exc}", param_hint="--gates") from None
    if isinstance(data, dict) and "gates" in data:
        data = data["gates"]
    if not isinstance(data, list) or not all(isinstance(g, dict) for g in data):
        raise click.BadParameter(f"{path} must hold a list of gates (or {{gates: [...]}})", param_hint="--gates")
    return data


def _model_spec(model: str, threshold: float | None, options: Sequence[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": model}
    if threshold is not None:
        spec["confidence_threshold"] = threshold
    for pair in options:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--model-option")
        try:
            spec[key] = json.loads(raw)
        except ValueError:
            spec[key] = raw
    return spec


def watch_run(state: State, api: Client, run: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Live bars for the run and each of its videos until it ends."""
    if state.as_json:
        return api.validation_runs.wait(run["id"], timeout=timeout)
    names = {}
    try:
        names = {v["id"]: v["filename"] for v in api.videos.list(project_id=run["project_id"])}
    except PlatformError:
        pass
    with _job_progress() as bars:
        overall = bars.add_task(f"run {run.get('name') or run['id'][:8]}", total=100, stage="")
        per_video: dict[str, int] = {}

        def update(p: dict[str, Any]) -> None:
            counts = p.get("videos") or {}
            fps = p.get("fps") or 0.0
            eta = p.get("eta_seconds")
            stage = (f"{p.get('status')}  " + " ".join(f"{k} {v}" for k, v in counts.items() if v)
                     + (f"  {fps:.1f} fps" if fps else "") + (f"  eta {eta:.0f}s" if eta else ""))
            bars.update(overall, completed=float(p.get("progress_percent") or 0), stage=stage)
            for v in p.get("per_video") or []:
                vid = str(v.get("video_id"))
                if vid not in per_video:
                    per_video[vid] = bars.add_task(f"  {names.get(vid, vid[:8])}", total=100, stage="")
                bars.update(per_video[vid], completed=float(v.get("progress_percent") or 0),
                            stage=f"{v.get('status')} {v.get('stage') or ''}".strip())

        return api.validation_runs.wait(run["id"], on_update=update, timeout=timeout)


def run_outcome(state: State, api: Client, run: dict[str, Any]) -> int:
    """Print the metrics, intervals, slices and gates of an ended run; the exit code it earns."""
    status = run.get("status")
    if status in ("failed", "cancelled"):
        fail(EXIT_PLATFORM, f"validation run {run['id']} {status}: {run.get('error') or ''}".strip())
    body = api.validation_runs.metrics(run["id"])
    gate_status = body.get("gate_status")
    if state.as_json:
        emit(state, {"run": run, **body})
    else:
        metrics = body.get("metrics") or {}
        out.print(metrics_table(f"run {run.get('name') or run['id']}: {status}", metrics.get("overall") or {}))
        for name, scope in sorted((metrics.get("overall") or {}).get("per_class", {}).items()):
            if isinstance(scope, dict) and not scope.get("insufficient"):
                out.print(metrics_table(f"class {name}", scope))
        for key, values in sorted((metrics.get("slices") or {}).items()):
            for value, scope in sorted(values.items()):
                if isinstance(scope, dict) and scope.get("insufficient"):
                    out.print(f"slice {key}={value}: too little data to judge ({scope.get('reason')})",
                              highlight=False)
                elif isinstance(scope, dict):
                    out.print(metrics_table(f"slice {key}={value}", scope))
        missing = [v for v in (run.get("progress") or {}).get("per_video", []) if v.get("status") == "failed"]
        for v in missing:
            err.print(f"[yellow]missing video {v.get('video_id')}: {v.get('error')}[/]", highlight=False)
        if body.get("gates"):
            out.print(gates_table(body["gates"], gate_status))
        out.print(f"run {run['id']}: {status}, gates {gate_status or 'none'}", highlight=False)
    if gate_status == "failed":
        return EXIT_GATES_FAILED
    if status == "partial":
        err.print(f"validation run {run['id']} is partial: some videos failed (listed above)", highlight=False)
        return EXIT_PLATFORM
    return EXIT_OK


@cli.command()
@click.option("--project", "project_id", required=True)
@click.option("--model", required=True, help="A model name from `vru models`.")
@click.option("--threshold", type=float, help="The model's confidence threshold.")
@click.option("--model-option", "model_options", multiple=True, help="KEY=VALUE for the model spec (repeat).")
@click.option("--name")
@click.option("--video", "video_ids", multiple=True, help="Run on these videos (default: every video).")
@click.option("--tag", "tags", multiple=True, help="Or on the videos carrying every one of these tags.")
@click.option("--test-session", "test_session_ids", multiple=True, help="Or aggregate existing test sessions.")
@click.option("--iou", "iou_threshold", type=float, default=0.5, show_default=True)
@click.option("--score-threshold", type=float, help="The operating point's score threshold.")
@click.option("--class", "classes", multiple=True, help="Evaluate these classes only (repeat).")
@click.option("--protocol", help="Evaluation protocol (see the API).")
@click.option("--frame-stride", type=int, help="Run the model on every Nth frame.")
@click.option("--tracking/--no-tracking", default=None, help="Track detections (tracking metrics).")
@click.option("--gates", "gates_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A YAML or JSON file with a list of gates.")
@click.option("--baseline", "baseline_run_id", help="Compare with this run (gates with vs: baseline).")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 3).")
@click.pass_obj
@guarded
def run(state: State, project_id: str, model: str, threshold: float | None, model_options: tuple[str, ...],
        name: str | None, video_ids: tuple[str, ...], tags: tuple[str, ...], test_session_ids: tuple[str, ...],
        iou_threshold: float, score_threshold: float | None, classes: tuple[str, ...], protocol: str | None,
        frame_stride: int | None, tracking: bool | None, gates_file: Path | None, baseline_run_id: str | None,
        wait: bool, timeout: float | None) -> None:
    """Validate a model on a test set: live bars, then the metrics with intervals and the gates.

    Exit 0 when every gate passed, 1 when a gate failed, 3 when the run failed or is partial.
    """
    api = state.client()
    if video_ids and tags:
        raise click.UsageError("give --video or --tag, not both")
    videos: list[str] | dict[str, Any] | None = list(video_ids) or ({"filter": {"tags": list(tags)}} if tags else None)
    evaluation: dict[str, Any] = {"iou_threshold": iou_threshold}
    if score_threshold is not None:
        evaluation["score_threshold"] = score_threshold
    if classes:
        evaluation["classes"] = list(classes)
    if protocol:
        evaluation["protocol"] = protocol
    detection: dict[str, Any] = {}
    if frame_stride is not None:
        detection["frame_stride"] = frame_stride
    if tracking is not None:
        detection["enable_tracking"] = tracking
    created = api.validation_runs.create(
        project_id, _model_spec(model, threshold, model_options), name=name, videos=videos,
        test_session_ids=list(test_session_ids) or None, evaluation=evaluation, baseline_run_id=baseline_run_id,
        gates=_load_gates(gates_file), **detection)
    if not wait:
        emit(state, created, lambda r: f"validation run {r['id']} started on {r.get('videos_total')} video(s)")
        return
    final = watch_run(state, api, created, timeout)
    sys.exit(run_outcome(state, api, final))


@cli.command()
@click.argument("baseline")
@click.argument("candidate")
@click.pass_obj
@guarded
def compare(state: State, baseline: str, candidate: str) -> None:
    """Paired comparison of two runs on the same videos: each metric's difference, interval and verdict."""
    body = state.client().validation_runs.compare(baseline, candidate)
    if state.as_json:
        emit(state, body)
        return
    comparison = body.get("comparison", body)
    table = comparison_table(comparison, baseline, candidate)
    out.print(table)
    worse = [r for r in comparison.get("per_video") or [] if (r.get("differences") or {}).get("ap") is not None
             and r["differences"]["ap"] < 0][:10]
    if worse:
        out.print(rows_table("where AP got worse", [{"video_id": r["video_id"], **r["differences"]} for r in worse],
                             ["video_id", "ap", "ap50", "precision", "recall", "f1"]))


@cli.command()
@click.argument("run_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: run-<id>.html")
@click.pass_obj
@guarded
def report(state: State, run_id: str, output: Path | None) -> None:
    """Download a validation run's self-contained HTML report."""
    path = state.client().validation_runs.report(run_id, output or Path(f"run-{run_id}.html"))
    emit(state, {"run_id": run_id, "path": str(path)}, lambda d: f"report saved to {d['path']}")


@cli.group("runs")
def runs_group() -> None:
    """Validation runs: list, show, cancel."""


@runs_group.command("list")
@click.option("--project", "project_id")
@click.pass_obj
@guarded
def runs_list(state: State, project_id: str | None) -> None:
    items = list(state.client().validation_runs.list(project_id=project_id))
    emit(state, items, lambda rows: rows_table("validation runs", rows, ["id", "name", "status", "gate_status",
                                                                         "videos_total", "created_at"]))


@runs_group.command("show")
@click.argument("run_id")
@click.pass_obj
@guarded
def runs_show(state: State, run_id: str) -> None:
    api = state.client()
    run_ = api.validation_runs.get(run_id)
    if run_.get("status") in ("completed", "partial", "failed", "cancelled"):
        sys.exit(run_outcome(state, api, run_))
    emit(state, run_, lambda r: f"run {r['id']}: {r['status']}, {r.get('videos_done')}/{r.get('videos_total')} done")


@runs_group.command("cancel")
@click.argument("run_id")
@click.pass_obj
@guarded
def runs_cancel(state: State, run_id: str) -> None:
    emit(state, state.client().validation_runs.cancel(run_id), lambda r: f"run {r['id']}: {r['status']}")


def main(argv: Sequence[str] | None = None) -> None:
    """The console script's entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="vru", standalone_mode=True)
    except KeyboardInterrupt:
        fail(EXIT_PLATFORM, "interrupted")


if __name__ == "__main__":  # pragma: no cover
    main()
