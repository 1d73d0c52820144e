"""The study's two models on a small slice of the real data; the .keras file train writes."""

import io
import zipfile

import numpy as np
import pytest

from scripts.toolkit import REPO, default_params, error_line, run
from stages import params
from stages.keras_model import import_keras, save_model
from stages.train import build_model, train


def model_params(**changes) -> params.Model:
    """The study's network (params.yaml's `model`), `changes` applied."""
    study = default_params()["model"]
    return params.Model(**{**study, **changes})


def test_sgd_cross_validation_reports_each_fold(small, capsys):
    from stages.sgd_cv import cross_validate_sgd  # scikit-learn: imported here, not at collection

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
def test_the_network_params_build(changes, layers, units, optimizer, parameters):
    keras = import_keras(42)
    net = build_model(keras, model_params(**changes))
    assert [type(layer).__name__ for layer in net.layers] == layers
    assert [layer.units for layer in net.layers if hasattr(layer, "units")] == units
    assert net.layers[-1].activation.__name__ == "softmax"
    assert net.loss == "sparse_categorical_crossentropy"
    assert isinstance(net.optimizer, getattr(keras.optimizers, optimizer))
    assert float(net.optimizer.learning_rate) == pytest.approx(changes.get("learning_rate", 0.001))
    assert net.count_params() == parameters


def test_two_models_trained_alike_save_to_identical_bytes_that_load_safely(small, tmp_path):
    x, y = small
    runs = []  # both nets kept alive, so Keras sees different Python object ids for the same model
    for _ in range(2):
        keras = import_keras(42)
        keras.backend.clear_session()  # layer names restart, as in the stage's fresh process
        runs.append(train(keras, model_params(), x[:1600], y[:1600], x[1600:], y[1600:], epochs=2,
                          batch_size=32))
    (net, history), (_, other_history) = runs
    assert history == other_history  # deterministic training
    assert list(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.6  # it learns
    for i, (trained, _) in enumerate(runs):
        save_model(trained, tmp_path / f"{i}.keras")
    assert (tmp_path / "0.keras").read_bytes() == (tmp_path / "1.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "0.keras") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "date_saved" not in archive.read("metadata.json").decode()
    # Loads, in safe mode, to the model Keras's own save gives: same config, same predictions.
    net.save(tmp_path / "plain.keras")
    loaded, plain = (keras.saving.load_model(tmp_path / f"{name}.keras", safe_mode=True)
                     for name in ("0", "plain"))
    assert loaded.get_config() == plain.get_config()
    np.testing.assert_array_equal(loaded.predict(x[:100], verbose=0),
                                  net.predict(x[:100], verbose=0))


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    """A .keras file as train writes it: the study's network, untrained."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(build_model(import_keras(42), model_params()), path)
    return path.read_bytes()


def flip_a_weight_byte(model: bytes) -> bytes:
    """`model` with one byte inverted inside model.weights.h5 (stored, not compressed)."""
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        weights = archive.getinfo("model.weights.h5")
    # A local entry: a 30-byte header, the name, an extra field (none here), then the data.
    at = weights.header_offset + 30 + len(weights.filename) + weights.file_size // 2
    return model[:at] + bytes([model[at] ^ 0xFF]) + model[at + 1:]


def without_config(model: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model)) as archive, zipfile.ZipFile(out, "w") as copy:
        for info in archive.infolist():
            if info.filename != "config.json":
                copy.writestr(info, archive.read(info))
    return out.getvalue()


# A model file's fault: how it is made from a good one, and the cause the error line gives.
# The fifth, a model carrying code: tests/reliability/test_safety.py.
FAULTS = {
    "truncated": (lambda model: model[: len(model) // 2], "truncated (its zip archive has no end)"),
    "bad-crc": (flip_a_weight_byte,
                "model.weights.h5 in it fails its CRC-32 check: the file is corrupt"),
    "not-a-zip": (lambda model: b"<html>Not Found</html>\n", "not a zip archive"),
    "no-config": (without_config, "no config.json in its zip archive: not a Keras model"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_broken_model_file_is_one_line_naming_its_fault(fault, model_bytes, tmp_path,
                                                          entry_point):
    from stages.evaluate import main as evaluate

    break_it, cause = FAULTS[fault]
    (tmp_path / "data").mkdir()
    (tmp_path / "data/model.keras").write_bytes(break_it(model_bytes))
    line = error_line(*entry_point(evaluate, tmp_path))
    assert line == f"error: cannot load data/model.keras: {cause}; `dvc repro train` makes it again"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["model.keras"]


def test_evaluate_run_on_a_corrupted_model_prints_one_line(model_bytes, tmp_path):
    """`python -m stages.evaluate` as a user runs it: no traceback."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/model.keras").write_bytes(flip_a_weight_byte(model_bytes))
    result = run(tmp_path, "python", "-m", "stages.evaluate", env={"PYTHONPATH": str(REPO)})
    line = error_line(result.returncode, result.stderr.splitlines())
    assert "model.weights.h5 in it fails its CRC-32 check" in line, line
