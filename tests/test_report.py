"""scripts/pr_report.py's report against a base revision, and the metrics' stated precision."""

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
    """The rows (cells stripped) of the first Markdown table after `heading`, header left out."""
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
    assert table(markdown, "### Params") == [
        ["params.yaml", "epochs", str(base_epochs), str(APPLIED_EPOCHS)]]

    summary = {row[1]: row[2:] for row in table(markdown, "### Metrics")}
    assert set(summary) == set(before)  # every figure, the unchanged SGD accuracy too
    for key in ("keras_val_accuracy", "keras_test_accuracy"):
        old, new, change = map(float, summary[key])
        assert old == pytest.approx(before[key], abs=1e-5)
        assert new == pytest.approx(after[key], abs=1e-5)
        assert change == pytest.approx(after[key] - before[key], abs=2e-5)
    old, new, change = map(float, summary["sgd_cv_accuracy"])
    assert old == new and change == 0
    changed = {(row[0], row[1]) for row in table(markdown, "All changed metrics")}
    keras = ("keras_val_loss", "keras_test_accuracy")
    assert {("metrics/summary.json", key) for key in keras} <= changed
    assert not any(key.startswith("sgd") for _, key in changed)

    # Training changed; the data did not: the first images are the same, the rest differ.
    for plot in ("Loss per epoch", "Accuracy per epoch", "Test accuracy per class",
                 "Test confusion matrix", "plots/misclassified.png"):
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
    assert unknown.stdout == ""
    assert unknown.stderr.startswith("error: unknown revision 'no-such-branch'")


def test_metrics_keep_every_count_of_an_accuracy_and_five_significant_digits_of_a_loss(tmp_path):
    per_class = {"Bag": 1.0, "Shirt": 0.061855670103092786, "Coat": None}
    figures = {"val": {"loss": 0.4444442689418793, "accuracy": 10150 / 12000,
                       "per_class_accuracy": per_class},
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
    # issue 18's two CPUs
    assert rounded({"loss": 0.42911723256111145}) == rounded({"loss": 0.42911714})


# TF_ENABLE_ONEDNN_OPTS by kernel path: TensorFlow's oneDNN kernels, or its own. Each run sets it:
# TensorFlow's default depends on the CPU (on with AVX-512, off without).
KERNEL_PATHS = {"onednn": "1", "eigen": "0"}


def test_both_kernel_paths_write_the_reference_metrics_and_the_report_shows_no_change(
        reference, tmp_path, record_property):
    """train, evaluate and summary again in two copies of the reference, oneDNN on and off."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    processes = {}
    for path, value in KERNEL_PATHS.items():  # both at once, each in its own process
        project = shutil.copytree(reference, tmp_path / path, symlinks=True)
        with (tmp_path / f"{path}.log").open("w") as log:  # the child keeps its own descriptor
            processes[path] = subprocess.Popen(
                stages_command("train", "evaluate", "summary"), cwd=project, text=True,
                env={**base, "TF_ENABLE_ONEDNN_OPTS": value}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log)
    codes = {path: process.wait(600) for path, process in processes.items()}
    stderr = {path: (tmp_path / f"{path}.log").read_text() for path in KERNEL_PATHS}
    assert codes == dict.fromkeys(KERNEL_PATHS, 0), stderr
    # TensorFlow's notice, by its name only: each run took the path it asked for.
    assert "oneDNN" in stderr["onednn"] and "oneDNN" not in stderr["eigen"], stderr
    # The reference ran on one of the two, whichever TF_ENABLE_ONEDNN_OPTS the suite started with.
    for path in KERNEL_PATHS:
        project = tmp_path / path
        for name in ("metrics/train.json", "metrics/evaluate.json", "metrics/summary.json"):
            assert (project / name).read_bytes() == (reference / name).read_bytes(), (path, name)
        # TF_CPP_MIN_LOG_LEVEL=3 (stages/keras_model.py) hides TensorFlow's C++ error lines.
        assert not re.search(r"^E\d{4} ", stderr[path], re.MULTILINE), stderr[path]
    # Both copies hold the same params and metrics bytes: one report speaks for both.
    markdown = report(tmp_path / "eigen", "HEAD", "--plots-dir", str(tmp_path / "plots")).stdout
    assert "No params changed." in markdown and "No metric changed." in markdown, markdown
    summary = {row[1]: row[2:] for row in table(markdown, "### Metrics")}
    assert summary and all(old == new for old, new, _ in summary.values()), summary
    # The model and its history may differ in float noise: said, not failed on.
    on, off = tmp_path / "onednn", tmp_path / "eigen"
    differ = [name for name in ("data/model.keras", "plots/train_history.csv")
              if (on / name).read_bytes() != (off / name).read_bytes()]
    record_property("kernel_paths_differ_in", differ)
    if differ:
        warnings.warn(f"oneDNN on and off give different bytes of {differ}, the same metrics",
                      stacklevel=1)
