"""Settings for every process of the platform, read from the environment.

Everything has an embedded default so that nothing needs configuring to try the platform:
a SQLite file under ``var/``, files under ``var/storage`` and Redis on localhost (the web and
worker entry points start an embedded one when none answers: :mod:`workers.embedded_redis`).
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: Redis when ``REDIS_URL`` names none (an embedded server, once started, exports its own URL).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

DEFAULT_SECRET = "dev-secret-change-me-0123456789abcdef"


def redis_url() -> str:
    """``REDIS_URL`` as the environment says now, else the local default."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


@dataclass(frozen=True)
class Settings:
    env: str
    var_dir: Path
    database_url: str
    redis_url: str
    storage_dir: Path
    storage_url: str | None
    s3_endpoint_url: str | None
    storage_cache_dir: Path | None
    storage_cache_bytes: int
    secret_key: str
    jwt_ttl_seconds: int
    max_upload_bytes: int
    cors_origins: list[str]
    admin_username: str
    admin_password: str
    host: str
    port: int
    flower_port: int
    flower_basic_auth: str
    socketio_channel: str
    cpu_autoscale: str
    job_max_attempts: int
    heartbeat_seconds: float
    stale_after_seconds: float
    lost_message_after_seconds: float
    outbox_interval_seconds: float
    progress_db_interval_seconds: float
    progress_emit_interval_seconds: float
    rate_limit_default: str
    rate_limit_login: str
    rate_limit_upload: str
    rate_limit_socket: str
    export_ttl_seconds: int
    import_retention_seconds: int
    model_dir: Path
    detection_device: str
    detection_half: bool
    max_json_body_bytes: int
    max_json_field_bytes: int
    max_json_depth: int
    direct_export_max_rows: int

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def load_settings() -> Settings:
    """Read the environment now; call again after changing it (tests do)."""
    var_dir = Path(_env("VAR_DIR", str(ROOT / "var"))).resolve()
    env = _env("PLATFORM_ENV", "development")
    # Production names its secret (checked by production_problems); elsewhere one is made once.
    secret = os.environ.get("SECRET_KEY") or ("" if env == "production" else generated_secret(var_dir))
    return Settings(
        env=env,
        var_dir=var_dir,
        database_url=_env("DATABASE_URL", f"sqlite:///{var_dir / 'platform.db'}"),
        redis_url=redis_url(),
        storage_dir=Path(_env("STORAGE_DIR", str(var_dir / "storage"))).resolve(),
        # s3://bucket/prefix for an object store shared by hosts; unset: STORAGE_DIR alone.
        storage_url=os.environ.get("STORAGE_URL") or None,
        s3_endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
        storage_cache_dir=Path(os.environ["STORAGE_CACHE_DIR"]).resolve() if os.environ.get("STORAGE_CACHE_DIR")
        else None,
        storage_cache_bytes=_env_int("STORAGE_CACHE_BYTES", 20 * 1024**3),
        secret_key=secret,
        jwt_ttl_seconds=_env_int("JWT_TTL_SECONDS", 12 * 3600),
        max_upload_bytes=_env_int("MAX_UPLOAD_BYTES", 2 * 1024**3),
        cors_origins=[o.strip() for o in _env("CORS_ORIGINS", "http://localhost:5000").split(",") if o.strip()],
        admin_username=_env("ADMIN_USERNAME", "admin"),
        admin_password=_env("ADMIN_PASSWORD", "admin"),
        host=_env("HOST", "127.0.0.1"),
        port=_env_int("PORT", 5000),
        flower_port=_env_int("FLOWER_PORT", 5555),
        flower_basic_auth=_env("FLOWER_BASIC_AUTH", "admin:admin"),
        socketio_channel=_env("SOCKETIO_CHANNEL", "vru-socketio"),
        cpu_autoscale=_env("CPU_AUTOSCALE", "4,1"),
        job_max_attempts=_env_int("JOB_MAX_ATTEMPTS", 3),
        heartbeat_seconds=_env_float("JOB_HEARTBEAT_SECONDS", 2.0),
        stale_after_seconds=_env_float("JOB_STALE_AFTER_SECONDS", 30.0),
        lost_message_after_seconds=_env_float("JOB_LOST_MESSAGE_AFTER_SECONDS", 60.0),
        outbox_interval_seconds=_env_float("OUTBOX_INTERVAL_SECONDS", 1.0),
        progress_db_interval_seconds=_env_float("PROGRESS_DB_INTERVAL_SECONDS", 2.0),
        progress_emit_interval_seconds=_env_float("PROGRESS_EMIT_INTERVAL_SECONDS", 0.2),
        rate_limit_default=_env("RATE_LIMIT_DEFAULT", "3000 per minute"),
        rate_limit_login=_env("RATE_LIMIT_LOGIN", "10 per minute"),
        rate_limit_upload=_env("RATE_LIMIT_UPLOAD", "120 per hour"),
        # Socket.IO events per user, all events and web processes together; HTTP's limit by default.
        rate_limit_socket=_env("RATE_LIMIT_SOCKET", _env("RATE_LIMIT_DEFAULT", "3000 per minute")),
        export_ttl_seconds=_env_int("EXPORT_TTL_SECONDS", 7 * 24 * 3600),
        # How long an import's uploaded file is kept once the import ended (0: deleted at once).
        import_retention_seconds=_env_int("IMPORT_RETENTION_SECONDS", 0),
        model_dir=Path(_env("VISION_MODEL_DIR", str(var_dir / "models"))).resolve(),
        detection_device=_env("DETECTION_DEVICE", "auto"),
        detection_half=_env("DETECTION_HALF", "false").lower() in ("1", "true", "yes"),
        max_json_body_bytes=_env_int("MAX_JSON_BODY_BYTES", 1024 * 1024),
        max_json_field_bytes=_env_int("MAX_JSON_FIELD_BYTES", 64 * 1024),
        max_json_depth=_env_int("MAX_JSON_DEPTH", 64),
        direct_export_max_rows=_env_int("DIRECT_EXPORT_MAX_ROWS", 20_000),
    )


SECRET_FILE = "secret_key"


def generated_secret(var_dir: Path) -> str:
    """The secret of this ``VAR_DIR`` when ``SECRET_KEY`` is unset: random, made on first start.

    Kept in ``VAR_DIR/secret_key`` (mode 0600) so that every process sharing the directory
    (web processes, workers) signs and checks with the same key; created with ``O_EXCL`` so
    that processes starting together agree on one.
    """
    path = var_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    tmp = var_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(tmp, path)  # atomic and refuses to replace: the first process to get here wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    value = path.read_text().strip()
    if len(value) < 32:
        raise RuntimeError(f"{path} holds no usable secret; delete it to make a new one")
    return value


class UnsafeConfiguration(RuntimeError):
    """Production settings that would leave the platform open."""


def production_problems(settings: Settings) -> list[str]:
    """What makes these settings unsafe for production (empty list: nothing)."""
    if not settings.is_production:
        return []
    problems = []
    if settings.secret_key == DEFAULT_SECRET or len(settings.secret_key) < 32:
        problems.append("SECRET_KEY is the default or shorter than 32 characters")
    if "*" in settings.cors_origins:
        problems.append("CORS_ORIGINS is '*': name the origins that may call the API")
    if not settings.flower_basic_auth or ":" not in settings.flower_basic_auth or \
            settings.flower_basic_auth == "admin:admin":
        problems.append("FLOWER_BASIC_AUTH is empty or the default: Flower would be open")
    if settings.admin_password in ("admin", "") or len(settings.admin_password) < 12:
        problems.append("ADMIN_PASSWORD is the default or shorter than 12 characters")
    return problems


_cached: Settings | None = None


def cached_settings() -> Settings:
    """Settings read once per process, for hot paths; ``load_settings`` re-reads them."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached
