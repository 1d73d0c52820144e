"""How a stage's run ends (stages.exits.run): a line, an exit code, each output whole or absent."""

import errno
import os
import signal
import sys

import pytest

from scripts.toolkit import REPO, temporaries
from stages.data import atomic_path, write_json
from stages.exits import INTERRUPTED, UserError, run

PREVIOUS = "the previous run's\n"
STOPPED = ("interrupted: outputs finished before the stop are in place, the one being written is "
           "not; `dvc repro` reruns the stage\n")


class CtrlCOnWrite:
    """A stream on which every write is preceded by Ctrl-C."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        signal.raise_signal(signal.SIGINT)
        return self.stream.write(text)


@pytest.mark.parametrize("previous", [True, False], ids=["by-hand", "under-dvc-repro"])
@pytest.mark.parametrize("stop, ends, err", [
    (None, None, ""),
    (UserError("epochs = 0 is not allowed"), 1, "error: epochs = 0 is not allowed\n"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/raw"), 1,
     f"error: {os.strerror(errno.ENOSPC)} (data/raw); free some space, then run again\n"),
    (KeyboardInterrupt(), 130, STOPPED),
    ("SIGTERM", 130, STOPPED),  # `kill <pid>`, what DVC's queue sends too
    # A library that raises another error on Ctrl-C (Matplotlib importing its backend).
    ("SIGINT, another error", 130, STOPPED),
    ("SIGINT, twice", 130, STOPPED),  # again while the stage says so
    # A bug is a traceback for the developer, not one line; nor is another OS error a full disk.
    (ZeroDivisionError(), ZeroDivisionError, ""),
    (PermissionError(errno.EACCES, "denied", "data/raw"), PermissionError, ""),
], ids=["finished", "user-error", "full-disk", "ctrl-c", "sigterm", "ctrl-c-as-another-error",
        "ctrl-c-twice", "bug", "not-a-full-disk"])
def test_a_stopped_stage_keeps_the_outputs_it_finished_not_the_one_it_was_writing(
        stop, ends, err, previous, tmp_path, capsys, monkeypatch):
    """Over a previous run's outputs (by hand), or none (DVC deletes them before it runs one)."""
    report, arrays = tmp_path / "report.json", tmp_path / "arrays"
    if previous:
        report.write_text(PREVIOUS)
        arrays.mkdir()
        (arrays / "x.npy").write_text(PREVIOUS)
    handlers = [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)]

    def main():
        print("last words", flush=True)
        write_json(report, {"accuracy": 0.5})
        with atomic_path(arrays, directory=True) as new:
            (new / "x.npy").write_text("new\n")
            if stop == "SIGTERM":
                signal.raise_signal(signal.SIGTERM)
            elif stop == "SIGINT, twice":
                monkeypatch.setattr(sys, "stderr", CtrlCOnWrite(sys.stderr))
                signal.raise_signal(signal.SIGINT)
            elif stop == "SIGINT, another error":
                try:
                    signal.raise_signal(signal.SIGINT)
                except KeyboardInterrupt:
                    # B904: raised without `from`, as a library may
                    raise ImportError("cannot load the Agg backend")  # noqa: B904
            elif stop:
                raise stop

    if ends is None:
        assert run(main) is None
    else:
        with pytest.raises(ends if isinstance(ends, type) else SystemExit) as raised:
            run(main)
        assert isinstance(ends, type) or raised.value.code == ends
    assert capsys.readouterr() == ("last words\n", err)
    assert [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)] == handlers
    assert report.read_text() == '{\n  "accuracy": 0.5\n}\n'  # finished before the stop: in place
    being_written = (arrays / "x.npy").read_text() if arrays.exists() else None
    assert being_written == ("new\n" if ends is None else PREVIOUS if previous else None)
    assert temporaries(tmp_path) == []


def test_the_lines_a_stage_ends_with_are_the_ones_docs_reliability_quotes():
    assert INTERRUPTED + "\n" == STOPPED
    doc = (REPO / "docs/reliability.md").read_text()
    assert f"`` {INTERRUPTED} ``" in doc
    assert "`error: No space left on device (<file>); free some space, then run again`" in doc
