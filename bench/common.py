"""What the benchmark scripts share: percentiles, a throw-away database, pycocotools as baseline."""
from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile by nearest rank; NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def make_database(kind: str, tmp: Path, prefix: str = "vru_bench") -> tuple[str, Callable[[], None]]:
    """A SQLite file under ``tmp``, or a PostgreSQL database of its own; returns its URL and a drop function."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{prefix}.db'}", lambda: None
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, drop


def run_pycocotools(gt_json: dict[str, Any], results: list[dict[str, Any]]) -> np.ndarray:
    """COCOeval bbox evaluate + accumulate + summarize, quietly; the 12 stats."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_json
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)
