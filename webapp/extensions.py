"""Extensions created once and bound to the app in the factory."""
from flask_smorest import Api
from flask_socketio import SocketIO

from .errors import from_http_exception


class ShapedApi(Api):
    """flask-smorest with the platform's error shape instead of its own."""

    def handle_http_exception(self, error):
        return from_http_exception(error)


api = ShapedApi()
socketio = SocketIO()
