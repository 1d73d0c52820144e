"""scripts/pr_report.py: the pull-request report of params, metrics and plots against a base revision."""

import json
import subprocess
import sys

import pytest
from conftest import APPLIED_EPOCHS, PIPELINE_PARAMS, REPO, git

SCRIPT = REPO / "scripts" / "pr_report.py"


def report(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=project, capture_output=True, text=True, timeout=120,
    )


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


@pytest.fixture(scope="module")
def two_commits(queued_experiments):
    """`base`: the small project with its results; HEAD: an experiment at other epochs, applied."""
    project = queued_experiments.project
    before = json.loads(git(project, "show", "base:metrics/summary.json"))
    after = json.loads((project / "metrics/summary.json").read_text())
    assert before["keras_val_accuracy"] != after["keras_val_accuracy"]
    return project, before, after


def test_report_shows_the_params_metrics_and_plots_that_changed(two_commits, tmp_path):
    project, before, after = two_commits
    result = report(project, "base", "--plots-dir", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    markdown = result.stdout
    assert markdown.startswith("## DVC report: `base`")

    assert table(markdown, "### Params") == [
        ["params.yaml", "epochs", str(PIPELINE_PARAMS["epochs"]), str(APPLIED_EPOCHS)]]

    summary = {row[1]: row[2:] for row in table(markdown, "### Metrics")}
    assert set(summary) == set(before)  # every figure, the unchanged SGD accuracy too
    for key in ("keras_val_accuracy", "keras_test_accuracy"):
        old, new, change = map(float, summary[key])
        assert old == pytest.approx(before[key], abs=1e-5) and new == pytest.approx(after[key], abs=1e-5)
        assert change == pytest.approx(after[key] - before[key], abs=2e-5)
    old, new, change = map(float, summary["sgd_cv_accuracy"])
    assert old == new and change == 0

    changed = {(row[0], row[1]) for row in table(markdown, "All changed metrics")}
    assert {("metrics/summary.json", "keras_val_loss"), ("metrics/summary.json", "keras_test_accuracy")} <= changed
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


def test_report_in_ci_links_the_published_plots(two_commits, tmp_path):
    project, _, _ = two_commits
    url = "https://github.com/o/r/actions/runs/1"
    result = report(project, "base", "--plots-dir", str(tmp_path / "plots"), "--plots-url", url)
    assert result.returncode == 0, result.stderr
    assert f"]({url})" in result.stdout and "![" not in result.stdout


def test_nothing_changed_against_the_same_commit(two_commits, tmp_path):
    project, _, _ = two_commits
    result = report(project, "HEAD", "--plots-dir", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    assert "No params changed." in result.stdout and "No metric changed." in result.stdout
    assert ": changed" not in result.stdout


def test_an_unknown_base_is_one_line_of_error(two_commits):
    project, _, _ = two_commits
    result = report(project, "no-such-branch")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: unknown revision 'no-such-branch'")
