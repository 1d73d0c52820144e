"""Safety: code planted in an input would leave a marker file if it ran; it is refused, never run.

The inputs: a YAML tag in params.yaml, a pickle in a .npy, a Lambda layer in the .keras model. That
no unsafe loader is called at all is ruff's job (pyproject.toml, tests/test_lint.py)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from scripts.toolkit import REPO, error_line

FAULT_CLASS = "safety: code planted in an input"
USER_SEES = ("a refusal: `error: params.yaml: YAML syntax error ...`, "
             "`error: <file>.npy: not a readable .npy array (...)` (predict) or "
             "`error: cannot read <file>.npy: not a NumPy array file (...)` (a stage), "
             "`error: cannot load data/model.keras: Keras cannot load it in safe mode, which runs "
             "no code from a file (... Lambda ...)`; the code never runs")


def test_params_yaml_python_tags_are_not_executed(tmp_path, entry_point):
    from stages.train import main

    marker = tmp_path / "pwned"
    text = (REPO / "params.yaml").read_text()
    text = text.replace("epochs: 5", f"epochs: !!python/object/apply:os.system ['touch {marker}']")
    (tmp_path / "params.yaml").write_text(text)
    line = error_line(*entry_point(main, tmp_path))
    assert line.startswith("error: params.yaml: YAML syntax error"), line
    assert "python/object/apply" in line, line
    assert not marker.exists()


class Plant:  # unpickling it creates `path`
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


@pytest.mark.parametrize("reader", ["predict", "stage"])
def test_a_pickled_npy_is_refused_unread(reader, tmp_path, entry_point):
    """predict loads a .npy whole, so allow_pickle=False alone refuses it; a stage memory-maps it,
    which refuses object arrays before NumPy looks at allow_pickle."""
    import predict
    from stages.split import main as split

    marker = tmp_path / "pwned"
    npy = Path("data/prepared/y_train.npy")  # split's input, read by load_npy
    (tmp_path / npy.parent).mkdir(parents=True)
    np.save(tmp_path / npy, np.array([Plant(marker)], dtype=object), allow_pickle=True)
    shutil.copy(REPO / "params.yaml", tmp_path)
    line = error_line(*entry_point(lambda: predict.main([str(npy)]) if reader == "predict"
                                   else split(), tmp_path))
    refusal = (f"error: {npy}: not a readable .npy array (" if reader == "predict"
               else f"error: cannot read {npy}: not a NumPy array file (")
    assert not marker.exists()
    assert line.startswith(refusal), line


def test_a_model_with_code_is_refused_by_keras_safe_mode(tmp_path, entry_point):
    """A Lambda layer carries Python bytecode; the evaluate stage must refuse it, not run it."""
    from stages.evaluate import main
    from stages.keras_model import import_keras

    keras = import_keras()
    marker = str(tmp_path / "pwned")
    net = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Lambda(lambda x: (__import__("pathlib").Path(marker).touch(), x)[1]),
        keras.layers.Dense(10, activation="softmax"),
    ])
    (tmp_path / "data").mkdir()
    net.save(tmp_path / "data/model.keras")
    Path(marker).unlink(missing_ok=True)  # building it ran the lambda once; loading must not
    line = error_line(*entry_point(main, tmp_path))
    assert line.startswith("error: cannot load data/model.keras: Keras cannot load it in safe "
                           "mode, which runs no code from a file ("), line
    assert "Lambda" in line and line.endswith("; `dvc repro train` makes it again"), line
    assert not Path(marker).exists()
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["data", "data/model.keras"]
