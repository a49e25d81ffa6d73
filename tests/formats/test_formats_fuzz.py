"""Property-based: random and mutated files make every reader answer with a clean validation
result or a FormatError — never any other exception."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import formats
from formats import Annotation, FormatError, ReadOptions, VideoInfo

CLASSES = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
VIDEO = VideoInfo(width=640, height=360, frame_count=50, fps=10.0, name="clip", video_id="v1")

# Thousands of mutated and random files through every reader.
pytestmark = pytest.mark.slow


def make_annotations(n_tracks: int) -> list[Annotation]:
    records = [Annotation(frame_number=f, label=CLASSES[t % 5], box=(10.0 * t, 20.0, 10.0 * t + 30, 80.0 + f),
                          track_id=t + 1, timestamp=f / 10.0)
               for t in range(n_tracks) for f in range(t, t + 5)]
    return sorted(records, key=lambda r: (r.frame_number, r.track_id))

SEEDS: dict[str, bytes] = {}


def _seed(fmt: str, tmp: Path) -> bytes:
    """A valid file of ``fmt`` written by our own writer: the starting point for mutations."""
    if fmt not in SEEDS:
        path = tmp / f"seed-{fmt}{formats.EXTENSIONS[fmt]}"
        if fmt == "json":
            formats.write_document(path, [("annotations", iter([{"id": 1, "label": "pedestrian"}]))])
        else:
            records = make_annotations(3)
            if fmt in formats.BY_TRACK:  # tracks, each in frame order
                records.sort(key=lambda r: (r.track_id, r.frame_number))
            formats.write(fmt, path, records, video=VIDEO, videos=[VIDEO], classes=CLASSES)
        SEEDS[fmt] = path.read_bytes()
    return SEEDS[fmt]


def _open(fmt: str, path: Path, on_error: str):
    options = ReadOptions(on_error=on_error)
    if fmt == "json":
        return formats.read_document(path, options)
    return formats.open_reader(fmt, path, video=VIDEO, classes=CLASSES, options=options)


def _count(fmt: str, path: Path, on_error: str) -> int | FormatError:
    """How many records a read yields, or the FormatError it ends with."""
    try:
        return sum(1 for _ in _open(fmt, path, on_error))
    except FormatError as exc:
        return exc


def _read(fmt: str, path: Path) -> None:
    """Validation and reading agree about the file, whatever it holds."""
    report = formats.validate(fmt, path) if fmt == "json" else formats.validate(fmt, path, video=VIDEO,
                                                                                 classes=CLASSES)
    # The counts are those of the issues listed (no file here has enough issues to reach the cap).
    assert report.dropped == 0
    assert report.errors == sum(i.severity == "error" for i in report.issues)
    assert report.warnings == len(report.issues) - report.errors
    for on_error in ("abort", "skip"):
        outcome = _count(fmt, path, on_error)
        if isinstance(outcome, FormatError):
            # A read fails only on a file validation found errors in, and says what they are.
            assert not report.valid, (on_error, outcome)
            assert outcome.issues and any(i.severity == "error" for i in outcome.issues)
        else:
            # A read that ends well yields every record validation counted; "abort" ends well only
            # on a file without errors.
            assert outcome == report.records_total, (on_error, outcome, report.records_total)
            assert on_error == "skip" or report.valid, report.issues


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for position, cut, insert in edits:
        if not buf:
            break
        i = position % len(buf)
        buf[i:i + cut] = insert
    return bytes(buf)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8), st.binary(max_size=6)), min_size=1, max_size=6)


@pytest.mark.parametrize("fmt", formats.FORMATS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_mutated_files_never_crash_a_reader(fmt, edits, tmp_path):
    path = tmp_path / f"mutated{formats.EXTENSIONS[fmt]}"
    path.write_bytes(_mutate(_seed(fmt, tmp_path), edits))
    _read(fmt, path)


@pytest.mark.parametrize("fmt", formats.FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_crash_a_reader(fmt, data, tmp_path):
    path = tmp_path / f"random{formats.EXTENSIONS[fmt]}"
    path.write_bytes(data)
    _read(fmt, path)
