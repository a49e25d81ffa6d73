"""The browser dashboard: the page at ``/`` and the little configuration it needs from the server.

The page is static HTML, CSS and JavaScript under ``webapp/static/`` (no build step, no inline
script, the Socket.IO client served from ``static/vendor/``); everything it shows comes from the
same HTTP API and Socket.IO rooms any other client uses.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, send_from_directory
from flask_smorest import Blueprint

from ..auth import current_user

bp = Blueprint("dashboard", __name__, url_prefix="/api", description="What the browser dashboard needs")

#: The dashboard's content security policy: scripts, styles and sockets of this origin only;
#: frames and plots are drawn from ``blob:``/``data:`` URLs made by the page itself.
DASHBOARD_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                 "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
                 "frame-ancestors 'none'")


@bp.route("/config", methods=["GET"])
def client_config() -> dict[str, Any]:
    """Settings a client may show: where Flower listens (same host, this port)."""
    current_user()
    settings = current_app.config["SETTINGS"]
    return {"flower_port": settings.flower_port, "max_upload_bytes": settings.max_upload_bytes}


def register_page(app: Flask) -> None:
    """Serve the single-page dashboard at ``/`` (its scripts and styles come from ``/static``)."""

    def index() -> Response:
        response = send_from_directory(app.static_folder, "index.html", max_age=0)
        response.headers["Content-Security-Policy"] = DASHBOARD_CSP
        return response

    app.add_url_rule("/", "dashboard_index", index, methods=["GET"])
