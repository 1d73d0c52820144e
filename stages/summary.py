"""Stage 7: the study's figures in one metrics file, the three accuracies it compares first (as `dvc exp show`
orders its columns): SGD logistic regression beside the Keras network."""

from stages.cli import run
from stages.data import EVALUATE_REPORT, SGD_CV_REPORT, SUMMARY_METRICS, TRAIN_REPORT, read_json, write_json


def main() -> None:
    sgd_cv, training, evaluation = map(read_json, (SGD_CV_REPORT, TRAIN_REPORT, EVALUATE_REPORT))
    summary = {
        "sgd_cv_accuracy": sgd_cv["accuracy"]["mean"],
        "keras_val_accuracy": evaluation["val"]["accuracy"],
        "keras_test_accuracy": evaluation["test"]["accuracy"],
        "sgd_cv_accuracy_std": sgd_cv["accuracy"]["std"],
        "keras_train_accuracy": training["train"]["accuracy"],
        "keras_train_loss": training["train"]["loss"],
        "keras_val_loss": evaluation["val"]["loss"],
        "keras_test_loss": evaluation["test"]["loss"],
    }
    for key, value in summary.items():
        print(f"{key:>20}: {value:.4f}")
    write_json(SUMMARY_METRICS, summary)


if __name__ == "__main__":
    run(main)
