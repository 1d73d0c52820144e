"""Entry-point wrapper: a user error becomes one line on stderr and a non-zero exit."""

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, and what is allowed."""


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (what `kill` and DVC's queue send) unwinds like Ctrl-C, so temporary files are removed.
    raise KeyboardInterrupt


def _stop_with_parent() -> None:
    """Get SIGTERM when the parent dies (Linux), so a stage never outlives a killed `dvc repro`.

    `kill <pid of dvc>` ends DVC at once, without passing the signal on; the stage would go on
    as an orphan, writing outputs that no dvc.lock will record, maybe under a later run's feet.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise KeyboardInterrupt


def run(main: Callable[[], None]) -> None:
    """Run a stage's entry point; exit 1 with one line on a UserError, 130 on interruption."""
    try:
        signal.signal(signal.SIGTERM, _terminate)
        _stop_with_parent()
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
