"""Interruption: `dvc repro` killed during a stage, then run again; a stage stopped by a signal.

Killed with its stage, `dvc repro` must next end with the same outputs, byte for byte, as a run never
interrupted. A stage stopped by SIGTERM or Ctrl-C exits 130 with one line and leaves every output as it
was: its outputs are moved into place together at its end. Each is stopped on an event (a file
appearing), not after a time, and frozen first: on a busy machine the poll may come late.
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
import yaml

from scripts.toolkit import (
    APPLIED_EPOCHS,
    REPO,
    VENV_BIN,
    add_raw_data,
    copy_project,
    dvc,
    ran_stages,
    run_stages_here,
    set_params,
    snapshot,
    temporaries,
    venv_env,
    wait_for,
)
from stages.data import OUTPUTS
from tests.mirrors import serving

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


def kill_during_fit(project: Path) -> tuple[bool, subprocess.Popen, str]:
    set_params(project, {"epochs": APPLIED_EPOCHS})  # train, evaluate and summary must run
    # SHELL=/bin/sh: DVC runs each cmd with `$SHELL -c`, and dash forks (as in CI and under cron).
    repro = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=venv_env({"SHELL": "/bin/sh"}), start_new_session=True)
    caught = interrupted(repro, lambda: list((project / "plots").glob(".train_history-tmp-*")),
                         lambda: not list((project / "data").glob("*model*")),  # the model follows fit
                         signal.SIGTERM, group=True)
    return caught, repro, repro.communicate(timeout=120)[0]


def test_after_dvc_is_killed_during_train_the_next_repro_completes(reference, queued_experiments, tmp_path):
    """The whole run stopped while train fits; then `dvc repro` again, which must end as the same params'
    uninterrupted run did (the queue's experiment at APPLIED_EPOCHS, applied and committed)."""
    for attempt in range(3):
        project = shutil.copytree(reference, tmp_path / f"project{attempt}", symlinks=True)
        caught, repro, killed_output = kill_during_fit(project)
        if caught:
            break
    assert caught, "train was never caught fitting in 3 attempts"
    assert repro.returncode != 0 and ran_stages(killed_output) == ["train"], killed_output[-3000:]
    assert wait_for(lambda: temporaries(project) == [], 60), temporaries(project)  # the stage cleaned up
    assert not (project / "data/model.keras").exists()
    assert "train" in json.loads(dvc(project, "status", "--json").stdout)

    resumed = dvc(project, "repro").stdout
    assert ran_stages(resumed) == ["train", "evaluate", "summary"], resumed
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    for path in (*OUTPUTS["train"], *OUTPUTS["evaluate"], *OUTPUTS["summary"]):  # byte for byte
        assert (project / path).read_bytes() == (queued_experiments.project / path).read_bytes(), path


def test_sigterm_on_a_stage_exits_130_with_one_line_and_writes_nothing(tmp_path):
    """The download stage, stopped while it receives a file into its temporary data/raw."""
    def stall(handler, name):  # the headers and a first chunk of a file, then nothing
        handler.send(200, b"\x1f\x8b" + bytes(1000), length=10_000_000)
        handler.server.closing.wait(120)

    with serving(stall) as mirror:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["download"] = {"sources": [mirror.url], "retries": 1, "timeout": 120}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        child = subprocess.Popen([sys.executable, "-m", "stages.download"], cwd=tmp_path, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # Its first file half-received in the temporary directory that would become data/raw.
            half_received = lambda: mirror.requests and list(tmp_path.glob("data/.raw-tmp-*/*.gz"))  # noqa: E731
            assert wait_for(half_received, timeout=60)
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=60)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == 130, err[-3000:]
    assert err == "interrupted: nothing was written\n"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["data", "params.yaml"]


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """A small project whose stages up to train have run (in this process); each test below copies
    it and stops one stage, run by hand, where it has written some outputs, not all."""
    project = copy_project(tmp_path_factory.mktemp("stopped") / "project", {"max_samples": 1000, "epochs": 1})
    return run_stages_here(add_raw_data(project), "prepare", "split", "train")


def stop_when(small_project: Path, tmp_path: Path, stage: str, pattern: str, signum: int, **params) -> Path:
    """`python -m stages.<stage>` in a copy of `small_project` (`params` changed), sent `signum` once a
    non-empty file matching `pattern` is new or rewritten: it must exit 130 and change nothing."""
    ignore = (".git", "__pycache__", "tmp")  # .dvc/tmp: the libraries' homes, not outputs

    def files(project: Path) -> dict[Path, tuple[int, int]]:  # a temporary may move meanwhile
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in project.glob(pattern) if p.exists()}

    def attempt(project: Path) -> tuple[bool, subprocess.Popen, str]:
        existing = files(project)
        child = subprocess.Popen([sys.executable, "-m", f"stages.{stage}"], cwd=project, text=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        written = lambda: any(n and existing.get(p) != (t, n) for p, (t, n) in files(project).items())  # noqa: E731
        # Still running while its outputs wait, as temporaries, to be moved into place together.
        caught = interrupted(child, written, lambda: temporaries(project), signum)
        return caught, child, child.communicate(timeout=120)[1]

    for number in range(3):
        project = shutil.copytree(small_project, tmp_path / f"project{number}", symlinks=True)
        set_params(project, params)
        before = snapshot(project, ignore)
        caught, child, err = attempt(project)
        if caught:
            break
    assert caught, f"{stage} was never caught between its outputs in 3 attempts"
    changed = sorted(set(snapshot(project, ignore).items()) ^ set(before.items()))
    assert changed == [], f"{stage} was stopped, yet it changed {changed}"
    assert temporaries(project) == []
    assert child.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.splitlines()[-1] == "interrupted: nothing was written"
    return project


def test_prepare_stopped_after_its_first_array_leaves_every_output_as_it_was(small_project, tmp_path):
    """Ctrl-C once x_train.npy is written (y_train.npy begun), with another max_samples: every output
    would change."""
    stop_when(small_project, tmp_path, "prepare", "data/**/*y_train*.npy", signal.SIGINT, max_samples=600)


def test_train_stopped_once_its_history_is_open_leaves_every_output_as_it_was(small_project, tmp_path):
    """SIGTERM (`kill`, DVC's queue) once Keras has written an epoch to the history file."""
    stop_when(small_project, tmp_path, "train", "plots/*train_history*.csv", signal.SIGTERM, epochs=300)


def test_evaluate_stopped_between_its_outputs_leaves_none_of_them(small_project, tmp_path):
    """Ctrl-C once the confusion table is written, before the image grid and the report."""
    project = stop_when(small_project, tmp_path, "evaluate", "plots/*confusion*.csv", signal.SIGINT)
    assert not (project / "metrics/evaluate.json").exists()
