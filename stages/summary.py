"""Stage 7: the study's figures in one metrics file, the three accuracies it compares first.

`dvc exp show` orders its columns as the file does: SGD's accuracy beside the Keras network's."""

from typing import Any

from stages.data import (
    EVALUATE_REPORT,
    SGD_CV_REPORT,
    SUMMARY_METRICS,
    TRAIN_REPORT,
    read_json,
    write_json,
)
from stages.exits import run

# metrics/summary.json's keys, in order; every other module imports them from here.
HEADLINE = ("sgd_cv_accuracy", "keras_val_accuracy", "keras_test_accuracy")  # the study compares
SGD_CV_ACCURACY, VAL_ACCURACY, TEST_ACCURACY = HEADLINE
SUMMARY_KEYS = (*HEADLINE, "sgd_cv_accuracy_std", "keras_train_accuracy", "keras_train_loss",
                "keras_val_loss", "keras_test_loss")


def summarize(sgd_cv: dict[str, Any], training: dict[str, Any], evaluation: dict[str, Any]
              ) -> dict[str, float]:
    """The study's figures, in SUMMARY_KEYS's order, from the three stages' reports."""
    return {
        "sgd_cv_accuracy": sgd_cv["accuracy"]["mean"],
        "keras_val_accuracy": evaluation["val"]["accuracy"],
        "keras_test_accuracy": evaluation["test"]["accuracy"],
        "sgd_cv_accuracy_std": sgd_cv["accuracy"]["std"],
        "keras_train_accuracy": training["train"]["accuracy"],
        "keras_train_loss": training["train"]["loss"],
        "keras_val_loss": evaluation["val"]["loss"],
        "keras_test_loss": evaluation["test"]["loss"],
    }


def main() -> None:
    summary = summarize(*map(read_json, (SGD_CV_REPORT, TRAIN_REPORT, EVALUATE_REPORT)))
    for key, value in summary.items():
        print(f"{key:>20}: {value:.4f}")
    write_json(SUMMARY_METRICS, summary)


if __name__ == "__main__":
    run(main)
