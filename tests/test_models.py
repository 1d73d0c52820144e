"""The two models of the study, on a small slice of the real data."""

import numpy as np
import pytest

from stages.sgd_cv import cross_validate_sgd


def test_sgd_cross_validation_reports_each_fold(small, capsys):
    result = cross_validate_sgd(*small, "log_loss", max_iter=5, folds=3, seed=42)
    assert set(result) == {"mean", "std", "folds"} and len(result["folds"]) == 3
    assert result["mean"] == pytest.approx(np.mean(result["folds"]))
    assert result["std"] == pytest.approx(np.std(result["folds"]))
    assert 0.6 < result["mean"] < 0.95  # far above chance (0.1) on 2,000 images
    # The expected ConvergenceWarning is summarised once, not repeated per fit.
    assert capsys.readouterr().out == (
        "note: SGD stopped at max_iter=5 before converging in 3 of 3 folds (ConvergenceWarning)\n")
    # Folds fitted in parallel threads: the same numbers on every run.
    assert cross_validate_sgd(*small, "log_loss", max_iter=5, folds=3, seed=42) == result


@pytest.mark.parametrize(("changes", "layers", "units", "optimizer", "parameters"), [
    # The default: one softmax layer, a multinomial logistic regression.
    ({}, ["Dense"], [10], "RMSprop", 784 * 10 + 10),
    ({"hidden": [100, 50], "dropout": 0.2, "optimizer": "adam", "learning_rate": 0.01},
     ["Dense", "Dropout", "Dense", "Dropout", "Dense"], [100, 50, 10], "Adam",
     (784 * 100 + 100) + (100 * 50 + 50) + (50 * 10 + 10)),
])
def test_the_network_params_build(changes, layers, units, optimizer, parameters, model_params):
    from stages.keras_model import import_keras
    from stages.train import build_model

    keras = import_keras(42)
    net = build_model(keras, model_params(**changes))
    assert [type(layer).__name__ for layer in net.layers] == layers
    assert [layer.units for layer in net.layers if hasattr(layer, "units")] == units
    assert net.layers[-1].activation.__name__ == "softmax" and net.loss == "sparse_categorical_crossentropy"
    assert isinstance(net.optimizer, getattr(keras.optimizers, optimizer))
    assert float(net.optimizer.learning_rate) == pytest.approx(changes.get("learning_rate", 0.001))
    assert net.count_params() == parameters
