"""End to end: the pipeline on a small sample (the shared `reference_run`, one uninterrupted `dvc repro`
from scratch, tests/conftest.py); what a user reads of the results. Experiments: test_experiments.py."""

import csv
import json
from collections import Counter

import numpy as np
import pytest

from scripts.toolkit import SMALL, SMALL_RUN_PARAMS, STAGES, SUMMARY_KEYS, dvc, ran_stages
from stages.data import CLASS_NAMES


def read(project, path):
    return json.loads((project / path).read_text())


def test_repro_writes_every_report_plot_and_the_summary(reference_run, tmp_path):
    project = reference_run.project
    assert ran_stages(reference_run.result.stdout) == list(STAGES)
    log = reference_run.result.stdout + reference_run.result.stderr
    assert "Traceback" not in log and "Warning:" not in log, log  # no Python warning reaches the log
    # Nothing in HOME or TMPDIR: Keras's and Matplotlib's files are in the workspace.
    assert list(reference_run.home.iterdir()) == [] and list(reference_run.tmpdir.iterdir()) == []
    assert (project / ".dvc/tmp/stage-home/keras/keras.json").is_file()
    assert list((project / ".dvc/tmp/stage-home/matplotlib").glob("fontlist-*.json"))

    data = read(project, "metrics/data.json")
    assert data["train"]["samples"] == SMALL and data["test"]["samples"] == SMALL
    assert (data["train"]["height"], data["train"]["width"]) == (28, 28)
    assert list(data["train"]["class_counts"]) == list(CLASS_NAMES)
    assert sum(data["train"]["class_counts"].values()) == SMALL

    sgd = read(project, "metrics/sgd_cv.json")["accuracy"]
    assert len(sgd["folds"]) == SMALL_RUN_PARAMS["sgd.folds"] and 0.6 < sgd["mean"] < 0.95
    assert "time" not in json.dumps(sgd)  # timings vary run to run: printed, not in metrics

    train = read(project, "metrics/train.json")
    assert set(train) == {"train", "val"} and 0.6 < train["val"]["accuracy"] <= 1
    history = (project / "plots/train_history.csv").read_text().splitlines()
    assert history[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1"]  # Keras counts from 0

    evaluation = read(project, "metrics/evaluate.json")
    for part in ("val", "test"):
        assert set(evaluation[part]) == {"loss", "accuracy", "per_class_accuracy"}
        assert list(evaluation[part]["per_class_accuracy"]) == list(CLASS_NAMES)
    # evaluate recomputes what training reported for the same validation set.
    assert abs(evaluation["val"]["accuracy"] - train["val"]["accuracy"]) < 1e-6
    confusion = (project / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 1 + SMALL
    per_class = list(csv.DictReader((project / "plots/per_class_accuracy.csv").open()))
    assert [row["class"] for row in per_class] == list(CLASS_NAMES)
    accuracies = [float(row["accuracy"]) for row in per_class]
    assert accuracies == list(evaluation["test"]["per_class_accuracy"].values())

    # The one metrics file: the study's figures, the three accuracies it compares first.
    summary = read(project, "metrics/summary.json")
    assert list(summary) == SUMMARY_KEYS
    assert summary == {
        "sgd_cv_accuracy": sgd["mean"], "keras_val_accuracy": evaluation["val"]["accuracy"],
        "keras_test_accuracy": evaluation["test"]["accuracy"], "sgd_cv_accuracy_std": sgd["std"],
        "keras_train_accuracy": train["train"]["accuracy"], "keras_train_loss": train["train"]["loss"],
        "keras_val_loss": evaluation["val"]["loss"], "keras_test_loss": evaluation["test"]["loss"],
    }
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    assert list(shown[""]["data"]) == ["metrics/summary.json"]
    for image in ("first_images.png", "misclassified.png"):
        assert (project / "plots" / image).read_bytes().startswith(b"\x89PNG")

    plots = json.loads(dvc(project, "plots", "show", "--json", "--out", str(tmp_path)).stdout)["data"]
    for title in ("Loss per epoch", "Accuracy per epoch"):
        (plot,) = plots[title]
        x = plot["content"]["encoding"]["x"]
        assert x["field"] == "epoch" and x["axis"]["tickMinStep"] == 1  # whole epochs, no 1.5
        assert sorted({int(row["epoch"]) for row in plot["content"]["data"]["values"]}) == [0, 1]
    assert {"Test accuracy per class", "Test confusion matrix"} <= set(plots)


def test_the_test_accuracies_recomputed_from_the_confusion_rows_and_from_the_weights(reference):
    import keras

    evaluation = json.loads((reference / "metrics/evaluate.json").read_text())["test"]
    rows = list(csv.DictReader((reference / "plots/confusion.csv").open()))
    # From plots/confusion.csv, one (actual, predicted) row per test image: counted here.
    assert abs(sum(r["actual"] == r["predicted"] for r in rows) / len(rows) - evaluation["accuracy"]) < 1e-6
    totals = Counter(r["actual"] for r in rows)
    correct = Counter(r["actual"] for r in rows if r["actual"] == r["predicted"])
    assert evaluation["per_class_accuracy"] == pytest.approx(
        {name: correct[name] / totals[name] for name in CLASS_NAMES}, abs=1e-6)  # written to 6 decimals

    # The default model is one softmax layer: its prediction is argmax(x @ W + b), in NumPy.
    model = keras.models.load_model(reference / "data/model.keras", safe_mode=True)
    assert len(model.layers) == 1
    weights, bias = model.layers[-1].get_weights()
    x = np.load(reference / "data/prepared/x_test.npy")
    y = np.load(reference / "data/prepared/y_test.npy")
    predicted = np.argmax(x @ weights + bias, axis=1)
    assert abs(np.mean(predicted == y) - evaluation["accuracy"]) < 1e-6
    assert [CLASS_NAMES[label] for label in predicted] == [r["predicted"] for r in rows]
