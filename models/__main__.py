"""`python -m models migrate` brings the configured database to the newest schema.

`python -m models fetch-demo-model [CACHE_DIR]` converts a real trained pedestrian detector and
registers it as ``pedestrian-ssdlite:0.2`` (see ``models.demo_model``).
"""
import sys

from settings import load_settings

from .db import Database, check_schema, current_revision, head_revision, migrate


def main(argv: list[str]) -> int:
    settings = load_settings()
    url = settings.database_url
    cmd = argv[0] if argv else "migrate"
    if cmd == "migrate":
        migrate(url)
        print(f"database at revision {head_revision()}")
        return 0
    if cmd == "check":
        db = Database(url)
        check_schema(db.engine)
        print(f"database at revision {current_revision(db.engine)} (up to date)")
        return 0
    if cmd == "fetch-demo-model":
        from .demo_model import fetch_demo_model

        check_schema(Database(url).engine)
        cache = argv[1] if len(argv) > 1 else settings.var_dir / "cache"
        return fetch_demo_model(url, settings.storage_dir, cache)
    print("usage: python -m models [migrate|check|fetch-demo-model [CACHE_DIR]]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
