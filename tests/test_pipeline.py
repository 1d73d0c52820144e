"""End to end on the shared runs (`reference_run`, `queued_experiments`): what a user reads."""

# The way back from a failed experiment: tests/team/test_shared_store.py.

import csv
import json
from collections import Counter

import numpy as np
import pytest
import yaml

from scripts.toolkit import APPLIED_EPOCHS, QUEUED, STAGES, dvc, git, ran_stages
from stages.data import CLASS_NAMES, rounded
from stages.summary import SUMMARY_KEYS


def test_repro_writes_every_report_plot_and_the_summary(reference_run, tmp_path):
    project = reference_run.project
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert ran_stages(reference_run.stdout) == list(STAGES)
    log = reference_run.stdout + reference_run.stderr
    assert "Traceback" not in log and "Warning:" not in log, log  # no Python warning in the log
    # Nothing in HOME or TMPDIR: Keras's and Matplotlib's files are in the workspace.
    assert list(reference_run.home.iterdir()) == [] and list(reference_run.tmpdir.iterdir()) == []
    assert (project / ".dvc/tmp/stage-home/keras/keras.json").is_file()
    assert list((project / ".dvc/tmp/stage-home/matplotlib").glob("fontlist-*.json"))
    data, sgd_cv, train, evaluation, summary = (
        json.loads((project / f"metrics/{name}.json").read_text())
        for name in ("data", "sgd_cv", "train", "evaluate", "summary"))
    assert data["train"]["samples"] == data["test"]["samples"] == params["max_samples"]
    assert (data["train"]["height"], data["train"]["width"]) == (28, 28)
    counts = data["train"]["class_counts"]
    assert list(counts) == list(CLASS_NAMES) and sum(counts.values()) == params["max_samples"]
    sgd = sgd_cv["accuracy"]
    assert len(sgd["folds"]) == params["sgd"]["folds"] and 0.6 < sgd["mean"] < 0.95
    assert "time" not in json.dumps(sgd)  # timings vary run to run: printed, not in metrics
    assert set(train) == {"train", "val"} and 0.6 < train["val"]["accuracy"] <= 1
    history = (project / "plots/train_history.csv").read_text().splitlines()
    assert history[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    assert len(history) == 1 + params["epochs"]
    for part in ("val", "test"):
        assert set(evaluation[part]) == {"loss", "accuracy", "per_class_accuracy"}
        assert list(evaluation[part]["per_class_accuracy"]) == list(CLASS_NAMES)
    # evaluate recomputes what training reported for the same validation set.
    assert abs(evaluation["val"]["accuracy"] - train["val"]["accuracy"]) < 1e-6
    per_class = csv.DictReader((project / "plots/per_class_accuracy.csv").open())
    assert [(row["class"], float(row["accuracy"])) for row in per_class] == list(
        evaluation["test"]["per_class_accuracy"].items())

    # The one metrics file: the study's figures, the three accuracies it compares first.
    assert list(summary.items()) == [
        ("sgd_cv_accuracy", sgd["mean"]), ("keras_val_accuracy", evaluation["val"]["accuracy"]),
        ("keras_test_accuracy", evaluation["test"]["accuracy"]),
        ("sgd_cv_accuracy_std", sgd["std"]),
        ("keras_train_accuracy", train["train"]["accuracy"]),
        ("keras_train_loss", train["train"]["loss"]),
        ("keras_val_loss", evaluation["val"]["loss"]),
        ("keras_test_loss", evaluation["test"]["loss"])]
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    assert list(shown[""]["data"]) == ["metrics/summary.json"]
    for image in ("first_images.png", "misclassified.png"):
        assert (project / "plots" / image).read_bytes().startswith(b"\x89PNG")
    drawn = dvc(project, "plots", "show", "--json", "--out", str(tmp_path)).stdout
    plots = json.loads(drawn)["data"]
    for title in ("Loss per epoch", "Accuracy per epoch"):
        (plot,) = plots[title]
        x = plot["content"]["encoding"]["x"]
        assert x["field"] == "epoch" and x["axis"]["tickMinStep"] == 1  # whole epochs, no 1.5
        epochs = {int(row["epoch"]) for row in plot["content"]["data"]["values"]}
        assert sorted(epochs) == [0, 1]  # from 0
    assert {"Test accuracy per class", "Test confusion matrix"} <= set(plots)

    # The test accuracies recomputed: counted from plots/confusion.csv, an (actual, predicted) row
    # per test image, and from the weights (one softmax layer predicts argmax(x @ W + b)) in NumPy.
    rows = list(csv.DictReader((project / "plots/confusion.csv").open()))
    assert list(rows[0]) == ["actual", "predicted"] and len(rows) == params["max_samples"]
    test = evaluation["test"]
    right = sum(r["actual"] == r["predicted"] for r in rows)
    assert abs(right / len(rows) - test["accuracy"]) < 1e-6
    totals = Counter(r["actual"] for r in rows)
    correct = Counter(r["actual"] for r in rows if r["actual"] == r["predicted"])
    assert test["per_class_accuracy"] == pytest.approx(
        {name: correct[name] / totals[name] for name in CLASS_NAMES}, abs=1e-6)  # 6 decimals
    import keras
    model = keras.models.load_model(project / "data/model.keras", safe_mode=True)
    (layer,) = model.layers
    weights, bias = layer.get_weights()
    predicted = np.argmax(np.load(project / "data/prepared/x_test.npy") @ weights + bias, axis=1)
    labels = np.load(project / "data/prepared/y_test.npy")
    assert abs(np.mean(predicted == labels) - test["accuracy"]) < 1e-6
    assert [CLASS_NAMES[label] for label in predicted] == [r["predicted"] for r in rows]


def test_queued_experiments_run_in_parallel_without_interfering(queued_experiments):
    """Each in its own copy (.dvc/tmp/exps), each result as it would be alone."""
    # The longer training's history extends the base's (training is deterministic); the other SGD
    # scores what cross-validation here gives.
    queue = queued_experiments
    assert queue.queued.count("Queued experiment") == len(QUEUED), queue.queued
    assert queue.two_at_once  # two workers, each running one experiment in its own copy
    assert sorted(queue.runs) == sorted(QUEUED)
    for run in queue.runs.values():
        assert run["state"] == "success" and 0.6 < run["metrics"]["keras_test_accuracy"] <= 1
    base = yaml.safe_load(git(queue.project, "show", "base:params.yaml"))
    before = json.loads(git(queue.project, "show", "base:metrics/summary.json"))
    trained, scored = queue.runs["epochs"]["metrics"], queue.runs["sgd.folds"]["metrics"]
    history = queue.histories["base"]
    assert len(history) == base["epochs"] and queue.histories["epochs"][: len(history)] == history
    assert trained["sgd_cv_accuracy"] == before["sgd_cv_accuracy"] != scored["sgd_cv_accuracy"]
    assert trained["keras_val_loss"] != before["keras_val_loss"]
    # The other SGD trained no network: its history and Keras figures are the base's.
    assert queue.histories["sgd.folds"] == history
    keras = [key for key in SUMMARY_KEYS if key.startswith("keras")]
    assert [scored[key] for key in keras] == [before[key] for key in keras]
    from stages.sgd_cv import cross_validate_sgd  # scikit-learn: imported here, not at collection

    x, y = (np.load(queue.project / f"data/prepared/{name}_train.npy") for name in "xy")
    alone = cross_validate_sgd(x, y, base["sgd"]["loss"], base["sgd"]["max_iter"],
                               QUEUED["sgd.folds"], base["seed"])
    assert scored["sgd_cv_accuracy"] == rounded(alone["mean"])
    # Nothing written outside the workspaces: no ~/.keras, no Matplotlib files, no $TMPDIR file.
    assert [path for folder in (queue.home, queue.tmpdir) for path in folder.rglob("*")] == []
    # The one applied reran only what depends on `epochs` (the data came from the cache, SGD was not
    # redone); its results are the workspace's (test_report.py reads its params and metrics diffs).
    applied = queue.runs["epochs"]
    assert ran_stages(applied["log"]) == ["train", "evaluate", "summary"], applied["log"]
    history_rows = (queue.project / "plots/train_history.csv").read_text().splitlines()
    assert len(history_rows) == 1 + APPLIED_EPOCHS
    assert json.loads((queue.project / "metrics/summary.json").read_text()) == applied["metrics"]
    # `dvc exp show`: its fixed columns, summary.json's keys (each figure once, in order), params.
    table = dvc(queue.project, "exp", "show", "--csv", "--all-commits").stdout
    header = next(csv.reader(table.splitlines()))
    fixed = [name for name in header
             if name in ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")]
    assert header[: len(fixed)] == fixed
    assert header[len(fixed):header.index("seed")] == list(SUMMARY_KEYS)
