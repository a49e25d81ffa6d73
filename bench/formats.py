"""Format engine: export and import throughput and peak memory per format, streaming vs in-memory.

Generated data: ``--count`` annotations (default 200,000; the issue's figure is 1,000,000),
10 per frame on a 1920x1080 video, 10 tracks, fractional boxes. Every phase runs in a fresh
subprocess so that its peak resident memory (``ru_maxrss``) is its own; the table shows it
above the interpreter's baseline. The straightforward approach (build the whole document in
memory, then ``json.dump``; ``json.load`` to read) runs side by side for COCO and the JSON
document, and memory is measured at ``--small`` (100,000) and ``--count`` to show whether it
grows with the data.

    .venv/bin/python bench/formats.py --count 1000000

Import into PostgreSQL (``--pg``, on by default) goes through the import job's own database
path: a CSV file of the generated boxes read by the format engine and written by
``tasks.transfer._import_annotations`` (on PostgreSQL one COPY per batch of 2,000 rows per table,
all in one transaction; every box is a keyframe row) into a private database ``bench_<random>``
that is dropped at the end. It runs twice: untracked boxes (as COCO or a CSV without track ids
hold them: one annotation row per box) and tracked boxes (one annotation row per track). The
straightforward approach builds ORM objects for the same rows and ``session.add_all`` + commit;
it runs at ``--small`` only (at 1,000,000 it needs gigabytes), so the ratio is taken at ``--small``.

    .venv/bin/python bench/formats.py --formats '' --count 1000000 --small 50000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_FRAME = 10
CLASSES = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
FORMATS = ["coco", "csv", "mot", "yolo", "cvat_video", "label_studio", "kitti_tracking", "json"]


def _video(count: int):
    from formats import VideoInfo
    return VideoInfo(1920, 1080, count // PER_FRAME + 1, 30.0, "bench", "v1")


def _annotations(count: int, by_track: bool = False, tracked: bool = True):
    """Generated lazily: the data set itself never sits in memory. Untracked boxes (as COCO or a
    CSV without track ids hold them) have no track id: each becomes an annotation of its own."""
    from formats import Annotation
    frames = count // PER_FRAME + (count % PER_FRAME > 0)
    if by_track:  # CVAT and Label Studio want records ordered by track
        order = ((f, t) for t in range(PER_FRAME) for f in range(frames))
    else:
        order = ((f, t) for f in range(frames) for t in range(PER_FRAME))
    n = 0
    for f, t in order:
        if f * PER_FRAME + t >= count:
            continue
        x = (t * 173.3 + f * 0.37) % 1800
        y = (t * 91.7 + f * 0.11) % 1000
        yield Annotation(f, CLASSES[t % 5], (x, y, x + 40.25, y + 70.5), track_id=t if tracked else None,
                         timestamp=f / 30,
                         video_id="v1")
        n += 1


def _rows(count: int):
    for a in _annotations(count):
        yield {"frame_number": a.frame_number, "class_label": a.label, "track_id": a.track_id,
               "timestamp": a.timestamp, "bounding_box": {"x1": a.box[0], "y1": a.box[1], "x2": a.box[2],
                                                          "y2": a.box[3]}}


def _naive_coco(count: int) -> dict[str, Any]:
    video = _video(count)
    cat = {c: i + 1 for i, c in enumerate(CLASSES)}
    images = {}
    anns = []
    for i, a in enumerate(_annotations(count)):
        iid = a.frame_number + 1
        images.setdefault(iid, {"id": iid, "width": video.width, "height": video.height,
                                "file_name": f"frame_{a.frame_number:06d}.jpg", "video_id": "v1",
                                "frame_number": a.frame_number, "timestamp": a.timestamp})
        x1, y1, x2, y2 = a.box
        anns.append({"id": i + 1, "image_id": iid, "category_id": cat[a.label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "segmentation": [], "track_id": a.track_id})
    return {"info": {}, "licenses": [], "categories": [{"id": v, "name": k} for k, v in cat.items()],
            "images": list(images.values()), "annotations": anns}


def child(phase: str, fmt: str, count: int, path: str) -> dict[str, Any]:
    import formats
    from formats import FrameInfo, ReadOptions
    video = _video(count)
    if phase.startswith("pg_"):  # the worker has its modules loaded before a job starts
        import sqlalchemy.orm  # noqa: F401

        import tasks.transfer  # noqa: F401
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    if phase == "baseline":
        pass
    elif phase == "export":
        if fmt == "json":
            formats.write_document(path, [("annotations", _rows(count))], meta={"bench": True})
            n = count
        else:
            # COCO gets the evaluated frames up front, as an export job has them: images come first
            frames = (FrameInfo(f, f / 30, "v1") for f in range(video.frame_count)) if fmt == "coco" else None
            n = formats.write(fmt, path, _annotations(count, by_track=fmt in formats.BY_TRACK), video=video,
                              classes=CLASSES, frames=frames)
    elif phase == "import":
        if fmt == "json":
            for _ in formats.read_document(path):
                n += 1
        else:
            reader = formats.open_reader(fmt, path, video=video, classes=CLASSES, options=ReadOptions(on_error="skip"))
            for _ in reader:
                n += 1
    elif phase == "naive_export":
        doc = _naive_coco(count) if fmt == "coco" else {"format": "vru-platform", "version": 1,
                                                        "sections": {"annotations": list(_rows(count))}}
        with open(path, "w") as fp:
            json.dump(doc, fp)
        n = count
    elif phase in ("pg_import", "pg_orm"):
        n = _pg_import(path, count, orm=phase == "pg_orm")
    elif phase == "naive_import":
        with open(path) as fp:
            doc = json.load(fp)
        rows = doc["annotations"] if fmt == "coco" else doc["sections"]["annotations"]
        for _ in rows:
            n += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"n": n, "seconds": seconds, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _pg_import(spec: str, count: int, orm: bool) -> int:
    """Read ``csv`` boxes and write them as the import job does (or through the ORM); returns boxes read."""
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import formats
    from formats import ReadOptions
    from keyframes import Timeline
    from models import AnnotationKeyframe, VideoAnnotation, utcnow
    from tasks.transfer import Writer, _import_annotations

    url, csv_path, video_id, session_id = spec.split("|")
    video_id, session_id = uuid.UUID(video_id), uuid.UUID(session_id)
    info = _video(count)
    timeline = Timeline.constant(info.frame_count, 30.0)
    reader = formats.open_reader("csv", csv_path, video=info, classes=CLASSES, options=ReadOptions(on_error="skip"))
    engine = create_engine(url)
    n = 0
    if not orm:
        class _Quiet:
            job_id = uuid.uuid4()

            def progress(self, *_a, **_k):
                return None

            def check_cancel(self):
                return None

        class _Video:
            id = video_id

        with engine.connect() as conn:
            trans = conn.begin()
            w = Writer(_Quiet(), conn, count, uuid.uuid4())  # type: ignore[arg-type]
            w.report = False
            _import_annotations(w, reader, _Video, timeline, session_id, "pending")
            trans.commit()
            n = w.processed
    else:
        now = utcnow()
        with Session(engine) as s:
            tracks: dict[int, VideoAnnotation] = {}
            objects = []
            for rec in reader:
                n += 1
                ann = tracks.get(rec.track_id) if rec.track_id is not None else None
                t = float(timeline.time_of(rec.frame_number))
                x1, y1, x2, y2 = rec.box
                box = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
                if ann is None:
                    ann = VideoAnnotation(
                        id=uuid.uuid4(), annotation_session_id=session_id, video_id=video_id, start_timestamp=t,
                        end_timestamp=t, annotation_type="temporal", class_label=rec.label, bounding_box=box,
                        confidence=1.0,
                        keyframe_data={} if rec.track_id is None else {"source_track_id": rec.track_id},
                        validation_status="pending", created_at=now, updated_at=now)
                    objects.append(ann)
                    if rec.track_id is not None:
                        tracks[rec.track_id] = ann
                ann.end_timestamp = max(ann.end_timestamp, t)
                objects.append(AnnotationKeyframe(id=uuid.uuid4(), annotation_id=ann.id,
                                                  frame_number=rec.frame_number, timestamp=t,
                                                  frame_data={"bounding_box": box}, created_at=now))
            s.add_all(objects)
            s.commit()
    engine.dispose()
    return n


def pg_setup(admin_url: str) -> tuple[str, str]:
    """A private database with the platform's schema."""
    import uuid

    from sqlalchemy import create_engine, text

    from models.db import migrate

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    return name, url


def pg_target(url: str) -> tuple[str, str]:
    """A fresh project, video and annotation session to import into."""
    import uuid

    from sqlalchemy import create_engine

    from models import AnnotationSession, Project, Video, utcnow
    engine = create_engine(url)
    now = utcnow()
    pid, vid, sid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(Project.__table__.insert().values(id=pid, name="bench", description="", camera_metadata={},
                                                       labels=CLASSES, created_at=now, updated_at=now))
        conn.execute(Video.__table__.insert().values(
            id=vid, project_id=pid, filename="bench.avi", storage_path="videos/none", size_bytes=0, checksum="0",
            fps=30.0, frame_count=10**7, width=1920, height=1080, duration=1.0, codec="", variable_frame_rate=False,
            created_at=now))
        conn.execute(AnnotationSession.__table__.insert().values(
            id=sid, project_id=pid, video_id=vid, annotator_id="bench", session_name="bench",
            annotation_type="temporal", status="active", start_time=now, metadata={}, created_at=now,
            updated_at=now))
    engine.dispose()
    return str(vid), str(sid)


def pg_drop(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def pg_bench(admin_url: str, small: int, large: int, base: float) -> None:
    """Both kinds of file into PostgreSQL: boxes of tracks (MOT, CVAT, a CSV with track ids: one
    annotation per track) and untracked boxes (COCO, a CSV without: one annotation per box). The
    ORM baseline runs at ``small`` in the same run; the ratio is taken there. ``job CPU s`` is
    the importing process's own CPU time (the database server's is not in it): on a loaded
    machine the wall time is mostly waiting for a core and for the server."""
    import formats
    with tempfile.TemporaryDirectory() as tmp:
        name, url = pg_setup(admin_url)
        try:
            print(f"import into PostgreSQL ({name}): csv boxes -> annotations + keyframes, one transaction")
            print(f"{'boxes':<11}{'approach':<24}{'boxes':>11}{'boxes/s':>11}{'peak MB':>10}{'wall s':>9}"
                  f"{'job CPU s':>11}")
            for tracked in (False, True):
                kind = "tracked" if tracked else "untracked"
                rates = {}
                sizes = [("small", small, ("pg_import", "pg_orm"))]
                if large != small:
                    sizes.append(("large", large, ("pg_import",)))
                for label, count, phases in sizes:
                    csv_path = str(Path(tmp) / f"boxes-{kind}-{label}.csv")
                    formats.write("csv", csv_path, _annotations(count, tracked=tracked))
                    for phase in phases:
                        vid, sid = pg_target(url)
                        r = run(phase, "csv", count, "|".join((url, csv_path, vid, sid)))
                        assert r["n"] == count, r
                        rates[(phase, label)] = r["n"] / r["seconds"]
                        what = "import job (COPY)" if phase == "pg_import" else "ORM add_all"
                        print(f"{kind:<11}{what:<24}{count:>11,}{rates[(phase, label)]:>11,.0f}"
                              f"{r['rss_mb'] - base:>10.1f}{r['seconds']:>9.1f}{r['cpu']:>11.1f}", flush=True)
                    os.unlink(csv_path)
                print(f"{kind:<11}ratio import job / ORM at {small:,}: "
                      f"{rates[('pg_import', 'small')] / rates[('pg_orm', 'small')]:.1f}x", flush=True)
        finally:
            pg_drop(admin_url, name)


def run(phase: str, fmt: str, count: int, path: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", phase, fmt, str(count), path],
                         capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        out.check_returncode()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200_000, help="annotations in the large run")
    ap.add_argument("--small", type=int, default=100_000, help="annotations in the small run (memory growth)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--pg", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL server (an admin database URL) for the import benchmark; '' to skip")
    ap.add_argument("--child", nargs=4, metavar=("PHASE", "FORMAT", "COUNT", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        phase, fmt, count, path = args.child
        print(json.dumps(child(phase, fmt, int(count), path)))
        return
    fmts = [f for f in args.formats.split(",") if f]
    base = run("baseline", "csv", 0, os.devnull)["rss_mb"]
    print(f"format engine: {args.count:,} annotations ({PER_FRAME} per frame), memory at {args.small:,} vs "
          f"{args.count:,}; peak RSS above the {base:.0f} MB interpreter baseline; python {sys.version.split()[0]}")
    print(f"{'format':<15}{'approach':<10}{'export ann/s':>14}{'import ann/s':>14}{'file MB':>9}"
          f"{'exp MB small':>13}{'exp MB large':>13}{'imp MB small':>13}{'imp MB large':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in fmts:
            approaches = ["stream"] + (["in-memory"] if fmt in ("coco", "json") else [])
            for approach in approaches:
                pre = "" if approach == "stream" else "naive_"
                row: dict[str, dict[str, Any]] = {}
                size = 0.0
                for label, count in (("small", args.small), ("large", args.count)):
                    path = str(Path(tmp) / f"{fmt}-{approach}-{label}.out")
                    row[f"export_{label}"] = run(pre + "export", fmt, count, path)
                    row[f"import_{label}"] = run(pre + "import", fmt, count, path)
                    assert row[f"import_{label}"]["n"] == count, (fmt, approach, row[f"import_{label}"])
                    size = os.path.getsize(path) / 1e6
                    os.unlink(path)
                ex, im = row["export_large"], row["import_large"]
                print(f"{fmt:<15}{approach:<10}{ex['n'] / ex['seconds']:>14,.0f}{im['n'] / im['seconds']:>14,.0f}"
                      f"{size:>9.1f}"
                      + "".join(f"{row[k]['rss_mb'] - base:>13.1f}"
                                for k in ("export_small", "export_large", "import_small", "import_large")),
                      flush=True)
    if args.pg:
        pg_bench(args.pg, args.small, args.count, base)


if __name__ == "__main__":
    main()
