"""How a stage's entry point ends: stages.cli.run wraps every stage's `main`."""

import errno
import os
import signal

import pytest

from stages.cli import UserError, run
from stages.data import atomic_path, write_json

FULL = "data/.raw-tmp-x/train-images-idx3-ubyte"
STOPPED = "interrupted: nothing was written\n"
PREVIOUS = "the previous run's\n"


@pytest.fixture(autouse=True)
def keep_sigterm():
    """run() installs its SIGTERM handler in this process: put pytest's back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("stop, code, err", [
    (None, 0, ""),
    (UserError("epochs = 0 is not allowed"), 1, "error: epochs = 0 is not allowed\n"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), FULL), 1,
     f"error: No space left on device ({FULL}); free some space, then run again\n"),
    (KeyboardInterrupt(), 130, STOPPED),
    ("SIGTERM", 130, STOPPED),  # `kill <pid>`, what DVC's queue sends too
], ids=["finished", "user-error", "full-disk", "ctrl-c", "sigterm"])
def test_a_stage_s_outputs_appear_together_when_it_finishes_or_not_at_all(stop, code, err, tmp_path, capsys):
    """Stopped, it says one line and exits with `code`; the previous run's output stays, no temporary."""
    (tmp_path / "report.json").write_text(PREVIOUS)

    def main():
        print("last words", flush=True)
        write_json(tmp_path / "report.json", {"accuracy": 0.5})
        with atomic_path(tmp_path / "arrays", directory=True) as arrays:
            (arrays / "x.npy").write_bytes(b"x")
        # Both finished, neither in place yet.
        assert (tmp_path / "report.json").read_text() == PREVIOUS and not (tmp_path / "arrays").exists()
        if stop == "SIGTERM":
            signal.raise_signal(signal.SIGTERM)
        elif stop:
            raise stop

    if code:
        with pytest.raises(SystemExit) as exited:
            run(main)
        assert exited.value.code == code
    else:
        assert run(main) is None
    assert capsys.readouterr() == ("last words\n", err)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == (["report.json"] if code else ["arrays", "report.json"])
    assert (tmp_path / "report.json").read_text() == (PREVIOUS if code else '{\n  "accuracy": 0.5\n}\n')


@pytest.mark.parametrize("bug", [ZeroDivisionError(), PermissionError(errno.EACCES, "denied", "data/raw")],
                         ids=["bug", "not-a-full-disk"])
def test_any_other_error_is_not_hidden(bug):
    """A bug is a traceback for the developer, not a one-line message."""
    def main():
        raise bug

    with pytest.raises(type(bug)):
        run(main)
