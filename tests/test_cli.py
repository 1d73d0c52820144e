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


def test_a_stage_s_outputs_appear_together_when_it_ends(tmp_path):
    from stages.data import atomic_path, write_json

    def names():
        return sorted(p.name for p in tmp_path.iterdir())

    def main():
        write_json(tmp_path / "report.json", {"accuracy": 0.5})
        with atomic_path(tmp_path / "arrays", directory=True) as arrays:
            (arrays / "x.npy").write_bytes(b"x")
        assert [name for name in names() if not name.startswith(".")] == []  # finished, not yet in place

    run(main)
    assert names() == ["arrays", "report.json"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, UserError("bad input")],
                         ids=["interrupted", "user-error"])
def test_a_stage_stopped_after_an_output_leaves_the_previous_one(stop, tmp_path):
    from stages.data import write_json

    (tmp_path / "report.json").write_text("the previous run's\n")

    def main():
        write_json(tmp_path / "report.json", {"accuracy": 0.5})
        raise stop

    with pytest.raises(SystemExit):
        run(main)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left either
    assert (tmp_path / "report.json").read_text() == "the previous run's\n"
