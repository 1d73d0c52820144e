"""The two models of the study, on a small slice of the real data."""

import numpy as np
import pytest

from stages.sgd_cv import cross_validate_sgd


def test_sgd_cross_validation_reports_each_fold(small, capsys):
    x, y = small
    result = cross_validate_sgd(x, y, "log_loss", max_iter=5, folds=3, seed=42)
    assert set(result) == {"mean", "std", "folds"} and len(result["folds"]) == 3
    assert result["mean"] == pytest.approx(np.mean(result["folds"]))
    assert result["std"] == pytest.approx(np.std(result["folds"]))
    assert 0.6 < result["mean"] < 0.95  # far above chance (0.1) on 2,000 images
    # The expected ConvergenceWarning is summarised once, not repeated per fit.
    assert capsys.readouterr().out == (
        "note: SGD stopped at max_iter=5 before converging in 3 of 3 folds (ConvergenceWarning)\n")
    # Folds fitted in parallel threads: the same numbers on every run.
    assert cross_validate_sgd(x, y, "log_loss", max_iter=5, folds=3, seed=42) == result


def test_default_network_is_one_softmax_layer(model_params):
    from stages.keras_model import import_keras
    from stages.train import build_model

    keras = import_keras(42)
    net = build_model(keras, model_params())
    dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    assert len(net.layers) == 1 and len(dense) == 1
    assert dense[0].units == 10 and dense[0].activation.__name__ == "softmax"
    assert net.count_params() == 784 * 10 + 10  # a multinomial logistic regression
    assert isinstance(net.optimizer, keras.optimizers.RMSprop)
    assert net.loss == "sparse_categorical_crossentropy"


def test_hidden_layers_dropout_and_optimizer(model_params):
    from stages.keras_model import import_keras
    from stages.train import build_model

    keras = import_keras(42)
    net = build_model(keras, model_params(hidden=[100, 50], dropout=0.2, optimizer="adam",
                                          learning_rate=0.01))
    assert [type(layer).__name__ for layer in net.layers] == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [layer.units for layer in net.layers if hasattr(layer, "units")] == [100, 50, 10]
    assert isinstance(net.optimizer, keras.optimizers.Adam)
    assert float(net.optimizer.learning_rate) == pytest.approx(0.01)
