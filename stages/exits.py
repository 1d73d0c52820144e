"""How a stage run ends: one `error:` line and exit 1 for a user's error, 130 when stopped."""

import errno
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

STOPS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; `kill`, DVC's queue
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
# atomic_path (stages.data) renames each output into place at the end of its own block.
INTERRUPTED = ("interrupted: outputs finished before the stop are in place, the one being written "
               "is not; `dvc repro` reruns the stage")


class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, what is allowed or to run."""


def interrupted(error: BaseException | None) -> bool:
    """Whether `error` is a stop, or an error a library raised while handling one (Matplotlib's)."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__context__
    return False


def end(line: str, code: int) -> NoReturn:
    for signum in STOPS:
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C while the line is printed
    print(line, file=sys.stderr)
    sys.exit(code)


def run(main: Callable[[], None]) -> None:
    """Run a stage's `main`, SIGTERM unwinding it as Ctrl-C does, and turn its end into an exit."""
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in STOPS}
    try:
        main()
    except BaseException as error:
        if interrupted(error):
            end(INTERRUPTED, 130)
        if isinstance(error, UserError):
            end(f"error: {error}", 1)
        if isinstance(error, OSError) and error.errno in FULL_DISK:
            where = f" ({error.filename})" if error.filename else ""
            end(f"error: {error.strerror}{where}; free some space, then run again", 1)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
