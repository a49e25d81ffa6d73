"""Review, model-assisted annotation and honest evaluation in a real browser (headless Chromium,
as ``test_dashboard_browser``).

A generated clip and a test session with tracked detections (the tracks of ``test_review_api``
plus a false one) written as a detection job would. In the page: pre-annotations from the
model's tracks; a second session evaluated against them refuses precision/recall while they are
pending and offers the way out; the false track rejected, the rest validated in bulk; the
evaluation then rests on the validated ground truth; a comparison with a session run on other
frames warns about it and takes a chosen reference. A second test reviews in bulk by class and
frame range, with an annotation whose checks find an error left pending. Screenshots go to
``var/test-artifacts/dashboard/review-*.png``.
"""
from __future__ import annotations

import uuid

import pytest
from harness import make_clip, wait_until
from sqlalchemy import create_engine
from test_dashboard_browser import (
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
from test_review_api import FRAMES, detections, make_test_session, moving

pytestmark = browser_marks
FALSE_TRACK = [(i, "pedestrian", 0.9, (250.0, 150.0, 290.0, 230.0), 6) for i in range(5)]


@pytest.fixture()
def world(stack, tmp_path):
    engine = create_engine(stack.database_url)
    yield {"engine": engine, "tmp": tmp_path}
    engine.dispose()


def _upload(stack, world, project_id: str) -> None:
    clip = make_clip(world["tmp"] / f"review-{uuid.uuid4().hex[:6]}.avi", FRAMES, 10.0)
    with open(clip, "rb") as fh:
        r = stack.api("POST", "/api/videos", data={"project_id": project_id},
                      files={"file": (clip.name, fh, "video/x-msvideo")})
    assert r.status_code == 201, r.text
    world["project"] = {"id": project_id}
    world["video"] = r.json()


def _no_page_errors(driver) -> None:
    severe = [e for e in _console(driver) if e.get("level") == "SEVERE"]
    assert not severe, severe


def _tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#tabs button[data-tab={name}]").click()


def _session_button(driver, ts_id: str, css: str, what: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "sessions-refresh").click()
    _click(driver, f"#sessions-table tr[data-test-session-id='{ts_id}'] {css}", what)


def _review_rows(driver) -> dict[str, str]:
    return driver.execute_script(
        "const out = {}; for (const r of document.querySelectorAll('#review-table tbody tr')) "
        "out[r.dataset.annotationId] = r.dataset.status; return out;")


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_pre_annotate_review_and_evaluate_in_the_dashboard(stack, browser, world):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By

    driver = browser
    find = driver.find_element
    project_id = _login_with_new_project(driver, stack, "review-01-login")
    _upload(stack, world, project_id)
    tracker = make_test_session(world, detections() + FALSE_TRACK, name="tracker")

    # -- pre-annotations from the tracker's session, made in the page
    _tab(driver, "report")
    _session_button(driver, tracker, "button.open-preannotate", "the Pre-annotate button")
    wait_until(lambda: find(By.ID, "preannotate-panel").is_displayed(), 30, what="the pre-annotation form")
    _fill(find(By.ID, "preannotate-name"), "from the tracker")
    _fill(find(By.ID, "preannotate-score"), "0.5")
    find(By.ID, "preannotate-submit").click()
    gt_id = wait_until(lambda: _state(driver, "report.preannotated"), 30, what="the pre-annotation session")
    assert "4 pending annotations" in find(By.ID, "preannotate-result").text, find(By.ID, "preannotate-result").text
    _shot(driver, "review-02-preannotated")
    made = stack.api("GET", f"/api/annotations/temporal?session_id={gt_id}").json()["items"]
    assert len(made) == 4 and {a["validation_status"] for a in made} == {"pending"}
    false_id = next(a["id"] for a in made if a["keyframe_data"]["track_id"] == 6)

    # -- a session judged against them: while they are pending, no precision/recall, and the ways out
    clean = [d for d in detections() if d[4] in (1, 2, 3, 4)]
    judged = make_test_session(world, clean, name="judged", gt=gt_id)
    _session_button(driver, judged, "button.open-evaluate", "the Evaluate button")
    wait_until(lambda: find(By.ID, "evaluate-basis").get_attribute("data-empty") == "true", 30,
               what="the refusal of empty ground truth")
    basis_text = find(By.ID, "evaluate-basis").text
    assert "No precision or recall" in basis_text and "4 pending" in basis_text, basis_text
    assert find(By.CSS_SELECTOR, "#evaluate-basis button.remedy-include_pending").is_displayed()
    _shot(driver, "review-03-evaluate-refused")
    find(By.CSS_SELECTOR, "#evaluate-basis button.remedy-include_pending").click()
    wait_until(lambda: find(By.ID, "evaluate-basis").get_attribute("data-empty") == "false", 30,
               what="the basis with pending annotations counted")
    assert find(By.ID, "evaluate-pending").is_selected()
    find(By.ID, "evaluate-pending").click()  # back to validated only: the remedy is to review them
    wait_until(lambda: find(By.ID, "evaluate-basis").get_attribute("data-empty") == "true", 30,
               what="the refusal again")
    find(By.CSS_SELECTOR, "#evaluate-basis button.remedy-validate").click()

    # -- review: the false track rejected on its own, the rest validated in bulk
    wait_until(lambda: _state(driver, "review.sessionId") == gt_id and len(_review_rows(driver)) == 4, 30,
               what="the review of the pre-annotations")
    assert set(_review_rows(driver).values()) == {"pending"}
    assert find(By.ID, "review-pending").text == "4"
    _shot(driver, "review-04-review-pending")
    _click(driver, f"#review-table tr[data-annotation-id='{false_id}'] button.reject-one", "the Reject button")
    wait_until(lambda: _review_rows(driver).get(false_id) == "rejected", 30, what="the false track rejected")
    _choose(driver, "review-bulk-status", "validated", "validate")
    find(By.ID, "review-bulk-submit").click()
    wait_until(lambda: "3 annotation(s) validated" in find(By.ID, "review-bulk-result").text, 30,
               what="the bulk validation")
    wait_until(lambda: sorted(_review_rows(driver).values()) == ["rejected", "validated", "validated", "validated"],
               30, what="the rows redrawn")
    assert find(By.ID, "review-percent").text == "100"
    # the timeline of the Annotations tab followed live
    wait_until(lambda: sorted(r.get_attribute("data-status") for r in driver.find_elements(
        By.CSS_SELECTOR, "#ann-timeline .tl-row")) == ["rejected", "validated", "validated", "validated"], 30,
        what="the timeline statuses")
    _shot(driver, "review-05-reviewed")

    # -- evaluate again: it rests on the validated ground truth now
    _tab(driver, "report")
    _session_button(driver, judged, "button.open-evaluate", "the Evaluate button")
    wait_until(lambda: find(By.ID, "evaluate-basis").get_attribute("data-empty") == "false"
               and "3 validated" in find(By.ID, "evaluate-basis").text, 30, what="the basis after the review")
    _fill(find(By.ID, "evaluate-iou"), "0.5")
    find(By.ID, "evaluate-submit").click()
    wait_until(lambda: _state(driver, "report.loaded") == judged, 120, 0.5, "the report after the evaluation")
    _tab(driver, "report")
    basis = find(By.ID, "report-basis").text
    assert "3 objects" in basis and "1 rejected" in basis, basis
    summary = find(By.ID, "report-summary").text
    assert "precision" in summary and "recall" in summary, summary
    report = stack.api("GET", f"/api/test-sessions/{judged}/report?embed=false").json()
    assert report["refusal"] is None
    assert report["metrics"]["operating_point"]["precision"] == pytest.approx(1.0)
    assert report["metrics"]["operating_point"]["recall"] == pytest.approx(1.0)
    driver.execute_script("document.getElementById('report-panel').scrollIntoView()")
    _shot(driver, "review-06-report")

    # -- compared with a session run on every second frame: a warning; the reference chosen
    sparse = make_test_session(world, [d for d in clean if d[0] % 2 == 0], name="every 2nd frame", gt=gt_id,
                               config={"frame_stride": 2})
    r = stack.api("POST", f"/api/test-sessions/{sparse}/evaluate", json={})
    assert r.status_code == 202 and stack.wait_job(r.json()["id"], timeout=120)["status"] == "completed"
    find(By.ID, "sessions-refresh").click()
    for ts_id in (judged, sparse):
        _click(driver, f"#sessions-table tr[data-test-session-id='{ts_id}'] input[type=checkbox]", "a checkbox")
    find(By.ID, "compare-button").click()
    wait_until(lambda: find(By.ID, "compare-warnings").is_displayed(), 30, what="the different-frames warning")
    assert "different frames" in find(By.ID, "compare-warnings").text
    _choose(driver, "compare-reference", sparse, "the reference")
    wait_until(lambda: "every 2nd frame (reference)" in find(By.CSS_SELECTOR, "#compare-table thead").text, 30,
               what="the sparse session as reference")
    first_metric = find(By.CSS_SELECTOR, "#compare-table tbody tr td").text
    assert first_metric == "AP (IoU 0.50:0.95)", first_metric
    precision = find(By.CSS_SELECTOR, "#compare-table tr[data-metric='operating_point.precision']")
    assert "(tie)" in precision.text and not precision.find_elements(By.CSS_SELECTOR, "td.best"), precision.text
    driver.execute_script("document.getElementById('compare-panel').scrollIntoView()")
    _shot(driver, "review-07-compare")
    _no_page_errors(driver)


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_bulk_review_by_class_and_frame_range(stack, browser, world):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By

    driver = browser
    find = driver.find_element
    project_id = _login_with_new_project(driver, stack, "review-10-login")
    _upload(stack, world, project_id)
    tracker = make_test_session(world, detections(), name="tracker")
    session = stack.api("POST", f"/api/test-sessions/{tracker}/pre-annotations", json={"score_threshold": 0.5}).json()
    twin = stack.api("POST", "/api/annotations/temporal", json={
        "annotation_session_id": session["id"], "video_id": world["video"]["id"], "start_timestamp": 0.0,
        "end_timestamp": 0.1, "annotation_type": "spatial", "class_label": "pedestrian",
        "bounding_box": dict(zip(("x1", "y1", "x2", "y2"), moving(0), strict=True))}).json()

    _tab(driver, "annotations")
    _choose(driver, "ann-session", session["id"], "the pre-annotated session")
    wait_until(lambda: len(_review_rows(driver)) == 4, 30, what="the review rows")
    errors = driver.execute_script("return [...document.querySelectorAll('#review-table tbody tr')]"
                                   ".filter(r => r.dataset.errors !== '0').map(r => r.dataset.annotationId)")
    assert twin["id"] in errors  # its duplicate finding is shown beside it before anyone decides
    assert "duplicate" in find(By.CSS_SELECTOR, f"#review-table tr[data-annotation-id='{twin['id']}']").text.lower() \
        or "overlaps" in find(By.CSS_SELECTOR, f"#review-table tr[data-annotation-id='{twin['id']}']").text

    # -- the cyclists rejected as a class
    _choose(driver, "review-bulk-status", "rejected", "reject")
    _choose(driver, "review-bulk-class", "cyclist", "the cyclist class")
    find(By.ID, "review-bulk-submit").click()
    wait_until(lambda: "1 annotation(s) rejected" in find(By.ID, "review-bulk-result").text, 30,
               what="the class rejected")
    # -- frames 0-9 validated: the still pedestrian is; the moving one and its twin are left pending
    _choose(driver, "review-bulk-status", "validated", "validate")
    _choose(driver, "review-bulk-class", "", "every class")
    _fill(find(By.ID, "review-bulk-from"), "0")
    _fill(find(By.ID, "review-bulk-to"), "9")
    find(By.ID, "review-bulk-submit").click()
    wait_until(lambda: "1 annotation(s) validated" in find(By.ID, "review-bulk-result").text, 30,
               what="the frame range validated")
    result = find(By.ID, "review-bulk-result").text
    assert "2 left pending because their checks found errors" in result, result
    wait_until(lambda: find(By.ID, "review-pending").text == "2" and find(By.ID, "review-validated").text == "1"
               and find(By.ID, "review-rejected").text == "1", 30, what="the progress")
    _shot(driver, "review-11-bulk")
    progress = stack.api("GET", f"/api/annotations/sessions/{session['id']}/review").json()["progress"]
    assert (progress["pending"], progress["validated"], progress["rejected"]) == (2, 1, 1)
    _no_page_errors(driver)


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_import_fixed_with_a_label_map_in_the_form(stack, browser, world):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    import formats

    driver = browser
    find = driver.find_element
    _login_with_new_project(driver, stack, "review-20-login")
    clip = make_clip(world["tmp"] / f"import-{uuid.uuid4().hex[:6]}.avi", FRAMES, 10.0)
    _tab(driver, "submit")
    find(By.ID, "upload-file").send_keys(str(clip))
    find(By.ID, "upload-button").click()
    video_id = wait_until(lambda: driver.execute_script(
        "const r = document.querySelector('#videos-table tbody tr'); return r && r.dataset.videoId;"), 60,
        what="the uploaded video")
    # another tool's file: its people are 'person', one row already says 'pedestrian'
    lines = [",".join(formats.csvfile.ANNOTATION_COLUMNS),
             ",0,,1,person,10,50,40,120,1,1,0,0,,",
             ",20,,1,person,110,50,140,120,1,1,0,0,,",
             ",5,,2,pedestrian,200,140,240,220,1,1,0,0,,"]
    path = world["tmp"] / "people.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    _choose(driver, "import-type", "annotations", "annotations")
    Select(find(By.ID, "import-format")).select_by_visible_text("csv")  # options without value attributes
    _choose(driver, "import-video", video_id, "the video")
    find(By.ID, "import-file").send_keys(str(path))
    find(By.ID, "import-submit").click()

    # -- refused: the errors say where, and the form offers a label map row for 'person'
    wait_until(lambda: (_state(driver, "imports") or {}).get("last", {}).get("status") == "failed", 90, 0.3,
               "the failed import")
    issues = find(By.ID, "import-issues").text
    assert "unknown_class" in issues and "line 2" in issues and "line 3" in issues, issues
    row = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#import-map-rows .map-row[data-from='person']"),
                     30, what="the label map row for 'person'")[0]
    assert Select(find(By.ID, "import-format")).first_selected_option.text == "csv"  # the format is kept
    driver.execute_script("document.getElementById('import-label-map').scrollIntoView()")
    _shot(driver, "review-21-import-refused")
    Select(row.find_element(By.CSS_SELECTOR, "select")).select_by_value("pedestrian")
    find(By.ID, "import-submit").click()

    # -- imported: a link to the session it made
    wait_until(lambda: (_state(driver, "imports") or {}).get("last", {}).get("status") == "completed", 90, 0.3,
               "the completed import")
    last = _state(driver, "imports.last")
    assert last["records_processed"] == 3 and last["annotation_session_id"], last
    assert Select(find(By.ID, "import-format")).first_selected_option.text == "csv"
    _shot(driver, "review-22-import-done")
    _click(driver, "#import-open-session", "the link to the imported session")
    wait_until(lambda: _state(driver, "review.sessionId") == last["annotation_session_id"]
               and len(_review_rows(driver)) == 2, 30, what="the imported session in the review")
    labels = {a["class_label"] for a in stack.api(
        "GET", f"/api/annotations/temporal?session_id={last['annotation_session_id']}").json()["items"]}
    assert labels == {"pedestrian"}
    _shot(driver, "review-23-imported-session")
    _no_page_errors(driver)
