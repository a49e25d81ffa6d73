"""Where the command line keeps its URL and token: one JSON file, readable by its owner only."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:5000"


def config_dir() -> Path:
    """``VRU_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/vru``, else ``~/.config/vru``."""
    explicit = os.environ.get("VRU_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vru"


def config_path() -> Path:
    return config_dir() / "config.json"


def load() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(data: dict[str, Any]) -> Path:
    """Write the file with mode 0600 from its first byte (the token is a credential)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    return path


def resolve(url: str | None, token: str | None) -> tuple[str, str | None]:
    """Options first, then ``VRU_URL`` / ``VRU_TOKEN``, then the saved login."""
    saved = load()
    return (url or os.environ.get("VRU_URL") or saved.get("url") or DEFAULT_URL,
            token or os.environ.get("VRU_TOKEN") or saved.get("token"))
