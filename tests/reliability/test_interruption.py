"""Interruption: `dvc repro` killed during a stage, then run again; a stage stopped by a signal.

`kill <pid of dvc>` ends DVC at once; its stage may run on (that is DVC's behaviour), so the
test stops it too. The next `dvc repro` must then end with the same outputs and metrics, byte for
byte, as a run never interrupted. A stage stopped by SIGTERM (or Ctrl-C: stages.cli.run maps
SIGTERM onto KeyboardInterrupt, see test_cli.py) exits 130 with one line, and nothing
half-written stands under an output's final name.
"""

import json
import os
import signal
import subprocess
import sys

import yaml
from conftest import REPO, dvc, ran_stages, temporaries, wait_for

from .conftest import summary_bytes

FAULT_CLASS = "interruption: a signal during `dvc repro` or a stage"
USER_SEES = (
    "a stage stopped by Ctrl-C or SIGTERM: `interrupted: nothing was written`, exit 130, no output "
    "written; DVC killed during a stage: `dvc status` lists the stage as changed and the next "
    "`dvc repro` completes with the same outputs and metrics as an uninterrupted run"
)


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


def test_sigterm_on_a_stage_exits_130_with_one_line_and_writes_nothing(tmp_path, fault_server):
    """The download stage, stopped while it receives a file into its temporary data/raw."""
    def stall(handler, name):  # the headers and a first chunk of a file, then nothing
        handler.send(200, b"\x1f\x8b" + bytes(1000), length=10_000_000)
        handler.pause(120)

    mirror = fault_server(stall)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"] = {"sources": [mirror.url], "retries": 1, "timeout": 120}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    child = subprocess.Popen([sys.executable, "-m", "stages.download"], cwd=tmp_path, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Its first file half-received in the temporary directory that would become data/raw.
        assert wait_for(lambda: mirror.requests and list(tmp_path.glob("data/.raw-tmp-*/*.gz")), timeout=60)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130, err[-3000:]
    assert err == "interrupted: nothing was written\n"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["data", "params.yaml"]
