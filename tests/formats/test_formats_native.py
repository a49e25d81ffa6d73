"""The platform's own JSON document: lossless, streaming, and strict about its envelope."""
from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest

import formats
from formats import ReadOptions

ROWS = {
    "projects": [{"id": uuid.UUID(int=1), "name": "Crossing, \"north\"", "labels": ["pedestrian", "cyclist"],
                  "created_at": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), "wanted_videos": None}],
    "videos": [{"id": uuid.UUID(int=2), "fps": 29.97002997, "frame_count": 900, "variable_frame_rate": False,
                "day": dt.date(2026, 1, 2), "checksum": b"\x00\xff", "price": decimal.Decimal("1.10")}],
    "annotations": [{"id": uuid.UUID(int=10 + i), "bounding_box": {"x1": i + 0.1, "y1": 1e-12, "x2": 1e300, "y2": 5},
                     "keyframes": [{"frame_number": i, "timestamp": i / 3}], "notes": "ünïcødé\n"}
                    for i in range(25)],
    "empty": [],
}


def _sections():
    return ((name, iter(rows)) for name, rows in ROWS.items())


def test_document_round_trip_is_exact(tmp_path):
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    counts = formats.write_document(p1, _sections(), meta={"exported_by": "test", "scope": {"projects": [1]}})
    assert counts == {k: len(v) for k, v in ROWS.items() if v} | {"empty": 0}
    reader = formats.read_document(p1)
    got: dict[str, list] = {name: [] for name in ROWS}
    for row in reader:
        got[row.section].append(row.data)
        assert row.pointer == f"/sections/{row.section}/{row.index}"
    assert got == ROWS
    assert reader.meta == {"exported_by": "test", "scope": {"projects": [1]}}
    formats.write_document(p2, ((k, v) for k, v in got.items()), meta=reader.meta)
    assert p1.read_bytes() == p2.read_bytes()
    head = json.loads(p1.read_text())
    assert (head["format"], head["version"]) == ("vru-platform", 1)


def test_document_refuses_nan_and_unknown_types(tmp_path):
    with pytest.raises(ValueError):
        formats.write_document(tmp_path / "a.json", [("x", [{"v": float("nan")}])])
    with pytest.raises(TypeError):
        formats.write_document(tmp_path / "b.json", [("x", [{"v": object()}])])


@pytest.mark.parametrize("text,code,pointer", [
    ('{"format": "vru-platform", "version": 2, "sections": {}}', "structure", "/version"),
    ('{"version": 1, "format": "vru-platform", "sections": {}}', "wrong_format", ""),
    ('{"format": "vru-platform", "version": 1, "sections": {"a": [1, {"x": 1}]}}', "type", "/sections/a/0"),
    ('{"format": "vru-platform", "version": 1, "sections": {"a/b": {"x": 1}}}', "type", "/sections/a~1b"),
    ('{"format": "vru-platform", "version": 1, "sections": {"a": [{"t": {"$uuid": "nope"}}]}}', "type", None),
    ('[1, 2]', "wrong_format", ""),
])
def test_document_problems_are_located(tmp_path, text, code, pointer):
    p = tmp_path / "d.json"
    p.write_text(text)
    report = formats.validate("json", p)
    assert not report.valid
    issue = next(i for i in report.issues if i.severity == "error")
    assert issue.code == code and issue.pointer == pointer


def test_document_skip_mode_yields_good_rows(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('{"format": "vru-platform", "version": 1, "sections": {"a": [1, {"x": 1}, "s", {"x": 2}]}}')
    reader = formats.read_document(p, ReadOptions(on_error="skip"))
    assert [r.data for r in reader] == [{"x": 1}, {"x": 2}]
    assert [i.pointer for i in reader.issues] == ["/sections/a/0", "/sections/a/2"]
