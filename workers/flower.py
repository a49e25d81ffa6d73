"""Flower with every page behind its basic auth, ``/metrics`` included.

Flower serves its Prometheus ``/metrics`` without asking for credentials even when
``FLOWER_BASIC_AUTH`` is set; task names, worker names and queue lengths would be open to
anyone who reaches the port. Run as ``python -m workers.flower [flower options]``.
"""
from __future__ import annotations

import sys


def protect_metrics() -> None:
    """Make Flower's metrics handler authenticate like its other pages."""
    import tornado.web
    from flower.views import monitor

    get = monitor.Metrics.get
    if not getattr(get, "_requires_auth", False):
        guarded = tornado.web.authenticated(get)
        guarded._requires_auth = True  # type: ignore[attr-defined]
        monitor.Metrics.get = guarded


def main(argv: list[str]) -> int:
    protect_metrics()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", "tasks", "flower", *argv]
    return celery_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
