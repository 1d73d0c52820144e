"""Entry-point wrapper: a user error becomes one line on stderr and exit 1, an interruption exit 130."""

import errno
import signal
import sys
from collections.abc import Callable

from stages.errors import UserError


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (what `kill` and DVC's queue send) unwinds like Ctrl-C: temporaries are removed.
    raise KeyboardInterrupt


def run(main: Callable[[], None]) -> None:
    """Run a stage's entry point: exit 1 with one line on a UserError, 130 on interruption."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # The disk, not the input: what was being written is removed (atomic writes).
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror}{where}; free some space, then run again", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
