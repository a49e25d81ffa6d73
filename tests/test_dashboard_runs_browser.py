"""The dashboard's validation runs in a real browser (headless Chromium, as ``test_dashboard_browser``).

Three generated clips with validated ground truth and a detector of known output (the fixed ONNX
model of ``test_validation_runs``: its run has TP 36, FP 36, FN 12 at IoU 0.5, so recall 0.75).
The page refuses a bad gate with the server's field error, starts a run while the GPU-queue worker
is stopped (so the snapshot shows every video pending whatever the machine's speed), follows it
live to the end, shows the metrics with intervals, slices too small to say anything, the gates and
the report download; a second run against the first as baseline is then compared with it.
Screenshots go to ``var/test-artifacts/dashboard/runs-*.png``.
"""
from __future__ import annotations

import uuid

import pytest
from harness import wait_until
from test_dashboard_browser import (
    ARTIFACTS,
    _choose,
    _click,
    _console,
    _fill,
    _login_with_new_project,
    _shot,
    _state,
    browser,  # noqa: F401 - the fixture
)
from test_dashboard_browser import pytestmark as browser_marks
from test_validation_runs import BIKE, ELSEWHERE, FRAMES, PERSON, clip, export_fixed_detector, ground_truth, upload

pytestmark = browser_marks
DOWNLOADS = ARTIFACTS / "downloads"


def _attr(driver, css: str, name: str) -> str | None:
    """An attribute of an element the page may be redrawing (live updates replace the list's rows):
    None while the element is gone or stale, so a wait reads it again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.CSS_SELECTOR, css).get_attribute(name)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _counts(driver) -> dict[str, int]:
    """The counts the run panel shows, read in one script (the page cannot change in between)."""
    return driver.execute_script(
        "const out = {}; for (const k of ['pending', 'running', 'done', 'failed', 'cancelled']) "
        "out[k] = Number(document.getElementById('run-count-' + k).textContent); return out;")


def _start(driver, gates: str) -> None:
    from selenium.webdriver.common.by import By

    _fill(driver.find_element(By.ID, "run-gates"), gates)
    driver.find_element(By.ID, "run-submit").click()


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_validation_runs_in_the_dashboard(stack, browser, tmp_path):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By

    driver = browser
    find = driver.find_element
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    for old in DOWNLOADS.glob("validation-run-*.html"):
        old.unlink()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(DOWNLOADS)})

    project_id = _login_with_new_project(driver, stack, "runs-01-login")
    model = export_fixed_detector(stack.workdir / "models")
    suffix = uuid.uuid4().hex[:6]
    layout = {"a": (["rain"], [("pedestrian", PERSON)]), "b": (["rain", "night"], [("pedestrian", ELSEWHERE)]),
              "c": ([], [("pedestrian", PERSON), ("cyclist", BIKE)])}
    videos = {}
    for n, (key, (tags, objects)) in enumerate(layout.items()):
        video = upload(stack, project_id, clip(tmp_path / f"{key}-{suffix}.avi", FRAMES, 40 + 35 * n))
        assert stack.api("PATCH", f"/api/videos/{video['id']}", json={"tags": tags}).status_code == 200
        ground_truth(stack, project_id, video, objects)
        videos[key] = video

    find(By.CSS_SELECTOR, "#tabs button[data-tab=runs]").click()
    wait_until(lambda: len(find(By.ID, "run-video-list").find_elements(By.CSS_SELECTOR, "input")) == 3, 30,
               what="the project's videos in the run form")
    assert find(By.ID, "runs-empty").is_displayed()
    _choose(driver, "run-model", model, "the fixed detector")
    _fill(find(By.ID, "run-name"), "first")

    # -- a gate on an unknown metric: the server's field error shows beside the form, nothing starts
    _start(driver, '[{"metric": "speed", "min": 1}]')
    wait_until(lambda: find(By.ID, "run-form-errors").is_displayed(), 30, what="the field errors")
    fields = [li.get_attribute("data-field") for li in find(By.ID, "run-form-errors").find_elements(By.TAG_NAME, "li")]
    assert "gates.0.metric" in fields, fields
    assert "invalid" in find(By.ID, "run-gates").get_attribute("class")
    assert stack.api("GET", f"/api/validation-runs?project_id={project_id}").json()["total"] == 0
    _shot(driver, "runs-02-field-error")

    # -- start it with the GPU-queue worker stopped: the room's snapshot has every video pending
    stack.stop("gpu0")
    try:
        _start(driver, '[{"metric": "recall", "min": 0.7}]')
        wait_until(lambda: _state(driver, "runs.watching"), 30, what="the run opened")
        first = _state(driver, "runs.watching")
        wait_until(lambda: _state(driver, "runs.snapshots") > 0, 30, what="the room's snapshot")
        assert not find(By.ID, "run-form-errors").is_displayed()
        wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#run-videos-table tbody tr")) == 3, 30,
                   what="a row per video")
        assert _counts(driver) == {"pending": 3, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
        stages = {r.text for r in driver.find_elements(By.CSS_SELECTOR, "#run-videos-table td.stage")}
        assert stages == {"queued for detection"}, stages
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"#runs-table tr[data-run-id='{first}']"), 30,
                   what="the run in the list")
        assert find(By.CSS_SELECTOR, f"#runs-table tr[data-run-id='{first}']").text.count("0 / 3") == 1
        _shot(driver, "runs-03-pending")
    finally:
        stack.start_worker("gpu", "gpu0")

    # -- live to the end: every count the page shows came from the room's events
    seen: list[tuple[int, ...]] = [(3, 0, 0, 0, 0)]

    def follow():
        c = _counts(driver)
        key = (c["pending"], c["running"], c["done"], c["failed"], c["cancelled"])
        if not seen or seen[-1] != key:
            seen.append(key)
            if len(seen) == 2:  # the first change the room brought
                _shot(driver, "runs-04-live")
        return find(By.ID, "run-panel").get_attribute("data-metrics") == "loaded"

    wait_until(follow, 300, 0.2, "the run to end with its metrics shown")
    assert _state(driver, "runs.events") > 0, "no validation_run_progress event reached the page"
    assert len(seen) > 2 and seen[-1] == (0, 0, 3, 0, 0), seen
    assert all(sum(s) == 3 for s in seen), seen
    assert [s[2] for s in seen] == sorted(s[2] for s in seen), f"done went backwards: {seen}"
    assert find(By.ID, "run-panel").get_attribute("data-status") == "completed"
    assert find(By.ID, "run-bar").get_attribute("aria-valuenow") == "100.0"

    # -- the results: headline with intervals and what they rest on, gates, classes, slices, videos
    metrics = stack.api("GET", f"/api/validation-runs/{first}/metrics").json()
    overall = metrics["metrics"]["overall"]
    recall = find(By.CSS_SELECTOR, "#run-headline tr[data-metric=recall]").text
    iv = overall["intervals"]["recall"]
    assert overall["headline"]["recall"] == 0.75
    assert "0.750" in recall and f"{iv['low']:.3f} – {iv['high']:.3f}" in recall, recall
    assert "3 videos" in recall and "48 ground-truth boxes" in recall, recall
    assert "48 ground-truth boxes" in find(By.ID, "run-rests-on").text
    gate_row = find(By.CSS_SELECTOR, "#run-gates-table tbody tr")
    assert gate_row.get_attribute("data-status") == "passed" and "0.750" in gate_row.text, gate_row.text
    assert find(By.ID, "run-gate-status").text == "passed"
    classes = find(By.ID, "run-classes").text
    assert "pedestrian" in classes and "cyclist" in classes, classes
    too_small = [key for key, values in metrics["metrics"]["slices"].items()
                 for value, scope in values.items() if scope.get("insufficient")]
    assert too_small, metrics["metrics"]["slices"]
    insufficient = driver.find_elements(By.CSS_SELECTOR, "#run-slices tr.insufficient")
    assert len(insufficient) == sum(1 for values in metrics["metrics"]["slices"].values()
                                    for scope in values.values() if scope.get("insufficient"))
    assert all("too little data" in r.text for r in insufficient)
    per_video = driver.find_elements(By.CSS_SELECTOR, "#run-per-video tbody tr")
    assert {r.get_attribute("data-video-id") for r in per_video} == {v["id"] for v in videos.values()}
    assert any(videos["a"]["filename"] in r.text for r in per_video)
    driver.execute_script("document.getElementById('run-results').scrollIntoView()")
    _shot(driver, "runs-05-metrics")
    driver.execute_script("document.getElementById('run-slices').scrollIntoView()")
    _shot(driver, "runs-06-slices")

    # -- the report downloads
    find(By.ID, "run-report-link").click()
    report = DOWNLOADS / f"validation-run-{first}.html"
    wait_until(lambda: report.is_file() and report.stat().st_size > 0, 60, what="the downloaded report")
    assert _state(driver, "runs.reportDownloaded") == first
    assert "<html" in report.read_text(errors="replace").lower()
    dashboard = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.get(report.as_uri())
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete", 30, what="the report page")
    assert first in find(By.TAG_NAME, "h1").text, find(By.TAG_NAME, "h1").text
    _shot(driver, "runs-06b-report")
    driver.close()
    driver.switch_to.window(dashboard)

    # -- a second run over picked videos, the first as baseline; then the two compared
    driver.execute_script("document.getElementById('run-form').scrollIntoView()")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"#run-baseline option[value='{first}']"), 30,
               what="the first run offered as a baseline")
    _choose(driver, "run-baseline", first, "the baseline")
    _fill(find(By.ID, "run-name"), "second")
    _fill(find(By.ID, "run-score"), "0.65")
    find(By.ID, "run-all-videos").click()
    for key in "abc":
        _click(driver, f"#run-video-list input[value='{videos[key]['id']}']", "a video's box")
    _start(driver, '[{"metric": "ap50", "max_drop": 0.01, "vs": "baseline"}]')
    wait_until(lambda: _state(driver, "runs.watching") not in (None, first), 30, what="the second run opened")
    second = _state(driver, "runs.watching")
    assert stack.api("GET", f"/api/validation-runs/{second}").json()["baseline_run_id"] == first
    wait_until(lambda: find(By.ID, "run-panel").get_attribute("data-metrics") == "loaded", 300, 0.5,
               "the second run's metrics")
    gate_row = find(By.CSS_SELECTOR, "#run-gates-table tbody tr")
    assert "baseline" in gate_row.find_element(By.CSS_SELECTOR, "td.code").text
    _shot(driver, "runs-07-second")
    find(By.ID, "run-against-baseline").click()
    wait_until(lambda: _state(driver, "runs.compared"), 60, what="the comparison with its baseline")
    assert _state(driver, "runs.compared") == [first, second]
    driver.execute_script("window.dashboard.state.runs.compared = null;")

    for run_id in (first, second):
        _click(driver, f"#runs-table tr[data-run-id='{run_id}'] input[type=checkbox]", "a run's checkbox")
    find(By.ID, "runs-compare-button").click()
    wait_until(lambda: _state(driver, "runs.compared"), 60, what="the comparison")
    assert _state(driver, "runs.compared") == [first, second]
    cmp = stack.api("GET", f"/api/validation-runs/compare?ids={first},{second}").json()["comparison"]
    rows = driver.find_elements(By.CSS_SELECTOR, "#run-compare-table tbody tr")
    shown = {r.get_attribute("data-metric"): r for r in rows}
    assert "recall" in shown and "ap50" in shown, list(shown)
    assert shown["recall"].get_attribute("data-verdict") == cmp["metrics"]["recall"]["verdict"]
    assert f"{cmp['metrics']['recall']['candidate']:.3f}" in shown["recall"].text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#run-compare-videos tbody tr")) == 3
    _shot(driver, "runs-08-compare")

    # -- a third run cancelled while its videos wait for the stopped GPU-queue worker
    stack.stop("gpu0")
    try:
        driver.execute_script("document.getElementById('run-form').scrollIntoView()")
        _fill(find(By.ID, "run-name"), "third")
        _start(driver, "")
        wait_until(lambda: _state(driver, "runs.watching") not in (None, first, second), 30, what="the third run")
        third = _state(driver, "runs.watching")
        _click(driver, "#run-cancel", "the cancel button")
        wait_until(lambda: find(By.ID, "run-panel").get_attribute("data-status") == "cancelled", 30,
                   what="the run cancelled")
        wait_until(lambda: _counts(driver)["cancelled"] == 3, 30, what="every video cancelled")
        assert not find(By.ID, "run-cancel").is_displayed()
        wait_until(lambda: _attr(driver, f"#runs-table tr[data-run-id='{third}']", "data-status") == "cancelled",
                   30, what="the list showing the cancelled run")
        wait_until(lambda: _attr(driver, f"#runs-table tr[data-run-id='{third}'] input", "disabled"), 30,
                   what="the cancelled run's box disabled")
        assert stack.api("GET", f"/api/validation-runs/{third}").json()["status"] == "cancelled"
        _shot(driver, "runs-09-cancelled")
    finally:
        stack.start_worker("gpu", "gpu0")

    # -- another project: its own (empty) list and videos, nothing of the first left in the view
    find(By.ID, "new-project-name").send_keys(f"empty-{suffix}")
    find(By.CSS_SELECTOR, "#new-project-form button").click()
    wait_until(lambda: _state(driver, "project.id") not in (None, project_id), 30, what="the other project selected")
    wait_until(lambda: find(By.ID, "runs-empty").is_displayed(), 30, what="the other project's empty run list")
    wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, "#run-video-list input"), 30,
               what="the run form without the first project's videos")
    assert not find(By.ID, "run-panel").is_displayed()
    assert not driver.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")

    # nothing went wrong in the page but the one refusal asked for (the browser logs its 422)
    severe = [e for e in _console(driver) if e.get("level") == "SEVERE"]
    refused = [e for e in severe if e.get("source") == "network" and "/api/validation-runs - " in e["message"]
               and "status of 422" in e["message"]]
    assert len(refused) == 1 and len(severe) == 1, severe
