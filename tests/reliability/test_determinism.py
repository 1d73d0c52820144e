"""Determinism: the same params give the same bytes, and a no-op `dvc repro` touches nothing."""

import json

import yaml

from scripts.toolkit import dvc, snapshot, temporaries

FAULT_CLASS = "determinism: a rerun"
USER_SEES = (
    "byte-identical metrics, model, data and plots from two runs from scratch; "
    "`Data and pipelines are up to date.` and not one file changed by a no-op `dvc repro`"
)


def outs(project):
    """Each output's hash in dvc.lock, by path."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values()
            for out in stage.get("outs", [])}


def test_two_runs_from_scratch_give_identical_outputs(reference, concurrent_run):
    """The second, `concurrent_run`, was tried again while it ran (test_concurrency.py): intact too."""
    project = concurrent_run.project
    assert concurrent_run.first_code == 0, concurrent_run.first_output[-3000:]
    assert json.loads(dvc(project, "status", "--json").stdout) == {} and temporaries(project) == []
    summary = "metrics/summary.json"
    assert (reference / summary).read_bytes() == (project / summary).read_bytes()
    first, second = outs(reference), outs(project)
    assert {"data/model.keras", "metrics/evaluate.json", "plots/confusion.csv",
            "plots/misclassified.png"} <= set(first)
    assert set(first) == set(second)
    different = {path for path in first if first[path] != second[path]}
    assert different == set(), different  # data/model.keras included: saved without its date


def test_a_noop_repro_changes_nothing_on_disk(concurrent_run):
    project = concurrent_run.project
    # .dvc/tmp is DVC's own scratch space (its lock files, the hash cache), not the project's.
    ignore = (".git", "__pycache__", "tmp")
    before = snapshot(project, ignore)
    result = dvc(project, "repro")
    assert "Data and pipelines are up to date." in result.stdout, result.stdout
    assert "Running stage" not in result.stdout
    assert snapshot(project, ignore) == before
