"""`python -m models migrate` brings the configured database to the newest schema."""
import sys

from settings import load_settings

from .db import Database, check_schema, current_revision, head_revision, migrate


def main(argv: list[str]) -> int:
    url = load_settings().database_url
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
    print("usage: python -m models [migrate|check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
