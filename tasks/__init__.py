"""Celery tasks: thin adapters that load a job row, call an engine, report progress."""
from celery.signals import worker_init, worker_process_init

from .app import app


@worker_init.connect
def _check_schema(**_kwargs) -> None:
    """A worker refuses to start on a database schema it does not know."""
    from models import check_schema

    from . import runtime

    check_schema(runtime.database().engine)
    runtime.reset()


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    from . import runtime

    runtime.reset()


__all__ = ["app"]
