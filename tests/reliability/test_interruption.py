"""Interruption: `dvc repro` stopped by a signal during `sgd_cv` or `train`, then run again.

SIGINT goes to the process group, as Ctrl-C in a terminal sends it; SIGTERM goes to DVC alone
(`kill <pid>`: DVC dies at once without passing it on, so the stage must notice by itself, both
when DVC's shell is dash, which stays between DVC and the stage, and bash, which execs it);
SIGKILL goes to the stage alone (the OOM killer), which cannot clean up. Afterwards nothing
half-written stands under an output's name, `dvc status` shows the stage as changed, and the
next `dvc repro` ends with the same metrics, byte for byte, as an uninterrupted run.
"""

import json
import os
import re
import signal
import time

import pytest
from conftest import dvc

from stages.files import atomic_path, remove_stale_temporaries

from .conftest import Repro, copy_project, metrics_bytes, temporaries, wait_for

FAULT_CLASS = "interruption: a signal during `dvc repro`"
USER_SEES = (
    "Ctrl-C: `interrupted: nothing was written` and DVC's `failed to reproduce '<stage>'`; "
    "DVC killed: the stage stops with it; then `dvc status` lists the stage as changed and the "
    "next `dvc repro` completes with the same metrics"
)

OUTPUTS = {
    "sgd_cv": ["metrics/sgd_cv.json"],
    "train": ["data/model.keras", "metrics/train.json", "plots/train_history.csv"],
}

# signal, to whom, DVC's $SHELL
HOW = {
    "SIGINT-group": (signal.SIGINT, "group", "/bin/sh"),
    "SIGTERM-dvc": (signal.SIGTERM, "dvc", "/bin/sh"),
    "SIGTERM-dvc-bash": (signal.SIGTERM, "dvc", "/bin/bash"),
    "SIGKILL-stage": (signal.SIGKILL, "stage", "/bin/sh"),
}
CASES = [
    ("sgd_cv", "SIGINT-group"), ("sgd_cv", "SIGTERM-dvc"),
    ("train", "SIGINT-group"), ("train", "SIGTERM-dvc"), ("train", "SIGTERM-dvc-bash"),
    ("train", "SIGKILL-stage"),
]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def cpu(process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except Exception:  # psutil.Error: the process ended
        return float("inf")


def wait_until_busy(run: Repro, name: str):
    """The stage's process, once it is doing the stage's work (not merely starting)."""
    process = wait_for(lambda: run.stage_process(name), timeout=120)
    assert process, f"stage {name} never started:\n{run.output[-3000:]}"
    if name == "train":
        # "Epoch 1/20" is printed as the first epoch starts; the 20 take a few seconds.
        assert wait_for(lambda: "epoch 1/" in run.output.lower(), timeout=90), run.output[-3000:]
    else:
        # SGD cross-validation prints nothing until it ends (after ~4 s of 2 cores): its
        # imports take about 1.2 s of CPU, so past 2 s the folds are being fitted.
        assert wait_for(lambda: cpu(process) > 2.0, timeout=60), "sgd_cv did not get busy"
    assert process.is_running() and process.status() != "zombie", "finished before the signal"
    return process


@pytest.mark.parametrize("name,how", CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_an_interrupted_stage_leaves_nothing_taken_as_valid(name, how, tmp_path, prefix_project,
                                                           after_sgd_cv, reference):
    start_from = prefix_project if name == "sgd_cv" else after_sgd_cv
    project = copy_project(start_from, tmp_path / "project")
    sig, target, shell = HOW[how]
    run = Repro(project, shell=shell)
    try:
        process = wait_until_busy(run, name)
        if target == "group":
            os.killpg(run.process.pid, sig)
        elif target == "dvc":
            os.kill(run.process.pid, sig)
        else:
            process.send_signal(sig)
        code = run.wait(120)
        # The stage is gone too: with DVC killed, it must not run on as an orphan.
        assert wait_for(lambda: not process.is_running() or process.status() == "zombie", 30), \
            "the stage outlived the interruption"
    finally:
        if run.process.poll() is None:
            run.kill()

    assert code != 0, run.output[-3000:]
    if how != "SIGKILL-stage":
        if target != "dvc":  # with DVC killed, the stage's words go to a closed pipe
            assert "interrupted: nothing was written" in run.output, run.output[-3000:]
    assert ran_stages(run.output)[-1] == name  # nothing ran after the interrupted stage
    for output in OUTPUTS[name]:
        assert not (project / output).exists(), f"{output} survived the interruption"
    assert temporaries(project) == []

    status = json.loads(dvc(project, "status", "--json").stdout)
    assert name in status, status

    again = dvc(project, "repro")
    assert name in ran_stages(again.stdout), again.stdout
    assert "is cached" not in again.stdout  # run, not restored
    assert metrics_bytes(project) == metrics_bytes(reference)
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    assert temporaries(project) == []


def test_a_killed_writer_leaves_no_temporary_behind(tmp_path):
    """A SIGKILLed stage cannot clean up; the next writer of the same output removes its leftovers."""
    import subprocess
    import sys

    target = tmp_path / "model.keras"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stale = tmp_path / f".model-tmp-{child.pid}-abcd.keras"
    stale.write_bytes(b"half a model")
    live = tmp_path / f".model-tmp-{os.getppid()}-efgh.keras"  # a writer still running
    live.write_bytes(b"in progress")
    assert remove_stale_temporaries(target) == []  # its writer is alive: kept
    child.kill()
    child.wait()
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"a model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "model.keras"])


def test_ctrl_c_while_a_stage_imports_its_libraries_is_one_line(tmp_path, prefix_project):
    """Before stages.cli.run takes over (scikit-learn's import alone takes about a second)."""
    import subprocess
    import sys

    project = copy_project(prefix_project, tmp_path / "project")
    child = subprocess.Popen([sys.executable, "-m", "stages.sgd_cv"], cwd=project,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    # Python ends an uncaught KeyboardInterrupt by SIGINT itself: a shell reports 130
    assert child.returncode == -signal.SIGINT, (child.returncode, err[-2000:])
    assert err == "interrupted: nothing was written\n", err[-2000:]
    assert not (project / "metrics/sgd_cv.json").exists()
