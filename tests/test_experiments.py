"""Experiments (the shared `queued_experiments`): queued and run two at a time without interfering, the
one applied rerunning only what changed; a table that reads at a glance; a way back from a failed one."""

import csv
import io
import json
import shutil

import yaml

from scripts.toolkit import (
    APPLIED_EPOCHS,
    EXPERIMENT_EPOCHS,
    SMALL_RUN_PARAMS,
    SUMMARY_KEYS,
    dvc,
    git,
    ran_stages,
)


def test_queued_experiments_run_in_parallel_without_interfering(queued_experiments):
    """`dvc exp run --run-all -j 2` runs them in temporary copies (.dvc/tmp/exps) at the same time: the
    stages keep Keras's and Matplotlib's files in the workspace (.dvc/tmp/stage-home), and training is
    deterministic, so two runs interfering (sharing threads, files or seeds) would show as histories
    that disagree."""
    queue = queued_experiments
    assert queue.queued.count("Queued experiment") == len(EXPERIMENT_EPOCHS), queue.queued
    assert queue.two_at_once  # two workers, each running one experiment in its own copy
    runs = queue.runs
    assert sorted(runs) == list(EXPERIMENT_EPOCHS)
    base = queue.histories["base"]
    assert len(base) == SMALL_RUN_PARAMS["epochs"]
    longest = queue.histories[max(EXPERIMENT_EPOCHS)]
    for epochs, run in runs.items():
        assert run["state"] == "success"
        assert 0.6 < run["metrics"]["keras_test_accuracy"] <= 1
        # Each trained for its own epochs, as it would have alone: the histories agree where they overlap.
        history = queue.histories[epochs]
        shared = min(epochs, len(base))
        assert len(history) == epochs
        assert history == longest[:epochs] and history[:shared] == base[:shared]
    assert len({run["metrics"]["sgd_cv_accuracy"] for run in runs.values()}) == 1  # the same SGD result
    assert len({run["metrics"]["keras_val_loss"] for run in runs.values()}) == len(EXPERIMENT_EPOCHS)
    # Nothing written outside the workspaces: no ~/.keras, no Matplotlib cache or config, no $TMPDIR file.
    assert sorted(str(p.relative_to(queue.home)) for p in queue.home.rglob("*")) == []
    assert sorted(str(p.relative_to(queue.tmpdir)) for p in queue.tmpdir.rglob("*")) == []


def test_the_applied_experiment_reran_only_what_changed(queued_experiments):
    project, run = queued_experiments.project, queued_experiments.runs[APPLIED_EPOCHS]
    # Only what depends on `epochs` ran: the data came from the cache, SGD was not redone.
    assert ran_stages(run["log"]) == ["train", "evaluate", "summary"], run["log"]
    # Applied: its params and results are the workspace's.
    assert yaml.safe_load((project / "params.yaml").read_text())["epochs"] == APPLIED_EPOCHS
    assert len((project / "plots/train_history.csv").read_text().splitlines()) == 1 + APPLIED_EPOCHS
    assert json.loads((project / "metrics/summary.json").read_text()) == run["metrics"]
    diff = json.loads(dvc(project, "metrics", "diff", "base", "--json").stdout)
    assert set(diff) == {"metrics/summary.json"}
    assert {key for key in diff["metrics/summary.json"] if key.startswith("sgd")} == set()  # SGD unchanged
    change = diff["metrics/summary.json"]["keras_val_loss"]
    assert change["new"] == run["metrics"]["keras_val_loss"] != change["old"]
    assert "epochs" in dvc(project, "params", "diff", "base").stdout


def test_exp_show_leads_with_the_three_accuracies_and_shows_each_figure_once(queued_experiments):
    shown = dvc(queued_experiments.project, "exp", "show", "--csv", "--all-commits").stdout
    header = next(csv.reader(io.StringIO(shown)))
    fixed = [name for name in header if name in ("Experiment", "rev", "typ", "Created", "parent", "State",
                                                 "Executor")]
    assert header[: len(fixed)] == fixed
    # Then the metric columns (summary.json's keys, the study's question first), then the params.
    assert header[len(fixed):header.index("seed")] == SUMMARY_KEYS


def test_a_failed_experiment_is_undone_by_exp_apply_head(reference, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(reference, project, symlinks=True)  # its results committed, its cache full
    failed = dvc(project, "exp", "run", "-S", "split.test_size=0", check=False)
    assert failed.returncode != 0
    assert "split.test_size = 0 is not allowed" in failed.stderr + failed.stdout
    # What DVC leaves behind: the changed params and the failed stage's outputs removed.
    assert git(project, "status", "--porcelain").split() == ["M", "params.yaml"]
    assert not (project / "data/split").exists()
    dvc(project, "exp", "apply", "HEAD")  # the way back (with an empty cache: tests/team)
    assert git(project, "status", "--porcelain") == ""
    assert "up to date" in dvc(project, "status").stdout
    # Trying a value with --temp leaves the workspace as it was, failed or not.
    assert dvc(project, "exp", "run", "--temp", "-S", "split.test_size=0", check=False).returncode != 0
    assert git(project, "status", "--porcelain") == ""
    assert "up to date" in dvc(project, "status").stdout
