"""End to end: the real files served on 127.0.0.1 as the only source, the pipeline on a small sample."""

import csv
import io
import json
import re

import yaml
from conftest import SMALL, dvc, git

from stages.dataset import CLASS_NAMES

N_TRAIN = int(SMALL * 0.8)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", output))


def read(project, path):
    return json.loads((project / path).read_text())


def test_repro_then_an_experiment_reruns_only_what_changed(small_project, tmp_path, monkeypatch):
    project = small_project
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    first = dvc(project, "repro")
    assert ran_stages(first.stdout) == {"download", "prepare", "split", "sgd_cv", "train", "evaluate", "summary"}
    # Nothing left in TMPDIR, though TensorFlow's autograph writes its generated code there.
    assert list(scratch.iterdir()) == []
    # TensorFlow's C++ start-up notes and its harmless op-attribute error line are held back.
    log = first.stdout + first.stderr
    assert "I0000" not in log and "E0000" not in log and "absl::InitializeLog" not in log, log

    data = read(project, "metrics/data.json")
    assert data["train"]["samples"] == SMALL and data["test"]["samples"] == SMALL
    assert (data["train"]["height"], data["train"]["width"]) == (28, 28)
    assert list(data["train"]["class_counts"]) == list(CLASS_NAMES)
    assert sum(data["train"]["class_counts"].values()) == SMALL

    sgd = read(project, "metrics/sgd_cv.json")["accuracy"]
    assert len(sgd["folds"]) == 5 and 0.6 < sgd["mean"] < 0.95
    assert "time" not in json.dumps(sgd)  # timings vary run to run: printed, not in metrics

    train = read(project, "metrics/train.json")
    assert set(train) == {"train", "val"} and 0.6 < train["val"]["accuracy"] <= 1
    history = (project / "plots/train_history.csv").read_text().splitlines()
    assert history[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(history) == 1 + 5

    evaluation = read(project, "metrics/evaluate.json")
    for part in ("val", "test"):
        assert set(evaluation[part]) == {"loss", "accuracy", "per_class_accuracy"}
        assert list(evaluation[part]["per_class_accuracy"]) == list(CLASS_NAMES)
    # evaluate recomputes what training reported for the same validation set.
    assert abs(evaluation["val"]["accuracy"] - train["val"]["accuracy"]) < 1e-6
    confusion = (project / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 1 + SMALL

    summary = read(project, "metrics/summary.json")
    assert summary == {
        "sgd_cv_accuracy": sgd["mean"],
        "keras_val_accuracy": evaluation["val"]["accuracy"],
        "keras_test_accuracy": evaluation["test"]["accuracy"],
    }
    for image in ("first_images.png", "misclassified.png"):
        assert (project / "plots" / image).read_bytes().startswith(b"\x89PNG")

    plots = json.loads(dvc(project, "plots", "show", "--json").stdout)["data"]
    for title in ("Loss per epoch", "Accuracy per epoch"):
        (plot,) = plots[title]
        x = plot["content"]["encoding"]["x"]
        assert x["field"] == "epoch" and x["axis"]["tickMinStep"] == 1  # whole epochs, no 1.5
        assert sorted({int(row["epoch"]) for row in plot["content"]["data"]["values"]}) == [1, 2, 3, 4, 5]

    assert "up to date" in dvc(project, "repro").stdout
    git(project, "add", "-A")
    git(project, "commit", "-qm", "results")

    experiment = dvc(project, "exp", "run", "-S", "epochs=2")
    assert ran_stages(experiment.stdout) == {"train", "evaluate", "summary"}
    assert yaml.safe_load((project / "params.yaml").read_text())["epochs"] == 2
    assert len((project / "plots/train_history.csv").read_text().splitlines()) == 1 + 2

    diff = json.loads(dvc(project, "metrics", "diff", "--json").stdout)
    assert set(diff) == {"metrics/train.json", "metrics/evaluate.json", "metrics/summary.json"}
    change = diff["metrics/train.json"]["val.loss"]
    assert change["old"] == train["val"]["loss"] and change["new"] != change["old"]
    assert "epochs" in dvc(project, "params", "diff").stdout

    rows = list(csv.DictReader(io.StringIO(dvc(project, "exp", "show", "--csv").stdout)))
    experiments = [row for row in rows if row["typ"] not in ("workspace", "baseline")]
    assert [row["epochs"] for row in experiments] == ["2"]
    assert experiments[0]["keras_val_accuracy"] == str(read(project, "metrics/summary.json")["keras_val_accuracy"])
