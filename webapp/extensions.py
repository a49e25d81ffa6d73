"""Extensions created once and bound to the app in the factory."""
import jwt
from flask import Response, current_app, request
from flask_limiter import Limiter
from flask_smorest import Api
from flask_socketio import SocketIO
from werkzeug.exceptions import HTTPException

from .errors import from_http_exception


class ShapedApi(Api):
    """flask-smorest with the platform's error shape instead of its own."""

    def handle_http_exception(self, error: HTTPException) -> Response:
        return from_http_exception(error)


api = ShapedApi()
socketio = SocketIO()


def rate_key() -> str:
    """Per user when the request carries a validly signed token, else per client address.

    Runs before authentication, so it only checks the signature (no database read).
    """
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        try:
            claims = jwt.decode(header[7:].strip(), current_app.config["SETTINGS"].secret_key, algorithms=["HS256"])
            return f"user:{claims['sub']}"
        except (jwt.InvalidTokenError, KeyError):
            pass
    return f"ip:{request.remote_addr}"


limiter = Limiter(key_func=rate_key)
