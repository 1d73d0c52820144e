"""The two models of the study, on a small slice of the real data."""

import gzip

import numpy as np
import pytest

from stages import params
from stages.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
from stages.prepare import scale_and_flatten
from stages.sgd_cv import cross_validate_sgd

N = 2000


@pytest.fixture(scope="module")
def small(dataset):
    images = parse_idx(gzip.decompress((dataset / "train-images-idx3-ubyte.gz").read_bytes()), IMAGES_MAGIC)
    labels = parse_idx(gzip.decompress((dataset / "train-labels-idx1-ubyte.gz").read_bytes()), LABELS_MAGIC)
    return scale_and_flatten(images[:N]), labels[:N]


def test_sgd_cross_validation_reports_each_fold(small, capsys):
    x, y = small
    result = cross_validate_sgd(x, y, "log_loss", max_iter=5, folds=5, seed=42)
    folds = list(result["accuracy"]["folds"].values())
    assert len(folds) == 5
    assert result["accuracy"]["mean"] == pytest.approx(np.mean(folds))
    assert result["accuracy"]["std"] == pytest.approx(np.std(folds))
    assert 0.6 < result["accuracy"]["mean"] < 0.95  # far above chance (0.1) on 2,000 images
    # The expected ConvergenceWarning is summarised once, not repeated per fit.
    assert capsys.readouterr().out.count("ConvergenceWarning") == 1
    again = cross_validate_sgd(x, y, "log_loss", max_iter=5, folds=5, seed=42)
    assert again["accuracy"] == result["accuracy"]


def model_params(**changes) -> params.Model:
    defaults = dict(hidden=[], activation="relu", optimizer="rmsprop", learning_rate=0.001, dropout=0.0)
    return params.Model(**{**defaults, **changes})


def test_default_network_is_one_softmax_layer():
    from stages.keras_setup import import_keras
    from stages.train import build_model

    keras = import_keras(42)
    net = build_model(keras, model_params())
    dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    assert len(net.layers) == 1 and len(dense) == 1
    assert dense[0].units == 10 and dense[0].activation.__name__ == "softmax"
    assert net.count_params() == 784 * 10 + 10  # a multinomial logistic regression
    assert isinstance(net.optimizer, keras.optimizers.RMSprop)
    assert net.loss == "sparse_categorical_crossentropy"


def test_hidden_layers_dropout_and_optimizer():
    from stages.keras_setup import import_keras
    from stages.train import build_model

    keras = import_keras(42)
    net = build_model(keras, model_params(hidden=[100, 50], dropout=0.2, optimizer="adam", learning_rate=0.01))
    assert [type(layer).__name__ for layer in net.layers] == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [layer.units for layer in net.layers if hasattr(layer, "units")] == [100, 50, 10]
    assert isinstance(net.optimizer, keras.optimizers.Adam)
    assert float(net.optimizer.learning_rate) == pytest.approx(0.01)


def test_training_is_deterministic_and_learns(small):
    from stages.keras_setup import import_keras
    from stages.train import train

    x, y = small
    runs = []
    for _ in range(2):
        keras = import_keras(42)
        net, history = train(keras, model_params(), x[:1600], y[:1600], x[1600:], y[1600:], epochs=2, batch_size=32)
        runs.append((history, net.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    history = runs[0][0]
    assert list(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.6


def test_saved_model_bytes_depend_on_the_model_alone(small, tmp_path):
    import zipfile

    from stages.keras_setup import import_keras
    from stages.train import save_model, train

    x, y = small
    nets = []  # both kept alive, so Keras sees different Python object ids for the same model
    for _ in range(2):
        keras = import_keras(42)
        keras.backend.clear_session()  # layer names restart, as in the stage's fresh process
        nets.append(train(keras, model_params(), x[:1600], y[:1600], x[1600:], y[1600:], epochs=1, batch_size=32)[0])
    paths = [tmp_path / f"{i}.keras" for i in range(2)]
    for net, path in zip(nets, paths):
        save_model(net, path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with zipfile.ZipFile(paths[0]) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "date_saved" not in archive.read("metadata.json").decode()
    # Loads, in safe mode, to the model Keras's own save gives: same config, same predictions.
    nets[0].save(tmp_path / "plain.keras")
    loaded, plain = (keras.saving.load_model(path, safe_mode=True) for path in (paths[0], tmp_path / "plain.keras"))
    assert loaded.get_config() == plain.get_config()
    np.testing.assert_array_equal(loaded.predict(x[:100], verbose=0), nets[0].predict(x[:100], verbose=0))
