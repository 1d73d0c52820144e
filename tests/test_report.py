"""scripts/pr_report.py's report of params, metrics and plots against a base revision; metrics at a stated
precision (`rounded`): the reference trained again on another kernel path writes the same, reports none."""

import json
import os
import re
import shutil
import subprocess
import warnings

import pytest
import yaml

from scripts.toolkit import APPLIED_EPOCHS, REPO, git, run, stages_command
from stages.data import ACCURACY_DECIMALS, LOSS_DIGITS, rounded, write_json


def report(project, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    result = run(project, "python", "-m", "scripts.pr_report", *args, env={"PYTHONPATH": str(REPO)},
                 timeout=120)
    assert result.returncode == code, result.stderr
    return result


def table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table after `heading`, without header and rule."""
    lines = re.search(r"(^\|.*\n?)+", markdown.split(heading, 1)[1], re.MULTILINE)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_report_against_base_in_ci_and_an_unknown_base(queued_experiments, tmp_path):
    """`base`: the small project with its results; HEAD: an experiment at other epochs, applied."""
    project = queued_experiments.project
    before = json.loads(git(project, "show", "base:metrics/summary.json"))
    after = json.loads((project / "metrics/summary.json").read_text())
    markdown = report(project, "base", "--plots-dir", str(tmp_path / "plots")).stdout
    assert markdown.startswith("## DVC report: `base`")
    base_epochs = yaml.safe_load(git(project, "show", "base:params.yaml"))["epochs"]
    assert table(markdown, "### Params") == [["params.yaml", "epochs", str(base_epochs), str(APPLIED_EPOCHS)]]

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
    linked = report(project, "base", "--plots-dir", str(tmp_path / "ci"), "--plots-url", url).stdout
    assert f"]({url})" in linked and "![" not in linked
    # An unknown base: one line of error, exit 1.
    unknown = report(project, "no-such-branch", code=1)
    assert unknown.stdout == "" and unknown.stderr.startswith("error: unknown revision 'no-such-branch'")


def test_metrics_files_keep_every_count_of_an_accuracy_and_five_significant_digits_of_a_loss(tmp_path):
    figures = {"val": {"loss": 0.4444442689418793, "accuracy": 10150 / 12000,
                       "per_class_accuracy": {"Bag": 1.0, "Shirt": 0.061855670103092786, "Coat": None}},
               "accuracy": {"mean": 0.8187999999999999, "folds": [0.8153333333333334, 0.82]},
               "keras_train_loss": 0.42911723256111145, "samples": 12000}
    expected = {"val": {"loss": 0.44444, "accuracy": 0.845833,
                        "per_class_accuracy": {"Bag": 1.0, "Shirt": 0.061856, "Coat": None}},
                "accuracy": {"mean": 0.8188, "folds": [0.815333, 0.82]},
                "keras_train_loss": 0.42912, "samples": 12000}
    assert (ACCURACY_DECIMALS, LOSS_DIGITS) == (6, 5)
    write_json(tmp_path / "m.json", figures)  # rounds; summary rounds again what the stages wrote
    assert json.loads((tmp_path / "m.json").read_text()) == expected == rounded(expected)
    # One sample more or less shows, on the largest set of the study (60,000); float noise does not.
    for k in (1, 30_000, 59_999):
        assert rounded({"accuracy": k / 60_000}) != rounded({"accuracy": (k + 1) / 60_000})
    assert rounded({"loss": 0.42911723256111145}) == rounded({"loss": 0.42911714})  # issue 18's two CPUs


def test_another_kernel_path_writes_the_same_metrics_and_the_report_shows_no_change(
        reference_run, tmp_path, record_property):
    """A copy of the reference run (on TensorFlow's oneDNN kernels) whose train, evaluate and summary run
    again on another kernel path, as on another CPU (TF_ENABLE_ONEDNN_OPTS=0)."""
    reference = reference_run.project
    assert "oneDNN custom operations are on" in reference_run.stderr
    project = shutil.copytree(reference, tmp_path / "project", symlinks=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    result = subprocess.run(stages_command("train", "evaluate", "summary"), cwd=project,
                            env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"}, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "oneDNN custom operations are on" not in result.stderr
    for path in ("metrics/train.json", "metrics/evaluate.json", "metrics/summary.json"):
        assert (project / path).read_bytes() == (reference / path).read_bytes(), path
    markdown = report(project, "HEAD", "--plots-dir", str(tmp_path / "plots")).stdout
    assert "No params changed." in markdown and "No metric changed." in markdown, markdown
    summary = {row[1]: row[2:] for row in table(markdown, "### Metrics")}
    assert summary and all(old == new for old, new, _ in summary.values()), summary
    # The model and its history may differ in float noise: said, not failed on.
    differ = [path for path in ("data/model.keras", "plots/train_history.csv")
              if (project / path).read_bytes() != (reference / path).read_bytes()]
    record_property("kernel_paths_differ_in", differ)
    if differ:
        warnings.warn(f"oneDNN on and off give different bytes of {differ}, the same metrics", stacklevel=1)
    # TF_CPP_MIN_LOG_LEVEL=3 (stages/keras_model.py) hides `E0000 ... node_def_util.cc ...`.
    assert not [line for line in result.stderr.splitlines() if line.startswith("E0000")], result.stderr
