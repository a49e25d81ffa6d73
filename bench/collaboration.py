"""Collaborative annotation under load: N clients in one session, each editing steadily.

Every client edits its own annotation ``--rate`` times a second over Socket.IO
(``real_time_annotation``, persisted with optimistic concurrency); every edit must reach every
other client exactly once as ``annotation_update``. Reported: send→receipt latency at the
other clients (p50, p99), deliveries per second, and edits lost or duplicated, checked against
both the acknowledgements and the final database state.

    python bench/collaboration.py [--clients 50] [--rate 2] [--seconds 30] [--procs 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def client_proc(base: str, tokens: list[str], session_id: str, video_id: str, rate: float, seconds: float,
                start_at: float, out: mp.Queue) -> None:
    import socketio

    latencies: list[float] = []
    received: Counter = Counter()
    acked: list[tuple[str, int]] = []
    lock = threading.Lock()
    clients = []
    for token in tokens:
        c = socketio.Client(reconnection=False)

        def on_update(data, me=c):
            now = time.time()
            notes = data["annotation"].get("annotator_notes") or ""
            if data["op"] != "update" or not notes.startswith("t="):
                return
            with lock:
                latencies.append(now - float(notes[2:].split(";")[0]))
                received[(id(me), data["annotation"]["id"], data["annotation"]["version"])] += 1

        c.on("annotation_update", on_update)
        c.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=20)
        c.call("join_annotation_session", {"session_id": session_id}, timeout=30)
        made = c.call("real_time_annotation", {"session_id": session_id, "op": "create", "annotation": {
            "start_timestamp": 0.0, "end_timestamp": 1.0, "annotation_type": "spatial",
            "class_label": "pedestrian", "bounding_box": {"x1": 1, "y1": 1, "x2": 20, "y2": 20}}}, timeout=30)
        clients.append((c, made["annotation"]))

    def editor(c, ann) -> None:
        version, n = ann["version"], 0
        time.sleep(max(0.0, start_at - time.time()) + (hash(ann["id"]) % 1000) / 1000 / rate)
        end = start_at + seconds
        while time.time() < end:
            t0 = time.time()
            r = c.call("real_time_annotation", {"session_id": session_id, "op": "update", "base_version": version,
                                                "annotation": {"id": ann["id"], "annotator_notes": f"t={t0};n={n}"}},
                       timeout=30)
            if r.get("ok"):
                version = r["version"]
                with lock:
                    acked.append((ann["id"], version))
            n += 1
            time.sleep(max(0.0, t0 + 1.0 / rate - time.time()))

    threads = [threading.Thread(target=editor, args=pair) for pair in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(3)  # let the last deliveries arrive
    with lock:
        per_edit = Counter()
        for (_me, ann_id, version), count in received.items():
            per_edit[(ann_id, version)] += count
        dupes = sum(count - 1 for count in received.values() if count > 1)
        out.put({"latencies": latencies, "acked": acked, "per_edit": dict(per_edit), "dupes": dupes,
                 "annotations": [a["id"] for _, a in clients]})
    for c, _ in clients:
        c.disconnect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="edits per second per client")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    args = parser.parse_args()

    from harness import Stack, make_clip
    from sqlalchemy import create_engine, select, text

    from client import Client
    from models import VideoAnnotation, migrate

    tmp = Path(tempfile.mkdtemp(prefix="bench-collab-"))
    name = f"vru_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    migrate(url)
    stack = Stack(tmp, url, "redis://127.0.0.1:6379/14")
    try:
        stack.start_web()
        api = Client(stack.base, stack.token())
        project = api.projects.create("bench")
        video = api.videos.upload(make_clip(tmp / "clip.avi"), project_id=project["id"])
        session = api.annotation_sessions.create(project["id"], video["id"], "bench")
        tokens = []
        for i in range(args.clients):
            uname = f"bench{i}-{uuid.uuid4().hex[:4]}"
            stack.create_user(uname, "annotator", "password-123")
            api.projects.add_member(project["id"], "annotator", username=uname)
            tokens.append(Client(stack.base).login(uname, "password-123"))
        out: mp.Queue = mp.Queue()
        start_at = time.time() + 8 + args.clients * 0.1
        chunks = [tokens[i::args.procs] for i in range(args.procs)]
        procs = [mp.Process(target=client_proc, args=(stack.base, chunk, session["id"], video["id"], args.rate,
                                                      args.seconds, start_at, out)) for chunk in chunks]
        for p in procs:
            p.start()
        results = [out.get(timeout=args.seconds + 600) for _ in procs]
        for p in procs:
            p.join()

        latencies = sorted(x for r in results for x in r["latencies"])
        acked = [a for r in results for a in r["acked"]]
        per_edit = Counter()
        for r in results:
            per_edit.update(r["per_edit"])
        expected_each = args.clients - 1
        lost = sum(max(0, expected_each - per_edit.get(edit, 0)) for edit in acked)
        dupes = sum(r["dupes"] for r in results)
        engine = create_engine(url)
        with engine.connect() as conn:
            versions = dict(conn.execute(select(VideoAnnotation.id, VideoAnnotation.version)).all())
        engine.dispose()
        acked_per_ann = Counter(ann for ann, _ in acked)
        db_mismatch = sum(1 for r in results for ann in r["annotations"]
                          if versions[uuid.UUID(ann)] != 1 + acked_per_ann.get(ann, 0))
        deliveries = len(latencies)
        print(f"collaboration: {args.clients} clients, {args.rate:g} edits/s each, {args.seconds:g} s, "
              f"one web process, {args.procs} client processes")
        print(f"edits acknowledged      {len(acked)}")
        print(f"deliveries              {deliveries} ({deliveries / args.seconds:.0f}/s; expected "
              f"{len(acked) * expected_each})")
        print(f"latency p50 / p99       {statistics.median(latencies) * 1000:.1f} ms / "
              f"{latencies[int(0.99 * (len(latencies) - 1))] * 1000:.1f} ms")
        print(f"lost deliveries         {lost}")
        print(f"duplicate deliveries    {dupes}")
        print(f"annotations whose stored version disagrees with the acknowledged edits: {db_mismatch}")
    finally:
        stack.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
