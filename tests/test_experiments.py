"""What a person sees of experiments: a table that reads at a glance, and a way back from a failed one."""

import csv
import io
import shutil

from scripts.toolkit import SUMMARY_KEYS, dvc, git

FIXED_COLUMNS = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")


def test_exp_show_leads_with_the_three_accuracies_and_shows_each_figure_once(queued_experiments):
    shown = dvc(queued_experiments.project, "exp", "show", "--csv", "--all-commits").stdout
    header = next(csv.reader(io.StringIO(shown)))
    fixed = [name for name in header if name in FIXED_COLUMNS]
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
