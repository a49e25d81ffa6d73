"""Tokens that can be revoked, rate limits, the audit log, headers, refusing unsafe production settings."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from harness import ROOT, UNIT_REDIS_URL, free_port, own_stack

from models import migrate


def test_logout_and_refresh_revoke_tokens(stack):
    _, token = stack.create_user(f"leaver{time.time_ns()}", "viewer")
    fresh = stack.api("POST", "/api/auth/refresh", token=token)
    assert fresh.status_code == 200
    new = fresh.json()["access_token"]
    assert stack.api("GET", "/api/users/me", token=token).json()["error"]["code"] == "invalid_token"
    assert stack.api("GET", "/api/users/me", token=new).status_code == 200
    assert stack.api("POST", "/api/auth/logout", token=new).status_code == 204
    r = stack.api("GET", "/api/users/me", token=new)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_audit_log_records_changes_for_admins_only(stack):
    name = f"audited{time.time_ns()}"
    user_id, token = stack.create_user(name, "annotator")
    project = stack.api("POST", "/api/projects", token=token, json={"name": "audited"}).json()
    page = stack.api("GET", "/api/audit", params={"user_id": user_id}).json()
    actions = [(e["action"], e["resource_type"]) for e in page["items"]]
    assert ("create", "project") in actions and ("login", "user") in actions
    entry = next(e for e in page["items"] if e["resource_type"] == "project")
    assert entry["resource_id"] == project["id"] and entry["username"] == name and entry["ip"] == "127.0.0.1"
    created = stack.api("GET", "/api/audit", params={"action": "create", "resource_type": "user"}).json()
    assert any(e["resource_id"] == user_id for e in created["items"])
    assert stack.api("GET", "/api/audit", token=token).status_code == 403


def test_security_headers_on_every_response(stack):
    for r in (stack.api("GET", "/api/health", token=None), stack.api("GET", "/api/projects"),
              stack.api("GET", "/api/projects", token=None)):
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_rate_limits_answer_429_with_retry_after(tmp_path):
    with own_stack(tmp_path, RATE_LIMIT_LOGIN="3 per minute", RATE_LIMIT_DEFAULT="8 per minute") as st:
        token = st.token("admin", st.admin_password)
        codes = [st.api("POST", "/api/auth/token", token=None,
                        json={"username": "ghost", "password": "wrong"}).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # Another username from the same address is not locked out by that.
        assert st.api("POST", "/api/auth/token", token=None,
                      json={"username": "someone", "password": "x"}).status_code == 401
        statuses = [st.api("GET", "/api/projects", token=token) for _ in range(9)]
        assert [r.status_code for r in statuses[:8]] == [200] * 8  # per user, logins not counted
        limited = statuses[8]
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
        assert st.api("GET", "/api/health", token=None).status_code == 200  # health is never limited


def test_production_refuses_unsafe_settings(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PLATFORM_ENV": "production", "VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "REDIS_URL": UNIT_REDIS_URL,
           "PORT": str(free_port()), "CORS_ORIGINS": "*"}
    web = subprocess.run([sys.executable, "-m", "webapp"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert web.returncode == 3
    for problem in ("SECRET_KEY", "CORS_ORIGINS", "FLOWER_BASIC_AUTH", "ADMIN_PASSWORD"):
        assert problem in web.stderr, web.stderr
    flower = subprocess.run([sys.executable, "-m", "workers", "flower"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert flower.returncode == 3 and "FLOWER_BASIC_AUTH" in flower.stderr
    safe = {**env, "SECRET_KEY": "x" * 40, "CORS_ORIGINS": "https://validation.example", "ADMIN_PASSWORD": "a" * 16,
            "FLOWER_BASIC_AUTH": "ops:" + "b" * 16}
    from settings import load_settings, production_problems

    old = dict(os.environ)
    try:
        os.environ.update(safe)
        assert production_problems(load_settings()) == []
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_request_cannot_commit_a_change_without_its_audit_record(tmp_path, monkeypatch, unit_redis_url):
    import dataclasses

    import pytest
    from sqlalchemy import update

    from models import AuditLog, Project
    from settings import load_settings
    from webapp.db import UnauditedWrite, audit, db_session
    from webapp.factory import create_app

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)
    settings = dataclasses.replace(load_settings(), database_url=url)
    app = create_app(settings, redis_url=unit_redis_url, async_mode="threading")
    with app.test_request_context("/api/projects", method="POST"):
        db = db_session()
        db.add(Project(name="unaudited", labels=[]))
        with pytest.raises(UnauditedWrite, match="projects"):
            db.commit()
        db.rollback()
        db.add(Project(name="audited", labels=[]))
        audit(db, "create", "project")
        db.commit()
        # Bulk statements count as changes too.
        db.execute(update(Project).values(description="x"))
        with pytest.raises(UnauditedWrite):
            db.commit()
        db.rollback()
        assert db.query(Project).filter_by(name="audited").one().description != "x"
        assert db.query(AuditLog).count() == 1
