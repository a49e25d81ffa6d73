"""Celery tasks: thin adapters that load a job row, call an engine, report progress."""
from celery.signals import worker_init, worker_process_init

from .app import app


@worker_init.connect
def _check_schema(**_kwargs: object) -> None:
    """A worker refuses to start on a database schema it does not know."""
    import sys

    from models import SchemaOutOfDate, check_schema

    from . import runtime

    try:
        check_schema(runtime.database().engine)
    except SchemaOutOfDate as exc:
        # Celery logs and swallows exceptions from signal handlers; a worker must not run on.
        print(f"refusing to start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    finally:
        runtime.reset()


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    from . import runtime

    runtime.reset()


__all__ = ["app"]
