"""Start pools and the whole stack.

    python -m workers gpu            one worker per visible GPU on queue "gpu" (one on the CPU if none)
    python -m workers cpu [--name N] [--autoscale MAX,MIN]   the CPU pool on queue "cpu"
    python -m workers beat           periodic maintenance (outbox sweep, stale-job reaper)
    python -m workers flower         Flower with basic auth from FLOWER_BASIC_AUTH
    python -m workers up             everything: web, GPU pool, CPU pool, beat, Flower
    python -m workers demo           start the stack, run the main job end to end, stop
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from settings import load_settings, production_problems

from .embedded_redis import ensure_redis_url
from .pools import ProcessSpec, Supervisor, celery_cmd, cpu_pool_spec, gpu_pool_specs


def beat_spec() -> ProcessSpec:
    settings = load_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return ProcessSpec("beat", celery_cmd("beat", "--loglevel", "INFO",
                                          "-s", str(settings.var_dir / "celerybeat-schedule")))


def flower_spec() -> ProcessSpec:
    settings = load_settings()
    # Flower reads FLOWER_BASIC_AUTH from the environment: the password stays out of argv.
    return ProcessSpec("flower", [sys.executable, "-m", "workers.flower", f"--port={settings.flower_port}",
                                  f"--address={settings.host}"],
                       {"FLOWER_BASIC_AUTH": settings.flower_basic_auth})


def web_spec() -> ProcessSpec:
    return ProcessSpec("web", [sys.executable, "-m", "webapp"])


def stack_specs() -> list[ProcessSpec]:
    return [web_spec(), *gpu_pool_specs(), cpu_pool_spec(), beat_spec(), flower_spec()]


def run(specs: list[ProcessSpec], log_dir: str | None = None) -> int:
    sup = Supervisor(log_dir)
    sup.install_signal_handlers()
    for spec in specs:
        sup.start(spec)
    return sup.wait()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("command", choices=["gpu", "cpu", "beat", "flower", "up", "demo"])
    parser.add_argument("--name", help="CPU worker name (unique per host when running several)")
    parser.add_argument("--autoscale", help="CPU pool MAX,MIN processes (default CPU_AUTOSCALE or 4,1)")
    args = parser.parse_args(argv)

    problems = production_problems(load_settings())
    if problems:
        print("refusing to run in production: " + "; ".join(problems), file=sys.stderr)
        return 3
    ensure_redis_url()  # children inherit REDIS_URL; an embedded Redis lives as long as we do
    if args.command in ("up", "demo"):
        from models import migrate

        logging.getLogger("alembic").setLevel(logging.WARNING)
        migrate(load_settings().database_url)
    if args.command == "demo":
        from .demo import demo

        return demo()
    if args.command == "up":
        settings = load_settings()
        print(f"web     http://127.0.0.1:{settings.port}/  (API under /api, OpenAPI at /openapi.json)")
        print(f"flower  http://127.0.0.1:{settings.flower_port}/  (user:password from FLOWER_BASIC_AUTH)")
        print(f"redis   {os.environ['REDIS_URL']}")
        return run(stack_specs())
    spec = {"gpu": None, "cpu": cpu_pool_spec(args.name, args.autoscale), "beat": beat_spec(),
            "flower": flower_spec()}[args.command]
    return run(gpu_pool_specs() if spec is None else [spec])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
