"""Interruption: `dvc repro` killed during a stage, then run again; a stage stopped by a signal.

`kill <pid of dvc>` ends DVC at once; its stage may run on (that is DVC's behaviour), so the
test stops it too. The next `dvc repro` must then end with the same outputs and metrics, byte for
byte, as a run never interrupted. A stage stopped by SIGTERM or Ctrl-C (stages.cli.run maps SIGTERM
onto KeyboardInterrupt, see test_cli.py) exits 130 with one line and leaves every output as it was:
its outputs are moved into place together at its end. The stages are stopped where they have
written some outputs but not all (prepare, evaluate) or have a file open (download, train), on the
event (the file appearing), not after a time.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
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


def test_after_dvc_is_killed_during_train_the_next_repro_completes(reference, queued_experiments, tmp_path):
    """The whole run stopped (`kill -- -<pgid>`, as Ctrl-C in a terminal stops it) once train has its
    history file open; then `dvc repro` again, which must end as the same params' uninterrupted run
    did (the queue's experiment at APPLIED_EPOCHS, applied and committed)."""
    project = shutil.copytree(reference, tmp_path / "project", symlinks=True)
    set_params(project, {"epochs": APPLIED_EPOCHS})  # train, evaluate and summary must run
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        # SHELL=/bin/sh: DVC runs each cmd with `$SHELL -c`, and dash forks (as in CI and under cron).
        repro = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, stdout=out,
                                 stderr=subprocess.STDOUT, env=venv_env({"SHELL": "/bin/sh"}),
                                 start_new_session=True)
        try:
            history_open = wait_for(lambda: list((project / "plots").glob(".train_history-tmp-*")), 120)
            assert history_open, log.read_text()[-3000:]
            os.killpg(repro.pid, signal.SIGTERM)
            killed_code = repro.wait(120)
        finally:
            if repro.poll() is None:
                os.killpg(repro.pid, signal.SIGKILL)
    killed_output = log.read_text()
    assert killed_code != 0, killed_output[-3000:]
    assert ran_stages(killed_output) == ["train"], killed_output[-3000:]
    assert wait_for(lambda: temporaries(project) == [], 60), temporaries(project)  # the stage cleaned up
    assert not (project / "data/model.keras").exists()
    assert "train" in json.loads(dvc(project, "status", "--json").stdout)

    resumed = dvc(project, "repro").stdout
    assert ran_stages(resumed) == ["train", "evaluate", "summary"], resumed
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    uninterrupted = queued_experiments.project
    for path in (*OUTPUTS["train"], *OUTPUTS["evaluate"], *OUTPUTS["summary"]):  # byte for byte
        assert (project / path).read_bytes() == (uninterrupted / path).read_bytes(), path


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


# ---------------------------------------------------------------- a stage stopped between its outputs

@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """A small project whose stages up to train have run (in this process): each test below stops
    one stage, run by hand as a process, at a point where it has written some outputs, not all."""
    project = copy_project(tmp_path_factory.mktemp("stopped") / "project", {"max_samples": 1000, "epochs": 1})
    run_stages_here(add_raw_data(project), "prepare", "split", "train")
    return project


def appears(project: Path, pattern: str):
    """A test that a file matching `pattern` is new or rewritten (and not empty) since this call."""
    def files():
        found = {}
        for path in project.glob(pattern):
            try:
                found[path] = (path.stat().st_mtime_ns, path.stat().st_size > 0)
            except FileNotFoundError:  # a temporary moved into place meanwhile
                pass
        return found

    before = files()
    return lambda: any(state[1] and before.get(path) != state for path, state in files().items())


def stop_when(project: Path, stage: str, pattern: str, signum: int, **params) -> tuple[int, str]:
    """Run `python -m stages.<stage>` in `project` (with `params` changed); once a file matching
    `pattern` is written, send `signum`. Check that nothing in the project changed; return the exit
    code and stderr."""
    text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(yaml.safe_dump({**yaml.safe_load(text), **params}, sort_keys=False))
    ignore = (".git", "__pycache__", "tmp")  # .dvc/tmp: the libraries' homes, not outputs
    before = snapshot(project, ignore)
    written = appears(project, pattern)
    child = subprocess.Popen([sys.executable, "-m", f"stages.{stage}"], cwd=project, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # An event, not a time: TensorFlow's import alone takes 5 s on an idle machine.
        assert wait_for(written, timeout=120, interval=0.01), f"{stage} never wrote {pattern}"
        child.send_signal(signum)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
        (project / "params.yaml").write_text(text)
    after = snapshot(project, ignore)
    after["params.yaml"] = before["params.yaml"]  # changed and restored by the test
    changed = sorted(set(after.items()) ^ set(before.items()))
    assert after == before, f"{stage} was stopped, yet it changed {changed}"
    assert temporaries(project) == []
    return child.returncode, err


def stopped(code: int, err: str) -> None:
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert err.splitlines()[-1] == "interrupted: nothing was written"


def test_prepare_stopped_after_its_first_array_leaves_every_output_as_it_was(small_project):
    """Ctrl-C once x_train.npy is written (y_train.npy begun), with another max_samples: every output
    would change."""
    stopped(*stop_when(small_project, "prepare", "data/**/*y_train*.npy", signal.SIGINT, max_samples=600))


def test_train_stopped_once_its_history_is_open_leaves_every_output_as_it_was(small_project):
    """SIGTERM (`kill`, DVC's queue) once Keras has written an epoch to the history file."""
    stopped(*stop_when(small_project, "train", "plots/*train_history*.csv", signal.SIGTERM, epochs=300))


def test_evaluate_stopped_between_its_outputs_leaves_none_of_them(small_project):
    """Ctrl-C once the confusion table is written, before the image grid and the report."""
    stopped(*stop_when(small_project, "evaluate", "plots/*confusion*.csv", signal.SIGINT))
    assert not (small_project / "metrics/evaluate.json").exists()
