"""Helpers for the evaluation tests: reference tools are imported here, quietly."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT), str(Path(__file__).resolve().parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

# motmetrics 1.4.0 still calls np.asfarray, which numpy 2 removed.
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def coco_eval_dir() -> Path:
    path = ROOT.parent / "shared" / "data" / "coco_eval"
    if not path.is_dir():
        pytest.skip(f"test data not found at {path}")
    return path
