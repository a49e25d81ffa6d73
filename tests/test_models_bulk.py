"""Rows in bulk (models.bulk): COPY text, ordered ids, and the rows as read back from each database."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select

from models import AnnotationKeyframe, AnnotationSession, Project, Video, VideoAnnotation, migrate
from models.bulk import OrderedIds, _column_text, copy_json, copy_text, insert_rows

ANN = VideoAnnotation.__table__


def test_copy_text_escapes_and_marks_null():
    assert copy_text(None) == "\\N"
    assert copy_text(True) == "t" and copy_text(False) == "f"
    assert copy_text("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_text(0.1) == "0.1" and copy_text(7) == "7"
    assert copy_json({"note": "tab\there", "n": [1, 2.5]}) == '{"note":"tab\\\\there","n":[1,2.5]}'
    assert copy_json({}) == "{}" and copy_json(None) == "\\N"
    with pytest.raises(ValueError):
        copy_json({"x": float("nan")})


@pytest.mark.parametrize("name, values", [
    ("confidence", [1.0, 0.25, 1e-7, 3.0e12]),
    ("confidence", [1.0, None, 2]),  # a NULL and an int among floats
    ("version", [1, 2, 300]),
    ("id", [uuid.uuid4(), uuid.uuid4()]),
    ("video_id", [uuid.UUID(int=5)] * 3),  # one value on every row
    ("validated_by", [None, uuid.uuid4()]),
    ("class_label", ["pedestrian", "a\tb", "pedestrian", None]),
    ("created_at", [datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC)] * 3),
    ("keyframe_data", [{}, {"source_track_id": 3}, {"s": "line\nbreak"}]),
])
def test_a_column_at_once_is_what_each_value_gives(name, values):
    one_by_one = [(copy_json if name == "keyframe_data" else copy_text)(v) for v in values]
    at_once = _column_text(ANN.c[name], values)
    if name == "id":  # written without hyphens, which PostgreSQL reads as the same uuid
        at_once = [str(uuid.UUID(v)) for v in at_once]
    assert at_once == one_by_one


def test_ordered_ids_increase_and_are_version_7():
    new_id = OrderedIds()
    ids = [new_id() for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert OrderedIds()() != OrderedIds()()  # two sequences started at once differ in their random bits


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, pg_database):
    url = f"sqlite:///{tmp_path / 'bulk.db'}" if request.param == "sqlite" else pg_database()
    migrate(url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


def test_rows_read_back_as_written(engine):
    now = datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=UTC)
    pid, vid, sid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    new_id = OrderedIds()
    anns = [{"id": new_id(), "annotation_session_id": sid, "video_id": vid, "start_timestamp": i / 7,
             "end_timestamp": i / 7 + 0.5, "annotation_type": "temporal", "class_label": ["pedestrian", "é\tb"][i % 2],
             "bounding_box": {"x1": i + 0.1, "y1": 2.0, "x2": i + 30.25, "y2": 40.0} if i % 3 else None,
             "confidence": 1.0, "keyframe_data": {} if i % 2 else {"source_track_id": i, "note": "a\\b\nc"},
             "validation_status": "pending", "version": 1, "created_at": now, "updated_at": now}
            for i in range(2500)]
    keys = [{"id": new_id(), "annotation_id": a["id"], "frame_number": i, "timestamp": i / 7,
             "frame_data": {"bounding_box": {"x1": 1.5, "y1": 2.0, "x2": 3.0, "y2": 4.0}, "keyframe": False},
             "created_at": now} for i, a in enumerate(anns)]
    with engine.begin() as conn:
        conn.execute(Project.__table__.insert().values(id=pid, name="p", description="", camera_metadata={},
                                                       labels=["pedestrian"], created_at=now, updated_at=now))
        conn.execute(Video.__table__.insert().values(
            id=vid, project_id=pid, filename="v.avi", storage_path="videos/v", size_bytes=0, checksum="0", fps=30.0,
            frame_count=10, width=64, height=48, duration=1.0, codec="", variable_frame_rate=False, created_at=now))
        conn.execute(AnnotationSession.__table__.insert().values(
            id=sid, project_id=pid, video_id=vid, annotator_id="a", session_name="s", annotation_type="temporal",
            status="active", start_time=now, metadata={}, created_at=now, updated_at=now))
        insert_rows(conn, ANN, anns)
        insert_rows(conn, AnnotationKeyframe.__table__, keys)
    with engine.connect() as conn:
        got = [dict(r) for r in conn.execute(select(*(ANN.c[c] for c in anns[0])).order_by(ANN.c.id)).mappings()]
        got_keys = [dict(r) for r in conn.execute(select(*(AnnotationKeyframe.__table__.c[c] for c in keys[0]))
                                                   .order_by(AnnotationKeyframe.id)).mappings()]
    assert got == anns
    assert got_keys == keys
