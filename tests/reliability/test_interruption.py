"""Interruption: `dvc repro` stopped while train fits, then run again.

A stage stopped on its own: tests/test_exits.py (every way to stop) and test_download_faults.py."""

import json
import os
import shutil
import signal
import subprocess

import pytest

from scripts.toolkit import VENV_BIN, dvc, ran_stages, temporaries, venv_env, wait_for
from stages.data import OUTPUTS
from stages.exits import INTERRUPTED

FAULT_CLASS = "interruption: a signal during `dvc repro` or a stage"
USER_SEES = (
    f"a stage stopped by Ctrl-C or SIGTERM: ``{INTERRUPTED}``, exit 130; under `dvc repro`, which "
    "deleted the stage's outputs first, only those finished are there; `dvc status` lists the "
    "stage as changed and the next `dvc repro` reruns it, to the outputs of an uninterrupted run"
)


def test_after_dvc_is_killed_during_train_the_next_repro_completes(reference, tmp_path):
    """In a copy of the reference whose stages/train.py gained a comment, so that train reruns.

    The run's process group stopped by SIGTERM (`kill -- -<pgid>`, as Ctrl-C in a terminal stops
    a whole run) while train fits, before any of its outputs is finished; then `dvc repro` again,
    which must end with the reference's outputs (evaluate sees the same model, and does not run)."""
    for attempt in range(3):  # a busy machine may let the moment pass: on a fresh copy again
        project = shutil.copytree(reference, tmp_path / f"project{attempt}", symlinks=True)
        with (project / "stages/train.py").open("a") as code:
            code.write("# an edit\n")
        # SHELL=/bin/sh: DVC runs each cmd with `$SHELL -c`, and dash forks (as in CI, under cron).
        repro = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=venv_env({"SHELL": "/bin/sh"}), start_new_session=True)
        # Stopped on an event (train's history file begun), not after a time, and frozen first: a
        # busy machine polls late, and the model, written after fit, must not be there yet.
        begun = wait_for(lambda plots=project / "plots": list(plots.glob(".train_history-tmp-*")),
                         120, 0.01)
        assert begun, "train never began its history"
        os.killpg(repro.pid, signal.SIGSTOP)
        caught = not list((project / "data").glob("*model*"))
        os.killpg(repro.pid, signal.SIGTERM if caught else signal.SIGKILL)
        os.killpg(repro.pid, signal.SIGCONT)
        killed_output = repro.communicate(timeout=300)[0]
        if caught:
            break
    else:
        pytest.fail("train fitting was never caught in 3 attempts")
    assert repro.returncode != 0 and ran_stages(killed_output) == ["train"], killed_output
    assert INTERRUPTED in killed_output.splitlines(), killed_output  # SIGTERM unwound train's fit
    assert wait_for(lambda: temporaries(project) == [], 60), temporaries(project)  # cleaned up
    # DVC deleted train's outputs before it ran, and train finished none of them.
    assert [path for path in OUTPUTS["train"] if (project / path).exists()] == []
    assert "train" in json.loads(dvc(project, "status", "--json").stdout)  # nothing recorded

    resumed = dvc(project, "repro").stdout
    assert ran_stages(resumed) == ["train"], resumed
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    for path in (*OUTPUTS["train"], *OUTPUTS["evaluate"], *OUTPUTS["summary"]):  # byte by byte
        assert (project / path).read_bytes() == (reference / path).read_bytes(), path
