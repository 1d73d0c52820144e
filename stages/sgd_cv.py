"""Stage 4: logistic regression by stochastic gradient descent, scored by k-fold cross-validation."""

import time
import warnings

import numpy as np
from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import cross_validate

from stages import params
from stages.artifacts import SGD_CV_METRICS, load_prepared
from stages.cli import run
from stages.files import write_json

PARAMS = ("seed", "sgd")


def cross_validate_sgd(
    x: np.ndarray, y: np.ndarray, loss: str, max_iter: int, folds: int, seed: int
) -> dict:
    """Fold accuracies of `SGDClassifier(loss, max_iter, random_state=seed)`, as the study computes them.

    Results don't depend on the thread count: each one-vs-rest fit draws its seed before the
    fits are scheduled, and scikit-learn's SGD loop releases the GIL, so threads use both cores
    without copying the data into worker processes.
    """
    model = SGDClassifier(loss=loss, max_iter=max_iter, random_state=seed, n_jobs=-1)
    with warnings.catch_warnings(record=True) as caught, parallel_config(backend="threading"):
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_validate(model, x, y, cv=folds, scoring="accuracy")
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not_converged:
        print(
            f"note: SGD stopped at max_iter={max_iter} before converging in {not_converged} of "
            f"{folds} folds (ConvergenceWarning); expected with the study's max_iter=5"
        )
    accuracies = scores["test_score"]
    return {
        "fit_time": float(np.sum(scores["fit_time"])),
        "accuracy": {
            "mean": float(np.mean(accuracies)),
            "std": float(np.std(accuracies)),
            "folds": {str(i + 1): float(a) for i, a in enumerate(accuracies)},
        },
    }


def main() -> None:
    p = params.load(*PARAMS)
    x, y = load_prepared("train")
    start = time.perf_counter()
    result = cross_validate_sgd(x, y, p.sgd.loss, p.sgd.max_iter, p.sgd.folds, p.seed)
    accuracy = result["accuracy"]
    print(
        f"SGD {p.sgd.loss}, {p.sgd.folds}-fold CV on {len(y)} samples: accuracy "
        f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f} "
        f"(wall {time.perf_counter() - start:.1f} s, fits {result['fit_time']:.1f} s)"
    )
    # Timings change from run to run: printed above, kept out of the metrics file.
    write_json(SGD_CV_METRICS, {"accuracy": accuracy})


if __name__ == "__main__":
    run(main)
