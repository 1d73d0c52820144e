"""Safety: code planted in an input (a YAML tag in params.yaml, a pickle in a .npy, a Lambda layer in the
.keras model) would leave a marker file if it ran: the input is refused and the marker never appears. That
the code calls no unsafe loader at all is ruff's job (pyproject.toml, tests/test_lint.py)."""

from pathlib import Path

import numpy as np
import pytest

from scripts.toolkit import REPO, error_line
from stages.cli import UserError
from stages.data import load_npy

FAULT_CLASS = "safety: code planted in an input"
USER_SEES = ("a refusal: `error: params.yaml: YAML syntax error ...`, NumPy's `allow_pickle=False`, "
             "`error: cannot load data/model.keras: ... safe_mode ...`; the code never runs")


def test_params_yaml_python_tags_are_not_executed(tmp_path, entry_point):
    from stages.train import main

    marker = tmp_path / "pwned"
    text = (REPO / "params.yaml").read_text()
    text = text.replace("epochs: 5", f"epochs: !!python/object/apply:os.system ['touch {marker}']")
    (tmp_path / "params.yaml").write_text(text)
    line = error_line(*entry_point(main, tmp_path))
    assert line.startswith("error: params.yaml: YAML syntax error") and "python/object/apply" in line, line
    assert not marker.exists()


class Plant:  # unpickling it creates `path`
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_pickled_npy_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "x_train.npy", np.array([Plant(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="allow_pickle=False|Python objects"):
        load_npy(tmp_path / "x_train.npy")
    assert not marker.exists()


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
    assert line.startswith("error: cannot load data/model.keras: "), line
    assert "Lambda" in line and "safe mode" in line, line
    assert not Path(marker).exists()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["data", "data/model.keras"]
