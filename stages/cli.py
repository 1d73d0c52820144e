"""How a stage run ends: its outputs all in place or none, one line for a user's error, exit 130 when stopped."""

import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, and what is allowed or what to run."""


class _Outputs:
    """The outputs a stage has finished, each a temporary beside its target, moved into place at its end."""

    pending: list[tuple[Path, Path]] | None = None  # (temporary, target); None: no stage is running


def put_in_place(tmp: Path, path: Path) -> None:
    """Move a finished output onto `path`: now, or with the running stage's others when it ends."""
    if _Outputs.pending is None:
        _replace(tmp, path)
    else:
        _Outputs.pending.append((tmp, path))


def _replace(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and path.exists():
        shutil.rmtree(path)  # os.replace cannot replace a non-empty directory
    os.replace(tmp, path)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (what `kill` and DVC's queue send) unwinds like Ctrl-C: temporaries are removed.
    raise KeyboardInterrupt


def run(main: Callable[[], None]) -> None:
    """Run a stage's entry point: exit 1 with one line on a UserError, 130 on interruption.

    Its outputs appear together when `main` returns, or not at all: an interruption or an error
    at any point leaves every output as it was before the run.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    _Outputs.pending = []
    try:
        main()
        # Not stopped half-way through the moves: a Ctrl-C waits until they are done.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for tmp, path in _Outputs.pending:
            _replace(tmp, path)
        _Outputs.pending = None
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        except KeyboardInterrupt:
            pass  # came after the outputs were in place: the stage has finished
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror}{where}; free some space, then run again", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
    finally:
        for tmp, _ in _Outputs.pending or ():  # what an error or interruption left unmoved
            remove(tmp)
        _Outputs.pending = None


def remove(path: Path) -> None:
    """Remove a temporary file or directory, if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
