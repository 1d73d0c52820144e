"""Stage 4: logistic regression by stochastic gradient descent, scored by k-fold cross-validation."""

import contextlib
import time
import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.linear_model import _stochastic_gradient
from sklearn.model_selection import cross_validate

from stages import params
from stages.artifacts import SGD_CV_METRICS, load_prepared
from stages.cli import run
from stages.files import write_json

PARAMS = ("seed", "sgd")
THREADS = 2  # folds fitted at once; each fold's one-vs-rest fits also share THREADS threads


def cross_validate_sgd(
    x: np.ndarray | sp.csr_matrix, y: np.ndarray, loss: str, max_iter: int, folds: int, seed: int
) -> dict:
    """Fold accuracies of `SGDClassifier(loss, max_iter, random_state=seed)`, as the study computes them.

    The fits see `x` without its zeros (half of Fashion-MNIST's pixels): scikit-learn's SGD loop
    then skips the terms x_ij * w_j that are exactly 0, and gives bit for bit the dense fit's
    coefficients (checked below on every run) in about three quarters of the time. `x` may be
    given without its zeros already (`without_zeros(x)`, after that check).

    Results don't depend on the thread count: each one-vs-rest fit draws its seed before the
    fits are scheduled, and scikit-learn's SGD loop releases the GIL, so threads use both cores
    without copying the data into worker processes: folds run two at a time, and within a fold
    the ten one-vs-rest fits share two threads, so a lone last fold still keeps both cores busy.
    """
    if not sp.issparse(x) and _sparse_is_dense_equivalent(loss, max_iter, seed):
        x = without_zeros(x)
    model = SGDClassifier(loss=loss, max_iter=max_iter, random_state=seed, n_jobs=THREADS)
    with (
        warnings.catch_warnings(record=True) as caught,
        parallel_config(backend="threading"),
        _dense_intercept_decay(),
    ):
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_validate(model, x, y, cv=folds, scoring="accuracy", n_jobs=THREADS)
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


def without_zeros(x: np.ndarray, chunk: int = 8192) -> sp.csr_matrix:
    """`x` as a CSR matrix (float32 values, int32 indices), filled a chunk of rows at a time.

    Two passes over `x` (it is memory-mapped), so that no more than the result is ever allocated.
    """
    counts = np.concatenate([
        np.count_nonzero(np.asarray(x[start : start + chunk]), axis=1)
        for start in range(0, x.shape[0], chunk)
    ])
    indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    if indptr[-1] >= np.iinfo(np.int32).max:
        raise OverflowError("too many non-zero pixels for int32 indices")
    data = np.empty(indptr[-1], dtype=x.dtype)
    indices = np.empty(indptr[-1], dtype=np.int32)
    for start in range(0, x.shape[0], chunk):
        rows = np.asarray(x[start : start + chunk])
        nonzero = rows != 0
        begin, end = indptr[start], indptr[min(start + chunk, x.shape[0])]
        data[begin:end] = rows[nonzero]
        indices[begin:end] = np.nonzero(nonzero)[1]
    return sp.csr_matrix((data, indices, indptr.astype(np.int32)), shape=x.shape)


@contextlib.contextmanager
def _dense_intercept_decay() -> Iterator[None]:
    """Fit sparse input with the dense input's intercept step.

    On sparse input scikit-learn damps every intercept update by 0.01 (SPARSE_INTERCEPT_DECAY), a
    heuristic for sparse text features that would change the model; with the dense value 1.0 the
    fit is the dense fit. Patched only inside this block.
    """
    original = _stochastic_gradient.make_dataset

    def make_dataset(*args, **kwargs):
        dataset, _ = original(*args, **kwargs)
        return dataset, 1.0

    _stochastic_gradient.make_dataset = make_dataset
    try:
        yield
    finally:
        _stochastic_gradient.make_dataset = original


def _sparse_is_dense_equivalent(loss: str, max_iter: int, seed: int, n: int = 300) -> bool:
    """Whether the zero-free fit gives bit for bit the dense fit's coefficients, on `n` random rows.

    A guard against a scikit-learn whose SGD differs between dense and sparse input in some other
    way: then the stage falls back to the dense input (slower, same results).
    """
    if not callable(getattr(_stochastic_gradient, "make_dataset", None)):
        return False
    rng = np.random.default_rng(0)
    x = (rng.random((n, 64), dtype=np.float32) * (rng.random((n, 64)) < 0.5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = SGDClassifier(loss=loss, max_iter=max_iter, random_state=seed).fit(x, y)
        with _dense_intercept_decay():
            sparse = SGDClassifier(loss=loss, max_iter=max_iter, random_state=seed).fit(
                without_zeros(x), y
            )
    same = np.array_equal(dense.coef_, sparse.coef_) and np.array_equal(
        dense.intercept_, sparse.intercept_
    )
    if not same:
        print("note: this scikit-learn fits sparse input differently; fitting the dense input")
    return same


def main() -> None:
    p = params.load(*PARAMS)
    start = time.perf_counter()
    x, y = load_prepared("train")
    if _sparse_is_dense_equivalent(p.sgd.loss, p.sgd.max_iter, p.seed):
        x = without_zeros(x)  # and the memory map is closed: only the zero-free copy stays resident
    result = cross_validate_sgd(x, np.asarray(y), p.sgd.loss, p.sgd.max_iter, p.sgd.folds, p.seed)
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
