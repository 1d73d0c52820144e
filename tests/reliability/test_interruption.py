"""Interruption: `dvc repro` killed during a stage, then run again; a stage stopped by a signal.

`kill <pid of dvc>` ends DVC at once; its stage may run on (that is DVC's behaviour), so the
test stops it too. The next `dvc repro` must then end with the same outputs and metrics, byte for
byte, as a run never interrupted. A stage stopped by SIGTERM (or Ctrl-C: stages.cli.run maps
SIGTERM onto KeyboardInterrupt, see test_cli.py) exits 130 with one line, and nothing
half-written stands under an output's final name.
"""

import json
import re
import signal
import subprocess
import sys

import yaml
from conftest import TRAIN_OUTPUTS, copy_project, dvc, temporaries, wait_for

from .conftest import summary_bytes

FAULT_CLASS = "interruption: a signal during `dvc repro` or a stage"
USER_SEES = (
    "a stage stopped by Ctrl-C or SIGTERM: `interrupted: nothing was written`, exit 130, no output "
    "written; DVC killed during a stage: `dvc status` lists the stage as changed and the next "
    "`dvc repro` completes with the same outputs and metrics as an uninterrupted run"
)


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def test_after_dvc_is_killed_during_train_the_next_repro_completes(interrupted_run, concurrent_run):
    run = interrupted_run
    assert run.killed_code != 0, run.killed_output[-3000:]
    assert ran_stages(run.killed_output)[-1] == "train", run.killed_output[-3000:]
    assert run.train_outputs_after_kill == [] and run.temporaries_after_kill == []
    assert "train" in run.status_after_kill, run.status_after_kill

    assert ran_stages(run.resumed.stdout) == ["train", "evaluate", "summary"], run.resumed.stdout
    assert "is cached" not in run.resumed.stdout  # run, not restored
    assert json.loads(dvc(run.project, "status", "--json").stdout) == {}
    assert temporaries(run.project) == []
    # The same figures as the run never interrupted (its twin, same params, from scratch).
    assert concurrent_run.first_code == 0
    assert summary_bytes(run.project) == summary_bytes(concurrent_run.project)


def tensorflow_log(line: str) -> bool:
    """TensorFlow's C++ log lines ('E0000 00:00:…', absl's notice), written below Python."""
    return re.match(r"[IWEF]\d{4} \d\d:\d\d:", line) is not None or line.startswith("WARNING: All log messages")


def test_sigterm_on_a_stage_exits_130_with_one_line_and_writes_nothing(reference, tmp_path):
    project = copy_project(reference, tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["epochs"] = 1000  # long enough to be stopped in the middle of training
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = {path: (project / path).read_bytes() for path in TRAIN_OUTPUTS}

    child = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=project, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The history's temporary appears as training starts (CSVLogger writes it by epoch).
        assert wait_for(lambda: temporaries(project), timeout=120), "training never started"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130, err[-3000:]
    lines = [line for line in err.splitlines() if not tensorflow_log(line)]
    assert lines == ["interrupted: nothing was written"], err[-3000:]
    assert {path: (project / path).read_bytes() for path in TRAIN_OUTPUTS} == before
    assert temporaries(project) == []
