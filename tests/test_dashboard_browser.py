"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver`` packages) driven by Selenium against a stack started by the test.

Logs in, creates a project, uploads ``vtest.avi``, starts a detection with a ground truth, watches
the job's progress bar advance and boxes drawn on the viewer's canvas as events arrive, scrubs the
stored detections, opens the report and the annotation timeline. Screenshots (and the browser's
console log) are written under ``var/test-artifacts/dashboard/``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
from harness import ROOT, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "dashboard"
FRAME_TO = 99  # about 100 frames of 768x576 through HOG on the CPU: tens of seconds

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="headless browser test needs Debian's chromium and chromium-driver packages "
                              "(apt-get install chromium chromium-driver; `make system-deps` does it as root)"),
]


@pytest.fixture()
def browser():
    with chromium() as driver:
        yield driver


@contextlib.contextmanager
def chromium(name: str = ""):
    """A headless Chromium; its console log and last screenshot are kept under ``name``."""
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    driver.console_entries = []
    try:
        yield driver
    finally:
        try:
            (ARTIFACTS / f"{name}console.log").write_text("\n".join(json.dumps(e) for e in _console(driver)))
            driver.save_screenshot(str(ARTIFACTS / f"{name}last.png"))  # where it ended, passed or not
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        driver.quit()
        print(f"\ndashboard screenshots and console log: {ARTIFACTS}")


def _console(driver) -> list[dict]:
    """Every browser console entry so far (reading the log empties it, so keep them)."""
    driver.console_entries.extend(driver.get_log("browser"))
    return driver.console_entries


def _state(driver, expr: str):
    return driver.execute_script(f"return window.dashboard && window.dashboard.state.{expr};")


def _shot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _hue(colour: str) -> float:
    """The hue (degrees) of a ``#rrggbb`` colour."""
    import colorsys

    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def _visible(driver, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).is_displayed()


def _pedestrians_on_first_frame(video_file: Path) -> list[tuple[int, int, int, int]]:
    """Boxes for a plausible ground truth: OpenCV's people detector on frame 0, strongest first."""
    import cv2

    cap = cv2.VideoCapture(str(video_file))
    ok, image = cap.read()
    cap.release()
    assert ok
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    rects, weights = hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05)
    order = sorted(range(len(rects)), key=lambda i: -float(weights[i]))
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in (rects[i] for i in order[:3])]
    return boxes or [(400, 50, 460, 190), (20, 200, 90, 360)]


def _ground_truth(stack, project_id: str, video_id: str, video_file: Path) -> tuple[str, int]:
    """A validated annotation session of the uploaded video, over its first 1.5 s (annotation
    editing is not the dashboard's job; it only shows them)."""
    session = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project_id, "video_id": video_id, "session_name": "ground truth",
        "annotation_type": "spatial"}).json()
    boxes = _pedestrians_on_first_frame(video_file)
    for x1, y1, x2, y2 in boxes:
        r = stack.api("POST", "/api/annotations/temporal", json={
            "annotation_session_id": session["id"], "video_id": video_id, "start_timestamp": 0.0,
            "end_timestamp": 1.5, "annotation_type": "spatial", "class_label": "pedestrian",
            "bounding_box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}})
        assert r.status_code == 201, r.text
        v = stack.api("POST", f"/api/annotations/{r.json()['id']}/validate",
                      json={"status": "validated", "force": True})
        assert v.status_code == 200, v.text
    return session["id"], len(boxes)


def _click(driver, css: str, what: str) -> None:
    """Click an element the page may be re-rendering (live updates replace rows and buttons)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return True
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    wait_until(attempt, 30, what=what)


def _choose(driver, select_id: str, value: str, what: str) -> None:
    """Pick an option of a select the page may be refilling."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def attempt() -> bool:
        try:
            Select(driver.find_element(By.ID, select_id)).select_by_value(value)
            return driver.find_element(By.ID, select_id).get_attribute("value") == value
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    wait_until(attempt, 30, what=what)


def _fill(element, value: str) -> None:
    element.clear()
    element.send_keys(value)


def _login_with_new_project(driver, stack, shot: str) -> str:
    """Log in as the admin, create a project of its own in the page, select it; its id."""
    from selenium.webdriver.common.by import By

    find = driver.find_element
    driver.get(stack.base + "/")
    wait_until(lambda: _visible(driver, "login-form"), 30, what="the login form")
    find(By.ID, "login-username").send_keys("admin")
    find(By.ID, "login-password").send_keys(stack.admin_password)
    _shot(driver, shot)
    find(By.ID, "login-button").click()
    wait_until(lambda: _visible(driver, "app-view"), 30, what="the dashboard after logging in")
    assert driver.execute_script("return sessionStorage.getItem('vru.token')"), "token kept for the session"
    wait_until(lambda: _state(driver, "socketConnected"), 30, what="the Socket.IO connection")
    name = f"browser-{uuid.uuid4().hex[:6]}"
    find(By.ID, "new-project-name").send_keys(name)
    find(By.CSS_SELECTOR, "#new-project-form button").click()
    wait_until(lambda: _selected_text(driver, "project-select") == name, 30,
               what="the new project selected")
    return _state(driver, "project.id")


def _unless_stale(read):
    """What ``read()`` finds, or None while the page is redrawing that element (a stale element)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return read()
    except StaleElementReferenceException:
        return None


def _selected_text(driver, element_id: str) -> str | None:
    """The chosen option of a select (None while it is redrawn)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    return _unless_stale(lambda: Select(driver.find_element(By.ID, element_id)).first_selected_option.text)


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_dashboard_end_to_end(stack, shared_data, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    find = driver.find_element
    video_file = shared_data / "video" / "vtest.avi"

    project_id = _login_with_new_project(driver, stack, "01-login")

    # -- upload vtest.avi
    find(By.CSS_SELECTOR, "#tabs button[data-tab=submit]").click()
    find(By.ID, "upload-file").send_keys(str(video_file))
    find(By.ID, "upload-button").click()
    wait_until(lambda: _unless_stale(lambda: any("vtest.avi" in r.text for r in find(By.ID, "videos-table")
                                                 .find_elements(By.CSS_SELECTOR, "tbody tr"))),
               120, 0.5, "the uploaded video in the table")
    video_id = wait_until(lambda: _unless_stale(lambda: find(By.CSS_SELECTOR, "#videos-table tbody tr")
                                                .get_attribute("data-video-id")), 30, what="the video's row")
    _shot(driver, "02-uploaded")

    # -- a video left out of every project stays visible to its uploader, in a table of its own
    find(By.ID, "upload-unassigned").click()
    find(By.ID, "upload-file").send_keys(str(video_file))
    find(By.ID, "upload-button").click()
    wait_until(lambda: _unless_stale(lambda: len(driver.find_elements(
        By.CSS_SELECTOR, "#unassigned-videos-table tbody tr")) == 1), 120, 0.5, "the unassigned video in its table")
    unassigned_id = find(By.CSS_SELECTOR, "#unassigned-videos-table tbody tr").get_attribute("data-video-id")
    assert stack.api("GET", f"/api/videos/{unassigned_id}").json()["project_id"] is None
    assert _visible(driver, "unassigned-videos")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#videos-table tbody tr")) == 1, "it is not in the project"
    _shot(driver, "02b-unassigned")

    # -- ground truth for the report, then the detection form (showing the tab again reloads the lists)
    gt_id, gt_count = _ground_truth(stack, project_id, video_id, video_file)
    find(By.CSS_SELECTOR, "#tabs button[data-tab=jobs]").click()
    find(By.CSS_SELECTOR, "#tabs button[data-tab=submit]").click()
    _choose(driver, "detect-video", video_id, "the video")
    _choose(driver, "detect-model", "opencv/hog-people", "the model")
    _choose(driver, "detect-gt", gt_id, "the ground-truth session in the detection form")
    find(By.ID, "detect-from").send_keys("0")
    find(By.ID, "detect-to").send_keys(str(FRAME_TO))
    find(By.ID, "detect-name").send_keys("hog on vtest")
    find(By.ID, "detect-submit").click()

    # -- live: the viewer opens on the new test session; watch progress and boxes
    wait_until(lambda: _state(driver, "viewer.testSessionId"), 30, what="the viewer opened on the test session")
    test_session_id = _state(driver, "viewer.testSessionId")
    job_id = stack.api("GET", f"/api/test-sessions/{test_session_id}").json()["job_id"]
    row = f"#jobs-table tr[data-job-id='{job_id}']"
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, row), 30, what="the detection job in the jobs table")

    seen_progress: list[float] = []
    live_shot = False

    def progress_and_boxes():
        nonlocal live_shot
        bar = find(By.CSS_SELECTOR, f"{row} .bar")
        value = float(bar.get_attribute("aria-valuenow") or 0)
        if not seen_progress or seen_progress[-1] != value:
            seen_progress.append(value)
        status = find(By.CSS_SELECTOR, row).get_attribute("data-status")
        if not live_shot and _state(driver, "viewer.liveFramesDrawn") and _state(driver, "viewer.lastBoxes"):
            _shot(driver, "03-viewer-live")
            find(By.CSS_SELECTOR, "#tabs button[data-tab=jobs]").click()
            _shot(driver, "04-jobs-running")
            find(By.CSS_SELECTOR, "#tabs button[data-tab=viewer]").click()
            live_shot = True
        return status in ("completed", "failed", "cancelled") and status

    status = wait_until(progress_and_boxes, 300, 0.2, "the detection job to finish")
    assert status == "completed", (status, stack.api("GET", f"/api/jobs/{job_id}").json())
    intermediate = [v for v in seen_progress if 0 < v < 100]
    assert intermediate, f"the progress bar went straight to the end: {seen_progress}"
    assert seen_progress == sorted(seen_progress) and seen_progress[-1] == 100, seen_progress
    assert _state(driver, "progressEvents") > 0
    assert _state(driver, "viewer.events") > 0, "no detection_event reached the page"
    assert _state(driver, "viewer.liveFramesDrawn") > 0
    assert _state(driver, "viewer.boxesDrawn") > 0, "no detection box was drawn on the canvas"
    assert live_shot

    # -- afterwards: scrub through the stored detections, ground truth drawn too
    wait_until(lambda: _state(driver, "viewer.mode") == "stored", 30, what="the viewer to switch to stored results")
    slider = find(By.ID, "viewer-slider")
    driver.execute_script("arguments[0].value = 10; arguments[0].dispatchEvent(new Event('input'));", slider)
    wait_until(lambda: find(By.ID, "viewer-canvas").get_attribute("data-frame") == "10", 30, what="frame 10 drawn")
    find(By.ID, "viewer-next").click()
    wait_until(lambda: find(By.ID, "viewer-canvas").get_attribute("data-frame") == "11", 30, what="frame 11 drawn")
    wait_until(lambda: find(By.ID, "viewer-canvas").get_attribute("data-gt-boxes") == str(gt_count), 30,
               what="the ground-truth boxes drawn")
    stored = stack.api("GET", f"/api/test-sessions/{test_session_id}/detections?frame_from=11&frame_to=11").json()
    assert find(By.ID, "viewer-canvas").get_attribute("data-boxes") == str(stored["total"])
    _shot(driver, "05-viewer-scrub")
    # detection colours stay out of the ground truth's green; frames the model did not run on say so
    colours = find(By.ID, "viewer-canvas").get_attribute("data-colours").split()
    assert colours and all(not 75 <= _hue(c) <= 175 for c in colours), colours
    assert find(By.ID, "viewer-canvas").get_attribute("data-skipped") == "false"
    assert "not run" not in find(By.ID, "viewer-frame").text
    driver.execute_script("arguments[0].value = 150; arguments[0].dispatchEvent(new Event('input'));", slider)
    wait_until(lambda: find(By.ID, "viewer-canvas").get_attribute("data-frame") == "150", 30, what="frame 150 drawn")
    assert find(By.ID, "viewer-canvas").get_attribute("data-skipped") == "true"
    assert "not run" in find(By.ID, "viewer-frame").text, find(By.ID, "viewer-frame").text
    assert f"0–{FRAME_TO}" in slider.get_attribute("title"), slider.get_attribute("title")
    _shot(driver, "05b-viewer-not-run")

    # -- the evaluation runs by itself after detection; open the report
    find(By.CSS_SELECTOR, "#tabs button[data-tab=jobs]").click()
    wait_until(lambda: any(r.get_attribute("data-status") == "completed" for r in driver.find_elements(
        By.CSS_SELECTOR, "#jobs-table tr[data-kind=evaluation]")), 180, 0.5, "the evaluation job to complete")
    find(By.CSS_SELECTOR, "#tabs button[data-tab=report]").click()
    report_button = f"#sessions-table tr[data-test-session-id='{test_session_id}'] button.open-report"
    _click(driver, report_button, "the session's report button")
    wait_until(lambda: _state(driver, "report.loaded") == test_session_id, 60, what="the report")
    assert _state(driver, "report.plots") == 3
    summary = find(By.ID, "report-summary").text
    assert "precision" in summary and "recall" in summary and "AP50" in summary, summary
    for plot in ("pr_curves", "confusion_matrix", "latency_histogram"):
        assert driver.execute_script(f"return document.getElementById('plot-{plot}').naturalWidth") > 0, plot
    _shot(driver, "06-report")
    driver.execute_script("document.querySelector('.plots').scrollIntoView()")
    _shot(driver, "07-report-plots")

    # -- cancel and retry: with the GPU-queue worker stopped the new job waits, so the cancel
    #    lands on a pending job whatever the machine's speed
    stack.stop("gpu0")
    try:
        find(By.CSS_SELECTOR, "#tabs button[data-tab=submit]").click()
        _fill(find(By.ID, "detect-to"), "29")
        _fill(find(By.ID, "detect-name"), "hog short")
        _choose(driver, "detect-gt", gt_id, "the ground truth")
        find(By.ID, "detect-submit").click()
        wait_until(lambda: _state(driver, "viewer.testSessionId") not in (None, test_session_id), 30,
                   what="the second test session")
        second = _state(driver, "viewer.testSessionId")
        second_job = stack.api("GET", f"/api/test-sessions/{second}").json()["job_id"]
        find(By.CSS_SELECTOR, "#tabs button[data-tab=jobs]").click()
        row2 = f"#jobs-table tr[data-job-id='{second_job}']"
        _click(driver, f"{row2} button.cancel", "the cancel button of the pending job")
        wait_until(lambda: find(By.CSS_SELECTOR, row2).get_attribute("data-status") == "cancelled", 30,
                   what="the job cancelled")
        _click(driver, f"{row2} button.retry", "the retry button")
        wait_until(lambda: len(stack.api("GET", f"/api/test-sessions?project_id={project_id}").json()["items"]) == 3,
                   30, what="the retried test session")
    finally:
        stack.start_worker("gpu", "gpu0")
    sessions = stack.api("GET", f"/api/test-sessions?project_id={project_id}").json()["items"]
    retried = next(t for t in sessions if t["id"] not in (test_session_id, second))
    assert retried["config"]["frame_to"] == 29 and retried["ground_truth_session_id"] == gt_id
    row3 = f"#jobs-table tr[data-job-id='{retried['job_id']}']"
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, row3), 30, what="the retried job in the table")
    wait_until(lambda: find(By.CSS_SELECTOR, row3).get_attribute("data-status") == "completed", 300, 0.5,
               "the retried job to complete")
    wait_until(lambda: sum(r.get_attribute("data-status") == "completed" for r in driver.find_elements(
        By.CSS_SELECTOR, "#jobs-table tr[data-kind=evaluation]")) == 2, 180, 0.5, "the second evaluation")
    _shot(driver, "08-jobs-done")
    # jobs are named by what they work on, with dates; their details are fields, not JSON
    date = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
    first_row = find(By.CSS_SELECTOR, row)
    wait_until(lambda: "vtest.avi" in find(By.CSS_SELECTOR, f"{row} td.job-name").text, 30, what="the job's name")
    assert "hog on vtest" in first_row.find_element(By.CSS_SELECTOR, "td.job-name").text
    assert "Detection" in first_row.find_element(By.CSS_SELECTOR, "td.job-name").text
    assert date.match(first_row.find_element(By.CSS_SELECTOR, "td.created").text)
    assert date.match(first_row.find_element(By.CSS_SELECTOR, "td.finished").text)
    evaluation_row = driver.find_elements(By.CSS_SELECTOR, "#jobs-table tr[data-kind=evaluation]")[-1]
    assert "Evaluation" in evaluation_row.text and "hog on vtest" in evaluation_row.text, evaluation_row.text
    _click(driver, f"{row} button.details", "the detection job's details button")
    wait_until(lambda: _visible(driver, "job-details"), 30, what="the job details")
    details = wait_until(lambda: find(By.ID, "job-details-body").text, 30, what="the details' fields")
    assert "{" not in details and "hog on vtest" in details, details
    assert driver.find_elements(By.CSS_SELECTOR, "#job-details-body dl.fields dt"), "no label: value fields"
    assert "hog on vtest" in find(By.ID, "job-details-title").text
    driver.execute_script("document.getElementById('job-details').scrollIntoView()")
    _shot(driver, "08b-job-details")
    # the Flower link says how to sign in there
    flower = find(By.ID, "flower-link")
    assert "FLOWER_BASIC_AUTH" in flower.get_attribute("title"), flower.get_attribute("title")
    assert "FLOWER_BASIC_AUTH" in find(By.ID, "flower-help").text

    # -- the two evaluated sessions side by side
    find(By.CSS_SELECTOR, "#tabs button[data-tab=report]").click()
    for ts_id in (test_session_id, retried["id"]):
        box = f"#sessions-table tr[data-test-session-id='{ts_id}'] input[type=checkbox]"
        _click(driver, box, "the session's checkbox")
    find(By.ID, "compare-button").click()
    wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr")) > 0, 60,
               what="the comparison table")
    header = find(By.CSS_SELECTOR, "#compare-table thead").text
    assert "hog on vtest" in header and "hog short" in header, header
    driver.execute_script("document.getElementById('compare-panel').scrollIntoView()")
    _shot(driver, "09-compare")

    # -- the annotation timeline with presence
    find(By.CSS_SELECTOR, "#tabs button[data-tab=annotations]").click()
    _choose(driver, "ann-session", gt_id, "the annotation session")
    wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#ann-timeline .tl-row")) == gt_count, 30,
               what="the annotations on the timeline")
    assert {r.get_attribute("data-status") for r in driver.find_elements(
        By.CSS_SELECTOR, "#ann-timeline .tl-row")} == {"validated"}
    wait_until(lambda: "admin" in (_state(driver, "annotations.presence") or []), 30, what="own presence")
    other = stack.socket()
    try:
        other.call("join_annotation_session", {"session_id": gt_id})
        wait_until(lambda: len(_state(driver, "annotations.presence")) == 2, 30, what="the other annotator's presence")
    finally:
        other.close()
    wait_until(lambda: len(_state(driver, "annotations.presence")) == 1, 30, what="the other annotator leaving")
    _shot(driver, "10-annotations")

    # -- nothing went wrong in the page
    severe = [e for e in _console(driver) if e.get("level") == "SEVERE"]
    assert not severe, severe
    print(f"\nscreenshots: {ARTIFACTS}")
