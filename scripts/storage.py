"""Run the team's S3 store on 127.0.0.1 (`make storage`), or print the lines a teammate runs."""

import argparse
import signal
import sys
from pathlib import Path

from scripts.toolkit import BUCKET, Store, free_port

DATA = Path(".storage")  # of the clone that keeps the store


def serve(project: Path) -> int:
    store = Store.of_project(project, (project / DATA).resolve())
    if store.port and not (project / DATA).is_dir():  # configured from a teammate's lines
        print(f"error: .dvc/config.local points at the store on {store.endpoint}, kept by another "
              "clone: start it there (`make storage`); this clone starts none of its own",
              file=sys.stderr)
        return 1
    if store.port and store.answers():
        print(f"error: a store already answers on {store.endpoint}, where .dvc/config.local "
              "points: use it, or stop it (Ctrl-C where `make storage` runs) first",
              file=sys.stderr)
        return 1
    if not store.port:  # the first start: a free port and the new keys, written for this clone
        store.port = free_port()
        store.configure(project)
    try:
        store.start()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"S3 store on {store.endpoint}, bucket s3://{BUCKET}, data in {DATA}/: Ctrl-C stops it.\n"
          f"This clone's .dvc/config.local points at it. In a teammate's clone, run:\n"
          f"{store.teammate_commands()}", end="", flush=True)
    # Ctrl-C or SIGTERM (a supervisor's stop, `kill`) stop the server with this process.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = store.process.wait()  # the server ended by itself: its exit code
    except KeyboardInterrupt:
        code = 0
    finally:
        store.stop()
    return code


def share(project: Path) -> int:
    store = Store.of_project(project, (project / DATA).resolve())
    if not (project / DATA).is_dir() or store.port == 0:
        print("error: this clone keeps no store; run `make storage` in the clone that keeps it and "
              "run the `dvc remote modify --local` lines it prints here", file=sys.stderr)
        return 1
    print(store.teammate_commands(), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["serve", "share"],
                        help="serve: run the store until Ctrl-C; share: print those lines again")
    args = parser.parse_args(argv)
    if not Path(".dvc").is_dir():  # the store and its settings belong to a clone, at its top
        print(f"error: {Path.cwd()} is not the top of a clone of this project (no .dvc/): run "
              "`make storage` there", file=sys.stderr)
        return 1
    return (serve if args.command == "serve" else share)(Path.cwd())


if __name__ == "__main__":
    sys.exit(main())
