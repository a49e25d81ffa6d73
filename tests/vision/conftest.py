"""Generated videos with known content and known presentation times."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def vtest(shared_data) -> Path:
    path = shared_data / "video" / "vtest.avi"
    assert path.is_file()
    return path
