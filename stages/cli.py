"""Entry-point wrapper: a user error becomes one line on stderr and a non-zero exit."""

import signal
import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, and what is allowed."""


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (what `kill` and DVC's queue send) unwinds like Ctrl-C, so temporary files are removed.
    raise KeyboardInterrupt


def run(main: Callable[[], None]) -> None:
    """Run a stage's entry point; exit 1 with one line on a UserError, 130 on interruption."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
