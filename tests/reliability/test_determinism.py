"""Determinism: the same params give the same bytes, and a no-op `dvc repro` touches nothing."""

import json
import shutil

from scripts.toolkit import STAGES, digests, dvc, run, snapshot, stages_command, temporaries
from stages.cli import remove
from stages.data import OUTPUTS

FAULT_CLASS = "determinism: a rerun"
USER_SEES = (
    "byte-identical metrics, model, data and plots from two runs from scratch; "
    "`Data and pipelines are up to date.` and not one file changed by a no-op `dvc repro`"
)


def test_two_runs_from_scratch_give_identical_outputs(reference, tmp_path):
    """The reference's outputs removed from a copy and every stage run again (in one process, as `python -m
    stages.<name>` runs each there): the same bytes, the ones dvc.lock records (`dvc status` has nothing)."""
    project = shutil.copytree(reference, tmp_path / "project", symlinks=True)
    for path in (path for outputs in OUTPUTS.values() for path in outputs):
        remove(project / path)
    assert digests(project) == {}
    run(project, *stages_command(*STAGES), check=True)
    first, second = digests(reference), digests(project)
    assert {"data/model.keras", "metrics/summary.json", "plots/misclassified.png"} <= set(first)
    different = {path for path in first if first[path] != second.get(path)}  # the model's date is not saved
    assert different == set() and set(first) == set(second), different
    assert json.loads(dvc(project, "status", "--json").stdout) == {} and temporaries(project) == []


def test_a_noop_repro_changes_nothing_on_disk(reference, tmp_path):
    project = shutil.copytree(reference, tmp_path / "project", symlinks=True)
    # .dvc/tmp is DVC's own scratch space (its lock files, the hash cache), not the project's.
    ignore = (".git", "__pycache__", "tmp")
    before = snapshot(project, ignore)
    result = dvc(project, "repro")
    assert "Data and pipelines are up to date." in result.stdout, result.stdout
    assert "Running stage" not in result.stdout
    assert snapshot(project, ignore) == before
