"""`python -m tractcast.registry.migrations [upgrade|current|downgrade REVISION]`.

Runs on the metadata database the settings name (TRACTCAST_DATABASE_URL, else the SQLite file
in the store). Services migrate by themselves on first use; this is for operators who want the
schema in place, or its revision shown, before anything starts.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import create_engine

from tractcast.registry.migrations import (
    current_revision,
    downgrade_schema,
    head_revision,
    upgrade_schema,
)
from tractcast.registry.store import metadata_url
from tractcast.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tractcast.registry.migrations")
    parser.add_argument("command", choices=("upgrade", "current", "downgrade"))
    parser.add_argument("revision", nargs="?", help="downgrade target, e.g. base")
    args = parser.parse_args(argv)
    if args.command == "downgrade" and not args.revision:
        parser.error("downgrade needs a revision (e.g. base)")
    engine = create_engine(metadata_url(Settings.from_env()))
    try:
        if args.command == "upgrade":
            upgrade_schema(engine)
        elif args.command == "downgrade":
            downgrade_schema(engine, args.revision)
        print(f"at {current_revision(engine) or 'base'} (newest: {head_revision()})")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
