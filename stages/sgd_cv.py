"""Stage 4: logistic regression by stochastic gradient descent, scored by cross-validation."""

import warnings

import numpy as np
from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import cross_validate

from stages import params
from stages.data import SGD_CV_REPORT, load_prepared, write_json
from stages.exits import run

PARAMS = ("seed", "sgd")


def cross_validate_sgd(x: np.ndarray, y: np.ndarray, loss: str, max_iter: int, folds: int,
                       seed: int) -> dict:
    """Fold accuracies of `SGDClassifier(loss, max_iter, random_state=seed)`, as the study's.

    Folds and their one-vs-rest fits run in threads (SGD releases the GIL), sharing the
    memory-mapped `x`; each fit's seed is drawn first, so the threads change no result."""
    model = SGDClassifier(loss=loss, max_iter=max_iter, random_state=seed, n_jobs=-1)
    with warnings.catch_warnings(record=True) as caught, parallel_config(backend="threading"):
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_validate(model, x, y, cv=folds, scoring="accuracy", n_jobs=-1)
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not_converged:
        print(f"note: SGD stopped at max_iter={max_iter} before converging in {not_converged} of "
              f"{folds} folds (ConvergenceWarning)")
    accuracies = scores["test_score"]
    return {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
            "folds": [float(a) for a in accuracies]}


def main() -> None:
    p = params.load(*PARAMS)
    x, y = load_prepared("train")
    accuracy = cross_validate_sgd(x, y, p.sgd.loss, p.sgd.max_iter, p.sgd.folds, p.seed)
    print(f"SGD {p.sgd.loss}, {p.sgd.folds}-fold CV on {len(y)} samples: "
          f"accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f}")
    write_json(SGD_CV_REPORT, {"accuracy": accuracy})


if __name__ == "__main__":
    run(main)
