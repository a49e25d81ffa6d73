"""Application factory: extensions, blueprints, authentication hook, Socket.IO."""
from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from flask_cors import CORS
from sqlalchemy.exc import IntegrityError

from models import Database, User, check_schema
from settings import Settings, UnsafeConfiguration, load_settings, production_problems

from . import errors
from .auth import bearer_token, hash_password, principal_from_token
from .bodies import check_json_body
from .db import close_session, db_session
from .extensions import api, limiter, socketio
from .uploads import StreamingUploadRequest, discard_uploads

log = logging.getLogger(__name__)
PUBLIC_ENDPOINTS = {"auth.token", "auth.health"}
ASYNC_MODE = "gevent"


def ensure_admin(database: Database, settings: Settings) -> None:
    """Create the configured administrator on first start."""
    if not (settings.admin_username and settings.admin_password):
        return
    with database.Session() as session:
        if session.query(User.id).filter_by(username=settings.admin_username).first():
            return
        session.add(User(username=settings.admin_username, password_hash=hash_password(settings.admin_password),
                         role="admin"))
        try:
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()


def create_app(settings: Settings | None = None, *, redis_url: str | None = None,
               async_mode: str = ASYNC_MODE, check_db: bool = True) -> Flask:
    settings = settings or load_settings()
    problems = production_problems(settings)
    if problems:
        raise UnsafeConfiguration("refusing to run in production: " + "; ".join(problems))
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.request_class = StreamingUploadRequest
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        STORAGE_DIR=str(settings.storage_dir),
        REDIS_URL=redis_url or settings.redis_url,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        API_TITLE="VRU model validation platform",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH=None,
        JSON_SORT_KEYS=False,
        RATELIMIT_DEFAULT=settings.rate_limit_default,
        RATELIMIT_STORAGE_URI=redis_url or settings.redis_url,
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis down must not take the API down: limits fall back to this process's memory.
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_KEY_PREFIX=f"ratelimit:{settings.socketio_channel}",
    )
    settings.storage_dir.mkdir(parents=True, exist_ok=True)

    database = Database(settings.database_url)
    if check_db:
        check_schema(database.engine)
        ensure_admin(database, settings)
    app.extensions["database"] = database
    import redis

    app.extensions["redis"] = redis.Redis.from_url(app.config["REDIS_URL"], socket_timeout=2,
                                                   socket_connect_timeout=2)

    CORS(app, resources={r"/api/*": {"origins": settings.cors_origins}},
         expose_headers=["Location", "Retry-After"])
    # Before the limiter: its login key reads the body, which must be checked first.
    app.before_request(check_json_body)
    limiter.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    from .routes import BLUEPRINTS

    for bp in BLUEPRINTS:
        api.register_blueprint(bp)
    from .routes.dashboard import register_page

    register_page(app)
    errors.register(app)

    @app.before_request
    def _authenticate() -> None:
        g.principal = None
        if request.method == "OPTIONS" or not request.path.startswith("/api/"):
            return None
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        g.principal = principal_from_token(db_session(), bearer_token())
        return None

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
        response.headers.setdefault("Cache-Control", "no-store")
        if settings.is_production:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    app.teardown_request(discard_uploads)
    app.teardown_appcontext(close_session)

    def origin_allowed(origin: str | None, environ: dict) -> bool:
        """Same origin always; other origins only when configured in CORS_ORIGINS."""
        if origin is None or origin in settings.cors_origins:
            return True
        return origin == f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"

    socketio.init_app(app, async_mode=async_mode, message_queue=app.config["REDIS_URL"],
                      channel=settings.socketio_channel, cors_allowed_origins=origin_allowed,
                      logger=False, engineio_logger=False)
    from . import run_sockets, sockets  # noqa: F401 - registers the handlers

    return app
