"""Lists read a page in a fixed number of statements, however many rows it holds (no query per row).

In-process on the Flask test client: the property is about the statements a request sends, not
about processes.
"""
from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import event

from models import ExportJob, ImportJob, Job, Project, ProjectMember, User, migrate

PASSWORD = "member-password-1"


@pytest.fixture()
def app_and_token(tmp_path, unit_redis_url):
    from settings import load_settings
    from webapp.auth import hash_password
    from webapp.factory import create_app

    url = f"sqlite:///{tmp_path / 'lists.db'}"
    migrate(url)
    settings = dataclasses.replace(load_settings(), database_url=url, storage_dir=tmp_path / "storage")
    app = create_app(settings, redis_url=unit_redis_url, async_mode="threading")
    database = app.extensions["database"]
    with database.session() as s:
        user = User(username="member", password_hash=hash_password(PASSWORD), role="annotator")
        s.add(user)
        s.commit()
        user_id = user.id
    client = app.test_client()
    r = client.post("/api/auth/token", json={"username": "member", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return app, client, r.get_json()["access_token"], user_id


def _add_rows(database, user_id: uuid.UUID, n: int) -> None:
    """``n`` more projects the user is a member of, and ``n`` exports and imports of the user's, each with its job."""
    with database.session() as s:
        for _ in range(n):
            project = Project(name=f"p-{uuid.uuid4().hex[:8]}", labels=["car"])
            s.add(project)
            s.flush()
            s.add(ProjectMember(project_id=project.id, user_id=user_id, role="viewer"))
            for kind, side in (("export", ExportJob), ("import", ImportJob)):
                job = Job(id=uuid.uuid4(), kind=kind, queue="cpu", status="processing", stage="working",
                          params={}, created_by=user_id, progress_percent=40, max_attempts=3)
                s.add(job)
                s.flush()
                if side is ExportJob:
                    s.add(ExportJob(job_id=job.id, job_name="e", export_type="annotations", format="json",
                                    status="processing", created_by=str(user_id)))
                else:
                    s.add(ImportJob(job_id=job.id, job_name="i", import_type="annotations", source_format="json",
                                    file_path="x.json", import_status="processing", created_by=str(user_id)))
        s.commit()


def _statements(app, client, token: str, path: str) -> tuple[int, dict]:
    engine = app.extensions["database"].engine
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        r = client.get(path, headers={"Authorization": f"Bearer {token}"})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200, r.text
    return len(seen), r.get_json()


@pytest.mark.parametrize("path", ["/api/projects", "/api/export/jobs", "/api/import/jobs"])
def test_a_list_page_costs_the_same_statements_for_2_rows_as_for_12(app_and_token, path):
    app, client, token, user_id = app_and_token
    database = app.extensions["database"]
    _add_rows(database, user_id, 2)
    few, page = _statements(app, client, token, path)
    assert page["total"] == 2 and len(page["items"]) == 2
    _add_rows(database, user_id, 10)
    many, page = _statements(app, client, token, path)
    assert page["total"] == 12 and len(page["items"]) == 12
    assert many == few, f"{path}: {few} statements for 2 rows, {many} for 12"


def test_the_project_list_names_the_callers_role_in_each(app_and_token):
    app, client, token, user_id = app_and_token
    _add_rows(app.extensions["database"], user_id, 3)
    _, page = _statements(app, client, token, "/api/projects")
    assert [p["my_role"] for p in page["items"]] == ["viewer"] * 3
