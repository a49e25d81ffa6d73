"""`python -m webapp`: the web front under gevent, with the outbox dispatcher and the listener
for changes of rights beside it."""
from gevent import monkey

monkey.patch_all()

from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()  # a slow query yields to other requests instead of blocking the process

import logging  # noqa: E402
import sys  # noqa: E402

from models import SchemaOutOfDate  # noqa: E402
from settings import UnsafeConfiguration, load_settings  # noqa: E402
from workers.embedded_redis import ensure_redis_url  # noqa: E402


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s web %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    redis_url = ensure_redis_url()
    settings = load_settings()
    from webapp.extensions import socketio
    from webapp.factory import create_app
    from webapp.realtime import outbox_loop
    from webapp.rights import listen
    from webapp.sockets import recheck_user

    try:
        app = create_app(settings, redis_url=redis_url)
    except (SchemaOutOfDate, UnsafeConfiguration) as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 3
    socketio.start_background_task(outbox_loop, app)
    socketio.start_background_task(listen, app, recheck_user, socketio.sleep)  # rights changed elsewhere
    logging.getLogger(__name__).info("listening on http://%s:%d", settings.host, settings.port)
    socketio.run(app, host=settings.host, port=settings.port, log_output=False, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
