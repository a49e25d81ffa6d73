"""The web front: Flask + Flask-SocketIO.

Kept free of imports so that ``python -m webapp`` can monkey-patch for gevent before
Flask, Redis or SSL are loaded; the factory lives in :mod:`webapp.factory`.
"""
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: object, **kwargs: object) -> "Flask":
    from .factory import create_app as factory

    return factory(*args, **kwargs)
