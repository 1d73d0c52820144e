"""Stage 7: the study's question in one table: SGD logistic regression beside the Keras network."""

from stages.artifacts import EVALUATE_METRICS, SGD_CV_METRICS, SUMMARY_METRICS
from stages.cli import run
from stages.files import read_json, write_json


def summarize(sgd_cv: dict, evaluation: dict) -> dict[str, float]:
    return {
        "sgd_cv_accuracy": sgd_cv["accuracy"]["mean"],
        "keras_val_accuracy": evaluation["val"]["accuracy"],
        "keras_test_accuracy": evaluation["test"]["accuracy"],
    }


def main() -> None:
    summary = summarize(read_json(SGD_CV_METRICS), read_json(EVALUATE_METRICS))
    for key, value in summary.items():
        print(f"{key:>20}: {value:.4f}")
    write_json(SUMMARY_METRICS, summary)


if __name__ == "__main__":
    run(main)
