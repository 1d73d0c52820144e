"""Interruption: `dvc repro` stopped while train fits, then run again. A stage stopped by Ctrl-C or SIGTERM
on its own: tests/test_cli.py (every signal, between a stage's outputs) and test_download_faults.py."""

import json
import os
import shutil
import signal
import subprocess

import pytest

from scripts.toolkit import VENV_BIN, dvc, ran_stages, temporaries, venv_env, wait_for
from stages.data import OUTPUTS

FAULT_CLASS = "interruption: a signal during `dvc repro` or a stage"
USER_SEES = (
    "a stage stopped by Ctrl-C or SIGTERM: `interrupted: nothing was written`, exit 130, no output "
    "written; DVC killed during a stage: `dvc status` lists the stage as changed and the next "
    "`dvc repro` completes with the same outputs and metrics as an uninterrupted run"
)


def test_after_dvc_is_killed_during_train_the_next_repro_completes(reference, tmp_path):
    """A copy of the reference whose stages/train.py gained a comment (an edit that changes no result), so
    that `dvc repro` reruns train: its process group stopped by SIGTERM (`kill -- -<pgid>`, as Ctrl-C in a
    terminal stops a whole run) while train fits; then `dvc repro` again, which must end with the
    reference's outputs (evaluate then sees the same model and does not rerun)."""
    for attempt in range(3):  # a busy machine may let the moment pass: on a fresh copy again
        project = shutil.copytree(reference, tmp_path / f"project{attempt}", symlinks=True)
        with (project / "stages/train.py").open("a") as code:
            code.write("# an edit\n")
        # SHELL=/bin/sh: DVC runs each cmd with `$SHELL -c`, and dash forks (as in CI and under cron).
        repro = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=venv_env({"SHELL": "/bin/sh"}), start_new_session=True)
        # Stopped on an event (train's history file begun), not after a time, and frozen first: a busy
        # machine polls late, and the model, written after fit, must not be there yet.
        begun = wait_for(lambda plots=project / "plots": list(plots.glob(".train_history-tmp-*")), 120, 0.01)
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
    assert "interrupted: nothing was written" in killed_output  # train's line: SIGTERM unwound its fit
    assert wait_for(lambda: temporaries(project) == [], 60), temporaries(project)  # the stage cleaned up
    assert not (project / "data/model.keras").exists()
    assert "train" in json.loads(dvc(project, "status", "--json").stdout)

    resumed = dvc(project, "repro").stdout
    assert ran_stages(resumed) == ["train"], resumed
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    for path in (*OUTPUTS["train"], *OUTPUTS["evaluate"], *OUTPUTS["summary"]):  # byte for byte
        assert (project / path).read_bytes() == (reference / path).read_bytes(), path
