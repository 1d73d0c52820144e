"""scripts/pr_report.py: the pull-request report of params, metrics and plots against a base revision;
and what it shows when only float noise differs: the same small pipeline trained on two kernel paths."""

import json
import os
import subprocess
import sys
import warnings

import pytest

from scripts.toolkit import (
    APPLIED_EPOCHS,
    REPO,
    SMALL_RUN_PARAMS,
    add_raw_data,
    copy_project,
    dvc,
    git,
    run_stages_here,
)


def report(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts/pr_report.py"), *args], cwd=project,
                          capture_output=True, text=True, timeout=120, check=False)


def table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table after `heading`, without header and rule."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_report_shows_the_params_metrics_and_plots_that_changed(queued_experiments, tmp_path):
    """`base`: the small project with its results; HEAD: an experiment at other epochs, applied."""
    project = queued_experiments.project
    before = json.loads(git(project, "show", "base:metrics/summary.json"))
    after = json.loads((project / "metrics/summary.json").read_text())
    assert before["keras_val_accuracy"] != after["keras_val_accuracy"]
    result = report(project, "base", "--plots-dir", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    markdown = result.stdout
    assert markdown.startswith("## DVC report: `base`")
    assert table(markdown, "### Params") == [
        ["params.yaml", "epochs", str(SMALL_RUN_PARAMS["epochs"]), str(APPLIED_EPOCHS)]]

    summary = {row[1]: row[2:] for row in table(markdown, "### Metrics")}
    assert set(summary) == set(before)  # every figure, the unchanged SGD accuracy too
    for key in ("keras_val_accuracy", "keras_test_accuracy"):
        old, new, change = map(float, summary[key])
        assert old == pytest.approx(before[key], abs=1e-5) and new == pytest.approx(after[key], abs=1e-5)
        assert change == pytest.approx(after[key] - before[key], abs=2e-5)
    old, new, change = map(float, summary["sgd_cv_accuracy"])
    assert old == new and change == 0
    changed = {(row[0], row[1]) for row in table(markdown, "All changed metrics")}
    assert {("metrics/summary.json", key) for key in ("keras_val_loss", "keras_test_accuracy")} <= changed
    assert not any(key.startswith("sgd") for _, key in changed)

    # Training changed; the data did not: the first images are the same, the rest differ.
    for plot in ("Loss per epoch", "Accuracy per epoch", "Test accuracy per class", "Test confusion matrix",
                 "plots/misclassified.png"):
        assert f"- {plot}: changed" in markdown
    assert "- plots/first_images.png: unchanged" in markdown
    assert (tmp_path / "plots" / "index.html").is_file()
    links = [line for line in markdown.splitlines() if "![" in line]
    assert len(links) == 1 and "misclassified" in links[0]  # base and workspace side by side
    for path in links[0].replace(")", "(").split("(")[1::2]:
        assert (project / path).read_bytes().startswith(b"\x89PNG")

    # In CI the plots are published: the report links them instead of embedding images.
    url = "https://github.com/o/r/actions/runs/1"
    result = report(project, "base", "--plots-dir", str(tmp_path / "ci"), "--plots-url", url)
    assert result.returncode == 0, result.stderr
    assert f"]({url})" in result.stdout and "![" not in result.stdout


def test_nothing_changed_against_the_same_commit(queued_experiments, tmp_path):
    result = report(queued_experiments.project, "HEAD", "--plots-dir", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    assert "No params changed." in result.stdout and "No metric changed." in result.stdout
    assert ": changed" not in result.stdout


def test_an_unknown_base_is_one_line_of_error(queued_experiments):
    result = report(queued_experiments.project, "no-such-branch")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: unknown revision 'no-such-branch'")


@pytest.fixture(scope="module")
def kernel_paths(tmp_path_factory):
    """(project, outputs with oneDNN on, with it off, stderr of the run with it off): the small project
    trained, evaluated and summarised with TensorFlow's oneDNN kernels on (committed, branch `base`),
    then off (the workspace). TF_ENABLE_ONEDNN_OPTS, TensorFlow's documented switch, takes another
    kernel path, as another CPU would: the losses differ in their last float bits (1.118208885 and
    1.118208766 measured here)."""
    project = copy_project(tmp_path_factory.mktemp("kernels") / "project",
                           {"max_samples": 1000, "epochs": 2, "sgd.folds": 2})
    run_stages_here(add_raw_data(project), "prepare", "split", "sgd_cv")  # no TensorFlow: in this process
    # The three stages, each as `python -m` runs it, in one process: TensorFlow (which reads
    # TF_ENABLE_ONEDNN_OPTS at import) is imported once per kernel path, not three times.
    stages = "; ".join(f"runpy.run_module('stages.{stage}', run_name='__main__')"
                       for stage in ("train", "evaluate", "summary"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    outputs = {}
    for onednn in ("1", "0"):
        result = subprocess.run([sys.executable, "-c", f"import runpy; {stages}"], cwd=project,
                                env={**env, "TF_ENABLE_ONEDNN_OPTS": onednn}, capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[onednn] = {path: (project / path).read_bytes() for path in (
            "data/model.keras", "plots/train_history.csv", "metrics/train.json", "metrics/evaluate.json",
            "metrics/summary.json")}
        if onednn == "1":
            dvc(project, "commit", "--force", "--quiet")  # dvc.lock and the cache, as after `dvc repro`
            git(project, "add", "-A")
            git(project, "commit", "-qm", "results, oneDNN on")
            git(project, "branch", "base")
    return project, outputs["1"], outputs["0"], result.stderr


def test_the_metrics_are_the_same_bytes_on_another_kernel_path(kernel_paths, record_property):
    project, on, off, stderr = kernel_paths
    for path in ("metrics/train.json", "metrics/evaluate.json", "metrics/summary.json"):
        assert on[path] == off[path], path
    assert json.loads(dvc(project, "metrics", "diff", "base", "--json").stdout) == {}
    # The model and its history may differ in float noise: said, not failed on.
    differ = [path for path in ("data/model.keras", "plots/train_history.csv") if on[path] != off[path]]
    record_property("kernel_paths_differ_in", differ)
    if differ:
        warnings.warn(f"oneDNN on and off give different bytes of {differ}; the metrics are the same",
                      stacklevel=1)
    # TF_CPP_MIN_LOG_LEVEL=3 (stages/keras_model.py) hides `E0000 ... node_def_util.cc ...`.
    assert not [line for line in stderr.splitlines() if line.startswith("E0000")], stderr


def test_report_says_no_metric_changed_on_float_noise(kernel_paths, tmp_path):
    result = report(kernel_paths[0], "base", "--plots-dir", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    assert "No params changed." in result.stdout and "No metric changed." in result.stdout, result.stdout
    summary = {row[1]: row[2:] for row in table(result.stdout, "### Metrics")}
    assert summary and all(old == new for old, new, _ in summary.values()), summary
