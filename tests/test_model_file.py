"""stages/keras_model.py: the same training gives the same .keras bytes, a file Keras loads safely."""

import zipfile

import numpy as np

from stages.keras_model import import_keras, save_model
from stages.train import train


def test_two_models_trained_alike_save_to_identical_bytes_that_load_safely(small, tmp_path, model_params):
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
    paths = [tmp_path / "0.keras", tmp_path / "1.keras", tmp_path / "plain.keras"]
    for (trained, _), path in zip(runs, paths, strict=False):
        save_model(trained, path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with zipfile.ZipFile(paths[0]) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "date_saved" not in archive.read("metadata.json").decode()
    # Loads, in safe mode, to the model Keras's own save gives: same config, same predictions.
    net.save(paths[2])
    loaded, plain = (keras.saving.load_model(path, safe_mode=True) for path in (paths[0], paths[2]))
    assert loaded.get_config() == plain.get_config()
    np.testing.assert_array_equal(loaded.predict(x[:100], verbose=0), net.predict(x[:100], verbose=0))
