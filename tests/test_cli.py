"""How a stage's entry point ends: stages.cli.run wraps every stage's `main`."""

import contextlib
import errno
import os
import signal
import sys

import pytest

from stages.cli import UserError, run
from stages.data import atomic_path, write_json

PREVIOUS = "the previous run's\n"


class CtrlCOnWrite:
    """A stream on which every write is preceded by Ctrl-C."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        signal.raise_signal(signal.SIGINT)
        return self.stream.write(text)


@pytest.mark.parametrize("stop, ends, err", [
    (None, None, ""),
    (UserError("epochs = 0 is not allowed"), 1, "error: epochs = 0 is not allowed\n"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/raw"), 1,
     "error: No space left on device (data/raw); free some space, then run again\n"),
    (KeyboardInterrupt(), 130, "interrupted: nothing was written\n"),
    ("SIGTERM", 130, "interrupted: nothing was written\n"),  # `kill <pid>`, what DVC's queue sends too
    # A library that loses Ctrl-C's KeyboardInterrupt (NumPy iterating strings) or raises another error
    # on it (Matplotlib importing its backend): still an interruption.
    ("SIGINT, lost", 130, "interrupted: nothing was written\n"),
    ("SIGINT, another error", 130, "interrupted: nothing was written\n"),
    ("SIGINT, twice", 130, "interrupted: nothing was written\n"),  # again while the stage says so
    # A bug is a traceback for the developer, not a one-line message; nor is another OS error a full disk.
    (ZeroDivisionError(), ZeroDivisionError, ""),
    (PermissionError(errno.EACCES, "denied", "data/raw"), PermissionError, ""),
], ids=["finished", "user-error", "full-disk", "ctrl-c", "sigterm", "ctrl-c-lost", "ctrl-c-as-another-error",
        "ctrl-c-twice", "bug", "not-a-full-disk"])
def test_a_stage_s_outputs_appear_together_when_it_finishes_or_not_at_all(stop, ends, err, tmp_path, capsys,
                                                                         monkeypatch):
    """Stopped: one line and exit 1 or 130 (a bug: raised as is); the previous output stays, no temporary."""
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
        elif stop == "SIGINT, lost":
            with contextlib.suppress(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        elif stop == "SIGINT, twice":
            monkeypatch.setattr(sys, "stderr", CtrlCOnWrite(sys.stderr))
            signal.raise_signal(signal.SIGINT)
        elif stop == "SIGINT, another error":
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                raise ImportError("cannot load the Agg backend")  # noqa: B904 (as a library may)
        elif stop:
            raise stop

    if ends is None:
        assert run(main) is None
    else:
        with pytest.raises(ends if isinstance(ends, type) else SystemExit) as raised:
            run(main)
        assert isinstance(ends, type) or raised.value.code == ends
    assert capsys.readouterr() == ("last words\n", err)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == (["report.json"] if ends else ["arrays", "report.json"])
    assert (tmp_path / "report.json").read_text() == (PREVIOUS if ends else '{\n  "accuracy": 0.5\n}\n')
