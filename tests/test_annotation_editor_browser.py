"""The annotation editor in real browsers (headless Chromium, as ``test_dashboard_browser``).

One browser draws a box on a frame of an uploaded clip, resizes it by a handle, moves it on a
second keyframe, and the dashed box on a frame between them is the API's ``/boxes``; then the
keys: keyframe jumps, a label, undo and redo, delete and undo, outside, split and merge. Two
browsers in one session see each other's edits and presence, a stale edit shows the conflict
and is reapplied, and a viewer sees everything and can change nothing. Screenshots go to
``var/test-artifacts/dashboard/editor-*.png``.
"""
from __future__ import annotations

import time
import uuid

import pytest
from harness import make_clip, wait_until
from test_dashboard_browser import (
    _choose,
    _click,
    _console,
    _login_with_new_project,
    _shot,
    _state,
    _visible,
    browser,  # noqa: F401 - the fixture
    chromium,
)
from test_dashboard_browser import pytestmark as browser_marks

pytestmark = browser_marks
SIZE = (640, 360)


def _upload(stack, project_id: str, tmp_path) -> dict:
    clip = make_clip(tmp_path / f"editor-{uuid.uuid4().hex[:6]}.avi", 40, 10.0, SIZE)
    with open(clip, "rb") as fh:
        r = stack.api("POST", "/api/videos", data={"project_id": project_id},
                      files={"file": (clip.name, fh, "video/x-msvideo")})
    assert r.status_code == 201, r.text
    return r.json()


def _session(stack, project_id: str, video_id: str) -> str:
    r = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project_id, "video_id": video_id, "session_name": "editing", "annotation_type": "spatial"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _ed(driver, expr: str):
    return _state(driver, f"editor.{expr}")


def _open_editor(driver, session_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=editor]").click()
    _choose(driver, "ed-session", session_id, "the annotation session in the editor")
    wait_until(lambda: driver.find_element(By.ID, "ed-canvas").get_attribute("data-frame") == "0", 30,
               what="frame 0 in the editor")
    wait_until(lambda: _ed(driver, "presence.length"), 30, what="the editor's presence")


def _go(driver, frame: int) -> None:
    from selenium.webdriver.common.by import By

    slider = driver.find_element(By.ID, "ed-slider")
    driver.execute_script(f"arguments[0].value = {frame}; arguments[0].dispatchEvent(new Event('input'));", slider)
    wait_until(lambda: driver.find_element(By.ID, "ed-canvas").get_attribute("data-frame") == str(frame), 30,
               what=f"frame {frame} drawn")


def _key(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def _ctrl(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL).perform()


def _offset(driver, x: float, y: float) -> tuple[int, int]:
    """Video pixel (x, y) as an offset from the canvas's centre in CSS pixels (how W3C actions aim)."""
    rect = driver.execute_script("const c = document.getElementById('ed-canvas'); const r = c.getBoundingClientRect();"
                                 "return [r.width, r.height, c.width, c.height];")
    w, h, cw, ch = rect
    return round(x * w / cw - w / 2), round(y * h / ch - h / 2)


def _press(driver, x: float, y: float):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "ed-canvas")
    ox, oy = _offset(driver, x, y)
    return ActionChains(driver).move_to_element_with_offset(canvas, ox, oy).click_and_hold()


def _drag(driver, start: tuple[float, float], end: tuple[float, float], release: bool = True) -> None:
    chain = _press(driver, *start)
    rect = driver.execute_script("const c = document.getElementById('ed-canvas');"
                                 "return c.getBoundingClientRect().width / c.width;")
    dx, dy = (end[0] - start[0]) * rect, (end[1] - start[1]) * rect
    for i in range(1, 5):
        chain.move_by_offset(round(dx / 4 * i) - round(dx / 4 * (i - 1)), round(dy / 4 * i) - round(dy / 4 * (i - 1)))
    if release:
        chain.release()
    chain.perform()


def _edits(driver) -> int:
    return _ed(driver, "edits")


def _boxes(stack, annotation_id: str, token: str = "admin") -> dict[int, dict]:
    r = stack.api("GET", f"/api/annotations/{annotation_id}/boxes", token=token)
    assert r.status_code == 200, r.text
    return {b["frame_number"]: b for b in r.json()["boxes"]}


def _drawn(driver) -> list[dict]:
    return _ed(driver, "drawn") or []


def _close(a: dict, b: dict, tol: float = 2.5) -> bool:
    return all(abs(a[k] - b[k]) <= tol for k in ("x1", "y1", "x2", "y2"))


def _annotations(stack, session_id: str) -> list[dict]:
    return stack.api("GET", f"/api/annotations/temporal?session_id={session_id}").json()["items"]


def _severe(driver) -> list[dict]:
    # The refused stale edit is answered in the ack, not as an HTTP error: nothing may be logged.
    return [e for e in _console(driver) if e.get("level") == "SEVERE"]


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_draw_resize_move_and_the_interpolated_box(stack, browser, tmp_path):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    project_id = _login_with_new_project(driver, stack, "editor-01-login")
    labels = stack.api("GET", f"/api/projects/{project_id}").json()["labels"]
    video = _upload(stack, project_id, tmp_path)
    session_id = _session(stack, project_id, video["id"])
    _open_editor(driver, session_id)
    assert driver.find_element(By.ID, "ed-mode").get_attribute("data-mode") == "edit"

    # -- frame 5: draw, then resize by the bottom-right handle
    for _ in range(5):
        _key(driver, Keys.ARROW_RIGHT)
    wait_until(lambda: driver.find_element(By.ID, "ed-canvas").get_attribute("data-frame") == "5", 30,
               what="frame 5 by the arrow key")
    _drag(driver, (100, 80), (200, 240))
    wait_until(lambda: _edits(driver) == 1 and len(_drawn(driver)) == 1, 30, what="the drawn box saved")
    track_id = _drawn(driver)[0]["id"]
    drawn = _boxes(stack, track_id)[5]
    assert drawn["keyframe"] and _close(drawn["bounding_box"], {"x1": 100, "y1": 80, "x2": 200, "y2": 240})
    _drag(driver, (200, 240), (240, 260))  # the handle at the selected box's corner
    wait_until(lambda: _edits(driver) == 2, 30, what="the resize saved")
    resized = _boxes(stack, track_id)[5]["bounding_box"]
    assert _close(resized, {"x1": 100, "y1": 80, "x2": 240, "y2": 260}), resized
    _shot(driver, "editor-02-keyframe-5")

    # -- frame 25: move the box by its body (a second keyframe)
    _go(driver, 25)
    assert _drawn(driver)[0]["dashed"] is True  # held still after the only keyframe
    _drag(driver, (170, 170), (370, 130))
    wait_until(lambda: _edits(driver) == 3, 30, what="the move saved")
    moved = _boxes(stack, track_id)[25]
    assert moved["keyframe"] and _close(moved["bounding_box"], {"x1": 300, "y1": 40, "x2": 440, "y2": 220}), moved
    keyframes = [k["frame_number"] for k in stack.api("GET", f"/api/annotations/{track_id}/keyframes").json()]
    assert keyframes == [5, 25]
    _shot(driver, "editor-03-keyframe-25")

    # -- frame 15: the dashed box between them is exactly the API's interpolated box
    _go(driver, 15)
    api15 = _boxes(stack, track_id)[15]
    shown = _drawn(driver)[0]
    assert shown["dashed"] is True and shown["keyframe"] is False and api15["keyframe"] is False
    assert shown["box"] == api15["bounding_box"], (shown, api15)
    assert _drawn(driver)[0]["box"] != resized and shown["box"] != moved["bounding_box"]
    _shot(driver, "editor-04-interpolated-15")

    # -- keys: next and previous keyframe, a label, undo and redo
    _key(driver, "]")
    wait_until(lambda: _ed(driver, "frame") == 25, 10, what="] to the next keyframe")
    _key(driver, "[")
    wait_until(lambda: _ed(driver, "frame") == 5, 10, what="[ to the previous keyframe")
    wait_until(lambda: _ed(driver, "undo") == 3, 10, what="three steps to undo")
    _key(driver, "2")
    wait_until(lambda: stack.api("GET", f"/api/annotations/{track_id}").json()["class_label"] == labels[1], 10,
               what="label 2 given to the selected track")
    wait_until(lambda: _ed(driver, "undo") == 4, 10, what="the label step recorded")
    _ctrl(driver, "z")
    wait_until(lambda: stack.api("GET", f"/api/annotations/{track_id}").json()["class_label"] == labels[0], 10,
               what="the label change undone")
    wait_until(lambda: _ed(driver, "redo") == 1, 10, what="the step to redo")
    _ctrl(driver, "y")
    wait_until(lambda: stack.api("GET", f"/api/annotations/{track_id}").json()["class_label"] == labels[1], 10,
               what="the label change redone")
    # The editor takes keys again once it has the redo's answer: wait for its own state, not the server's.
    wait_until(lambda: _ed(driver, "redo") == 0 and _ed(driver, "undo") == 4, 10, what="the redo recorded")

    # -- delete, and undo brings the track back with its keyframes
    before = _boxes(stack, track_id)
    _key(driver, Keys.DELETE)
    wait_until(lambda: stack.api("GET", f"/api/annotations/{track_id}").status_code == 404, 10, what="deleted")
    wait_until(lambda: not _drawn(driver), 10, what="the box gone from the canvas")
    wait_until(lambda: _ed(driver, "undo") == 5, 10, what="the delete recorded")
    _ctrl(driver, "z")
    wait_until(lambda: stack.api("GET", f"/api/annotations/{track_id}").status_code == 200, 10, what="undeleted")
    assert {f: b["bounding_box"] for f, b in _boxes(stack, track_id).items()} == \
        {f: b["bounding_box"] for f, b in before.items()}

    # -- outside from frame 30 on, then back in at 35
    driver.execute_script("window.dashboard.state.editor.selected = arguments[0];", track_id)
    _go(driver, 30)
    _key(driver, "o")
    wait_until(lambda: max(_boxes(stack, track_id)) == 29, 10, what="the track outside from frame 30")
    wait_until(lambda: not _drawn(driver), 10, what="no box on frame 30")
    _go(driver, 35)
    _key(driver, "o")
    wait_until(lambda: 35 in _boxes(stack, track_id) and 32 not in _boxes(stack, track_id), 10,
               what="the track back in at frame 35")
    _shot(driver, "editor-05-back-in")

    # -- split at frame 20, then merge the two back: every frame keeps its box
    whole = {f: b["bounding_box"] for f, b in _boxes(stack, track_id).items()}
    _go(driver, 20)
    _key(driver, "s")
    wait_until(lambda: len(_annotations(stack, session_id)) == 2, 10, what="the split")
    parts = _annotations(stack, session_id)
    later = next(a["id"] for a in parts if a["id"] != track_id)
    assert min(_boxes(stack, later)) == 20 and max(_boxes(stack, track_id)) == 19
    _shot(driver, "editor-06-split")
    driver.execute_script("window.dashboard.state.editor.selected = arguments[0];", track_id)
    _key(driver, "m")
    _click(driver, f"#ed-tracks li[data-annotation-id='{later}']", "the track to merge")
    wait_until(lambda: len(_annotations(stack, session_id)) == 1, 10, what="the merge")
    assert {f: b["bounding_box"] for f, b in _boxes(stack, track_id).items()} == whole
    _shot(driver, "editor-07-merged")
    assert not _severe(driver), _severe(driver)


def _login(driver, stack, username: str, password: str, project_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(stack.base + "/")
    wait_until(lambda: _visible(driver, "login-form"), 30, what="the login form")
    driver.find_element(By.ID, "login-username").send_keys(username)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-button").click()
    wait_until(lambda: _visible(driver, "app-view"), 30, what="the dashboard after logging in")
    _choose(driver, "project-select", project_id, "the shared project")
    wait_until(lambda: _state(driver, "project.id") == project_id, 30, what="the shared project selected")


def _member(stack, project_id: str, role: str) -> str:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    stack.create_user(name, "viewer" if role == "viewer" else "annotator")
    r = stack.api("POST", f"/api/projects/{project_id}/members", json={"username": name, "role": role})
    assert r.status_code == 201, r.text
    return name


def _presence(driver) -> dict[str, int | None]:
    return {p["username"]: p["frame"] for p in _ed(driver, "presence") or []}


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_two_editors_live_a_conflict_and_a_viewer(stack, browser, tmp_path):  # noqa: F811 - the fixture
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    alice = browser
    project_id = _login_with_new_project(alice, stack, "editor-10-login")
    video = _upload(stack, project_id, tmp_path)
    session_id = _session(stack, project_id, video["id"])
    bob_name = _member(stack, project_id, "annotator")
    viewer_name = _member(stack, project_id, "viewer")
    with chromium("editor-bob-") as bob:
        _login(bob, stack, bob_name, "password-123", project_id)
        _open_editor(alice, session_id)
        _open_editor(bob, session_id)

        # -- presence: each sees the other, and on which frame
        _go(bob, 3)
        wait_until(lambda: _presence(alice).get(bob_name) == 3, 10, what="bob on frame 3, as alice sees it")
        wait_until(lambda: "admin" in _presence(bob), 10, what="alice in bob's presence")

        # -- alice draws on frame 3: bob sees the box (timed from the ack to bob's canvas)
        _go(alice, 3)
        _drag(alice, (100, 100), (220, 260))
        wait_until(lambda: _edits(alice) == 1, 30, what="alice's box saved")
        t0 = time.monotonic()
        wait_until(lambda: len(_drawn(bob)) == 1, 10, 0.02, "alice's box on bob's canvas")
        seen_after = time.monotonic() - t0
        print(f"\nalice's new box on bob's canvas {seen_after * 1000:.0f} ms after alice's ack")
        assert seen_after < 1.0, seen_after
        track_id = _drawn(alice)[0]["id"]
        assert _drawn(bob)[0]["box"] == _drawn(alice)[0]["box"]
        _shot(bob, "editor-11-bob-sees-alice")

        # -- bob moves it: alice sees the move
        _drag(bob, (160, 180), (200, 180))
        wait_until(lambda: _edits(bob) == 1, 30, what="bob's move saved")
        wait_until(lambda: _close(_drawn(alice)[0]["box"], {"x1": 140, "y1": 100, "x2": 260, "y2": 260}), 10,
                   what="bob's move on alice's canvas")

        # -- a stale edit: bob starts dragging, alice changes the track meanwhile, bob lets go
        _press(bob, 200, 180).move_by_offset(10, 10).move_by_offset(20, 0).perform()
        _drag(alice, (200, 180), (200, 220))
        wait_until(lambda: _edits(alice) == 2, 30, what="alice's second move saved")
        ActionChains(bob).move_by_offset(10, 0).release().perform()
        wait_until(lambda: _visible(bob, "ed-conflict"), 10, what="the conflict shown to bob")
        text = bob.find_element(By.ID, "ed-conflict-text").text
        assert text.startswith("admin changed this") and "not applied" in text, text
        alice_box = _boxes(stack, track_id)[3]["bounding_box"]
        _shot(bob, "editor-12-conflict")
        bob.find_element(By.ID, "ed-mine").click()
        wait_until(lambda: not _visible(bob, "ed-conflict"), 10, what="the conflict resolved")
        wait_until(lambda: _boxes(stack, track_id)[3]["bounding_box"] != alice_box, 10, what="bob's edit reapplied")
        wait_until(lambda: _drawn(alice)[0]["box"] == _boxes(stack, track_id)[3]["bounding_box"], 10,
                   what="bob's reapplied edit on alice's canvas")
        _shot(alice, "editor-13-alice-after-reapply")
        assert not _severe(bob), _severe(bob)

    # -- a viewer sees the track and its presence, and can change nothing
    with chromium("editor-viewer-") as viewer:
        _login(viewer, stack, viewer_name, "password-123", project_id)
        _open_editor(viewer, session_id)
        assert viewer.find_element(By.ID, "ed-mode").get_attribute("data-mode") == "view"
        _go(viewer, 3)
        wait_until(lambda: len(_drawn(viewer)) == 1, 10, what="the track on the viewer's canvas")
        wait_until(lambda: _presence(alice).get(viewer_name) == 3, 10, what="the viewer in alice's presence")
        before = _boxes(stack, track_id)
        _drag(viewer, (400, 50), (500, 150))  # would draw, were it allowed
        _drag(viewer, (180, 200), (300, 300))  # would move
        assert all(viewer.find_element(By.ID, b).get_attribute("disabled") is not None
                   for b in ("ed-split", "ed-merge", "ed-delete", "ed-outside", "ed-undo"))
        time.sleep(0.5)  # nothing is sent, so nothing can arrive: give a wrong edit the time to show
        assert _edits(viewer) == 0 and len(_annotations(stack, session_id)) == 1
        assert _boxes(stack, track_id) == before
        _shot(viewer, "editor-14-viewer")
        assert not _severe(viewer), _severe(viewer)
    assert not _severe(alice), _severe(alice)
