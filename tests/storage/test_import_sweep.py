"""The import-file sweep on the object store: it walks the store's ``imports/`` keys, not a local folder."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from models import ImportJob, migrate, utcnow


@pytest.fixture()
def s3_env(object_store, pg_database, unit_redis_url, tmp_path, monkeypatch):
    import settings
    from tasks import runtime

    url = pg_database()
    migrate(url)
    for name, value in {**object_store.env("sweep", uuid.uuid4().hex[:8]), "DATABASE_URL": url,
                        "STORAGE_DIR": str(tmp_path / "storage"), "REDIS_URL": unit_redis_url,
                        "IMPORT_RETENTION_SECONDS": "3600"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(settings, "_cached", None)
    runtime.reset()
    yield url
    runtime.reset()
    monkeypatch.setattr(settings, "_cached", None)


def test_the_sweep_deletes_import_objects_after_their_retention(s3_env, tmp_path):
    from sqlalchemy import create_engine

    from storage import store
    from tasks.transfer import sweep_import_files

    stored = store()
    assert type(stored).__name__ == "S3Store"
    ended, running, orphan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    engine = create_engine(s3_env)
    with engine.begin() as conn:
        for import_id, status in ((ended, "failed"), (running, "processing")):
            conn.execute(ImportJob.__table__.insert().values(
                id=import_id, job_name="s", import_type="annotations", source_format="csv",
                file_path=f"{import_id}/a.csv", import_status=status, created_by="test", created_at=now))
    engine.dispose()
    for import_id in (ended, running, orphan):
        stored.put_bytes(f"imports/{import_id}/a.csv", b"x")
        stored.put_bytes(f"imports/{import_id}/b.csv", b"y")
    stored.put_bytes("videos/kept.avi", b"v")

    def folders() -> set[str]:
        return {key.split("/")[1] for key in stored.keys("imports/")}

    assert sweep_import_files(now=now + timedelta(minutes=30)) == 0  # within the retention: all kept
    assert folders() == {str(ended), str(running), str(orphan)}
    assert sweep_import_files(now=now + timedelta(hours=2)) == 2
    assert folders() == {str(running)}  # still running: its file is needed
    assert sorted(stored.keys(f"imports/{running}/")) == [f"imports/{running}/a.csv", f"imports/{running}/b.csv"]
    assert stored.exists("videos/kept.avi")
    assert not (tmp_path / "storage" / "imports").exists()  # nothing was looked for on the local disk
