"""Interruption: `dvc repro` killed during a stage, then run again; a stage stopped by a signal (USER_SEES).
Each is stopped on an event (a file appearing), not after a time, and frozen first: a busy machine polls late.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.toolkit import (
    VENV_BIN,
    add_raw_data,
    copy_project,
    dvc,
    ran_stages,
    run,
    set_params,
    snapshot,
    stages_command,
    temporaries,
    venv_env,
    wait_for,
)
from stages.data import OUTPUTS

FAULT_CLASS = "interruption: a signal during `dvc repro` or a stage"
USER_SEES = (
    "a stage stopped by Ctrl-C or SIGTERM: `interrupted: nothing was written`, exit 130, no output "
    "written; DVC killed during a stage: `dvc status` lists the stage as changed and the next "
    "`dvc repro` completes with the same outputs and metrics as an uninterrupted run"
)


def interrupted(process: subprocess.Popen, event: Callable, running: Callable, signum: int,
                group: bool = False) -> bool:
    """Once `event()`, freeze `process` (with `group`, its process group: `kill -- -<pgid>`, as Ctrl-C
    in a terminal stops a whole run); send `signum` if `running()` still holds, else kill it."""
    send = (lambda signum: os.killpg(process.pid, signum)) if group else process.send_signal
    assert wait_for(event, timeout=120, interval=0.01), "the event never came"
    send(signal.SIGSTOP)
    caught = bool(running())
    send(signum if caught else signal.SIGKILL)
    send(signal.SIGCONT)
    return caught


def until_caught(source: Path, tmp_path: Path, moment: str, attempt: Callable[[Path], tuple]) -> tuple:
    """`attempt(copy)` → (caught, *rest) on fresh copies of `source` until it catches its `moment` (3 tries:
    a busy machine may let it pass); returns (that copy, *rest)."""
    for number in range(3):
        project = shutil.copytree(source, tmp_path / f"project{number}", symlinks=True)
        caught, *rest = attempt(project)
        if caught:
            return project, *rest
    pytest.fail(f"{moment} was never caught in 3 attempts")


def kill_during_fit(project: Path) -> tuple[bool, int, str]:
    with (project / "stages/train.py").open("a") as code:  # an edit that changes no result: train reruns
        code.write("# an edit\n")
    # SHELL=/bin/sh: DVC runs each cmd with `$SHELL -c`, and dash forks (as in CI and under cron).
    repro = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=venv_env({"SHELL": "/bin/sh"}), start_new_session=True)
    caught = interrupted(repro, lambda: list((project / "plots").glob(".train_history-tmp-*")),
                         lambda: not list((project / "data").glob("*model*")),  # the model follows fit
                         signal.SIGTERM, group=True)
    output = repro.communicate(timeout=300)[0]
    return caught, repro.returncode, output


def test_after_dvc_is_killed_during_train_the_next_repro_completes(reference, tmp_path):
    """A copy of the reference whose stages/train.py gained a comment (an edit that changes no result), so
    that `dvc repro` reruns train: stopped while it fits; then `dvc repro` again, which must end with the
    reference's outputs (evaluate then sees the same model and does not rerun)."""
    project, code, killed_output = until_caught(reference, tmp_path, "train fitting", kill_during_fit)
    assert code != 0 and ran_stages(killed_output) == ["train"], killed_output
    assert "interrupted: nothing was written" in killed_output  # train's line: SIGTERM unwound its fit
    assert wait_for(lambda: temporaries(project) == [], 60), temporaries(project)  # the stage cleaned up
    assert not (project / "data/model.keras").exists()
    assert "train" in json.loads(dvc(project, "status", "--json").stdout)

    resumed = dvc(project, "repro").stdout
    assert ran_stages(resumed) == ["train"], resumed
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    for path in (*OUTPUTS["train"], *OUTPUTS["evaluate"], *OUTPUTS["summary"]):  # byte for byte
        assert (project / path).read_bytes() == (reference / path).read_bytes(), path


def test_ctrl_c_between_a_stage_s_outputs_leaves_every_output_as_it_was(tmp_path):
    """`python -m stages.prepare` (its outputs in place from a run with other params) stopped by Ctrl-C once
    x_train.npy is written, y_train.npy begun: each output waits in stages/cli.py, as every stage's does."""
    source = add_raw_data(copy_project(tmp_path / "source", {"max_samples": 1000}))
    run(source, *stages_command("prepare"), check=True)
    ignore = (".git", "__pycache__", "tmp")  # .dvc/tmp: the libraries' homes, not outputs

    def files(project: Path) -> dict[Path, tuple[int, int]]:  # a temporary may move meanwhile
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in project.glob("data/**/*y_train*.npy")
                if p.exists()}

    def stop(project: Path) -> tuple[bool, dict, int, str]:
        set_params(project, {"max_samples": 600})  # every output would change
        before, existing = snapshot(project, ignore), files(project)
        child = subprocess.Popen([sys.executable, "-m", "stages.prepare"], cwd=project, text=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        written = lambda: any(n and existing.get(p) != (t, n) for p, (t, n) in files(project).items())  # noqa: E731
        # Still running while its outputs wait, as temporaries, to be moved into place together.
        caught = interrupted(child, written, lambda: temporaries(project), signal.SIGINT)
        err = child.communicate(timeout=120)[1]
        return caught, before, child.returncode, err

    project, before, code, err = until_caught(source, tmp_path, "prepare between its outputs", stop)
    changed = sorted(set(snapshot(project, ignore).items()) ^ set(before.items()))
    assert changed == [], f"prepare was stopped, yet it changed {changed}"
    assert temporaries(project) == []
    # Exit 130, as a shell shows it: CPython itself ends by SIGINT (-2 here) if the KeyboardInterrupt passed
    # through code run by `exec` (a dataclass made during an import), handled or not, under `python -m`.
    assert code in (130, -signal.SIGINT) and "Traceback" not in err, err[-3000:]
    assert err.splitlines()[-1] == "interrupted: nothing was written"
