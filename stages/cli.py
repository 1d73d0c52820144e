"""How a stage run ends: all its outputs in place or none, one line for a user's error, 130 when stopped."""

import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

_pending: list[tuple[Path, Path]] | None = None  # the running stage's finished (temporary, target)


class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, and what is allowed or what to run."""


def put_in_place(tmp: Path, path: Path) -> None:
    """Move a finished output onto `path`; in a stage run by `run`, with the stage's others at its end."""
    if _pending is not None:
        _pending.append((tmp, path))
        return
    if tmp.is_dir() and path.exists():
        shutil.rmtree(path)  # os.replace cannot replace a non-empty directory
    os.replace(tmp, path)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def run(main: Callable[[], None]) -> None:
    """Run a stage's `main`: its outputs appear together when it returns, or not at all (an error or an
    interruption); exit 1 with one line on a UserError or a full disk, 130 on Ctrl-C or SIGTERM."""
    global _pending
    stops = []  # signals received: a library may lose their KeyboardInterrupt (NumPy, iterating strings)
    _pending, finished, running = [], [], True

    def stop(signum: int, frame: object) -> None:  # SIGTERM (`kill`, DVC's queue) unwinds like Ctrl-C
        stops.append(signum)
        if running:  # once `main` has ended, the moves, the line and the cleanup are never cut short
            raise KeyboardInterrupt

    handlers = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            main()
        finally:
            running = False
        finished, _pending = _pending, None
        if stops:  # one whose KeyboardInterrupt a library lost
            raise KeyboardInterrupt
        while finished:
            put_in_place(*finished.pop(0))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror}{where}; free some space, then run again", file=sys.stderr)
        sys.exit(1)
    except BaseException as error:  # Ctrl-C, or an error a library raised on it (Matplotlib's imports)
        if not stops and not isinstance(error, KeyboardInterrupt):
            raise
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
    finally:
        unmoved, _pending = (_pending or []) + finished, None  # what an error or an interruption left
        for tmp, _ in unmoved:
            remove(tmp)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
