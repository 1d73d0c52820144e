"""Experiments queued and run two at a time: each in its own copy, none writing outside it.

`dvc queue start -j 2` runs experiments in temporary copies of the repository (.dvc/tmp/exps)
at the same time. They share nothing but DVC's cache: the stages give Keras and Matplotlib config
directories in the workspace (.dvc/tmp/stage-home, see stages/keras_setup.py and stages/images.py),
so no ~/.keras, ~/.cache/matplotlib or ~/.config/matplotlib is read or written. Training is
deterministic, so two runs interfering (sharing threads, files or seeds) would show as histories
that disagree.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SMALL, dvc, git, make_project

EPOCHS = (5, 10, 20)
TIMEOUT = 300  # seconds for the three experiments: about 80 on 2 idle cores


@pytest.fixture
def queued_project(tmp_path, dataset, serve, monkeypatch):
    """A small project at epochs=1, reproduced and committed, with an empty HOME and TMPDIR."""
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    # dvc() passes os.environ on, so the stages and the queue's workers see these.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(scratch))
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "KERAS_HOME"):
        monkeypatch.delenv(name, raising=False)
    url = serve(dataset)  # stays up for the whole test, though the queued runs never download
    project = make_project(tmp_path / "project", max_samples=SMALL, epochs=1, **{"download.sources": [url]})
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "results at epochs=1")
    yield project, home, scratch
    dvc(project, "queue", "stop", "--kill", check=False)  # no worker outlives the test


def start_workers(project: Path, jobs: int) -> None:
    """`dvc queue start -j jobs`. Not through dvc(): the workers would inherit its output pipes, and
    reading them to the end would wait for the workers to exit."""
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "dvc"), "queue", "start", "-j", str(jobs)], cwd=project, check=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, timeout=60,
    )


def wait_for_queue(project: Path) -> tuple[str, int]:
    """Poll `dvc queue status` until nothing is queued or running and no worker is left.

    Return the last status and the most experiments seen running at once.
    """
    deadline = time.monotonic() + TIMEOUT
    most = 0
    while time.monotonic() < deadline:
        status = dvc(project, "queue", "status").stdout
        most = max(most, len(re.findall(r"\bRunning\b", status)))
        if not re.search(r"\b(Queued|Running)\b", status) and "0 active, 0 idle" in status:
            return status, most
        time.sleep(5)  # each `dvc queue status` costs about a second of CPU
    raise AssertionError(f"the queue did not finish in {TIMEOUT} s:\n{status}")


def experiments(project: Path) -> dict[int, dict]:
    """The baseline's experiments from `dvc exp show --json`, by epochs: name, rev, state, metrics."""
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    baseline = next(commit for commit in shown if commit["rev"] != "workspace")
    found = {}
    for experiment in baseline.get("experiments") or []:
        rev = experiment["revs"][0]
        data = rev["data"]
        epochs = data["params"]["params.yaml"]["data"]["epochs"]
        found[epochs] = {
            "name": experiment["name"],
            "rev": rev["rev"],
            "state": experiment["executor"]["state"],
            "metrics": {path: value["data"] for path, value in data["metrics"].items()},
        }
    return found


def history(project: Path, rev: str) -> list[str]:
    return git(project, "show", f"{rev}:plots/train_history.csv").splitlines()


def test_three_queued_experiments_run_in_parallel_without_interfering(queued_project):
    project, home, scratch = queued_project
    baseline = history(project, "HEAD")
    sgd = json.loads((project / "metrics/sgd_cv.json").read_text())

    dvc(project, "exp", "run", "--queue", "-S", "epochs=" + ",".join(map(str, EPOCHS)))
    assert dvc(project, "queue", "status").stdout.count("Queued") == len(EPOCHS)
    start_workers(project, 2)
    status, most_at_once = wait_for_queue(project)
    assert status.count("Success") == len(EPOCHS), status
    assert most_at_once == 2  # two workers, each running one experiment

    runs = experiments(project)
    assert sorted(runs) == list(EPOCHS)
    for epochs, run in runs.items():
        assert run["state"] == "success"
        # Only what depends on `epochs` ran: the data came from the cache, SGD was not redone.
        log = dvc(project, "queue", "logs", run["name"]).stdout
        assert set(re.findall(r"Running stage '(\w+)'", log)) == {"train", "evaluate", "summary"}, log
        assert run["metrics"]["metrics/sgd_cv.json"] == sgd
        summary = run["metrics"]["metrics/summary.json"]
        assert summary["keras_val_accuracy"] == run["metrics"]["metrics/evaluate.json"]["val"]["accuracy"]
        assert 0.6 < summary["keras_test_accuracy"] <= 1

        # Each run trained for its own epochs, and as it would have alone: training is
        # deterministic, so every history starts with the baseline's epoch and agrees with the
        # longer runs' on the epochs they share.
        rows = history(project, run["rev"])
        assert rows[0] == baseline[0] and len(rows) == 1 + epochs
        assert rows[1] == baseline[1]
        longest = history(project, runs[max(EPOCHS)]["rev"])
        assert rows == longest[: 1 + epochs]

    losses = {run["metrics"]["metrics/train.json"]["val"]["loss"] for run in runs.values()}
    assert len(losses) == len(EPOCHS)  # three different results

    # Nothing was written outside the workspaces: no ~/.keras/keras.json, no Matplotlib font
    # cache or config, nothing left in $TMPDIR. Keras's and Matplotlib's files are in the workspace.
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    assert sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*")) == []
    assert (project / ".dvc/tmp/stage-home/keras/keras.json").is_file()
    assert list((project / ".dvc/tmp/stage-home/matplotlib").glob("fontlist-*.json"))
    assert git(project, "status", "--porcelain") == ""  # git-ignored

    shown = dvc(project, "exp", "show", "--md", "--no-pager").stdout
    for run in runs.values():
        assert run["name"] in shown
    assert "keras_test_accuracy" in shown
