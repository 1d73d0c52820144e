"""How a stage's entry point ends: stages.cli.run wraps every stage's `main`."""

import errno
import os
import signal

import pytest

from stages.cli import UserError, run


@pytest.fixture(autouse=True)
def keep_sigterm():
    """run() installs its SIGTERM handler in this process: put pytest's back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_finished_stage_returns_with_its_output(capsys):
    def main():
        print("accuracy 0.83")

    assert run(main) is None
    assert capsys.readouterr() == ("accuracy 0.83\n", "")


def test_a_user_error_is_one_line_and_exit_1(capsys):
    def main():
        print("last words", flush=True)
        raise UserError("params.yaml: epochs = 0 is not allowed")

    with pytest.raises(SystemExit) as exited:
        run(main)
    assert exited.value.code == 1
    assert capsys.readouterr() == ("last words\n", "error: params.yaml: epochs = 0 is not allowed\n")


@pytest.mark.parametrize("interrupt", ["ctrl-c", "sigterm"])
def test_an_interruption_is_one_line_and_exit_130(interrupt, capsys):
    def main():
        if interrupt == "ctrl-c":
            raise KeyboardInterrupt
        signal.raise_signal(signal.SIGTERM)  # `kill <pid>`, what DVC's queue sends too

    with pytest.raises(SystemExit) as exited:
        run(main)
    assert exited.value.code == 130
    assert capsys.readouterr().err == "interrupted: nothing was written\n"


def test_any_other_error_is_not_hidden():
    """A bug is a traceback for the developer, not a one-line message."""
    def main():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run(main)


def test_a_full_disk_is_one_line_and_exit_1(capsys):
    def main():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/.raw-tmp-x/train-images-idx3-ubyte")

    with pytest.raises(SystemExit) as exited:
        run(main)
    assert exited.value.code == 1
    where = "data/.raw-tmp-x/train-images-idx3-ubyte"
    expected = f"error: No space left on device ({where}); free some space, then run again\n"
    assert capsys.readouterr().err == expected

    def denied():
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "data/raw")

    with pytest.raises(PermissionError):  # other OS errors are not taken for a full disk
        run(denied)
