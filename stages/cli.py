"""Entry-point wrapper: a user error becomes one line on stderr and a non-zero exit."""

import atexit
import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable

from stages.errors import UserError


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (what `kill` and DVC's queue send) unwinds like Ctrl-C, so temporary files are removed.
    raise KeyboardInterrupt


def _launcher() -> int:
    """The pid of the process that ran this stage: DVC, above any shell it ran the command in.

    DVC runs `cmd` through `$SHELL -c` (`/bin/sh` when SHELL is unset, as under cron or in CI);
    bash execs a lone command but dash forks, leaving a shell between DVC and the stage. Every
    process DVC started for the stage carries DVC_STAGE in its environment; DVC itself does not.
    """
    pid = os.getppid()
    if "DVC_STAGE" not in os.environ:
        return pid
    while pid > 1:
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                if not any(v.startswith(b"DVC_STAGE=") for v in file.read().split(b"\0")):
                    return pid
            with open(f"/proc/{pid}/stat", "rb") as file:
                pid = int(file.read().rpartition(b")")[2].split()[1])  # field 4: ppid
        except OSError:
            return os.getppid()
    return pid


def _stop_with_launcher() -> None:
    """Get SIGTERM when the process that ran this stage dies (Linux), so a stage never outlives a
    killed `dvc repro`.

    `kill <pid of dvc>` ends DVC at once, without passing the signal on; the stage would go on
    as an orphan, writing outputs that no dvc.lock will record, maybe under a later run's feet.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        launcher = os.pidfd_open(_launcher())
    except ProcessLookupError:  # it died before the watch began
        raise KeyboardInterrupt from None
    except OSError:  # no pidfd (Linux < 5.3): no watch
        return

    def watch() -> None:
        select.select([launcher], [], [])  # readable once the launcher has exited
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-launcher", daemon=True).start()


def _exit_now() -> None:
    """Exit 0 at once, every output being written and closed.

    The interpreter's teardown frees TensorFlow's modules and objects one by one: over a second
    per stage (bench/BENCHMARKS.md), for a process that is ending anyway. What a normal exit does
    before that teardown still happens: the exit handlers run (TensorFlow's autograph removes its
    temporary files there) and stdout and stderr are flushed.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):  # from now on a signal just ends the process
        signal.signal(signum, signal.SIG_DFL)
    atexit._run_exitfuncs()  # the handlers sys.exit would run; CPython has no public name for it
    with contextlib.suppress(OSError):  # a reader that has gone away, as a normal exit ignores it
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


def run(main: Callable[[], None]) -> None:
    """Run a stage's entry point; exit 0 at once when it is done, 1 with one line on a UserError,
    130 on interruption."""
    try:
        signal.signal(signal.SIGTERM, _terminate)
        _stop_with_launcher()
        main()
        _exit_now()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
