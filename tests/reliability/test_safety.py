"""Safety: nothing from params.yaml, a download or a model file gets to run code.

Each case plants code that would leave a marker file if it ran: a YAML tag in params.yaml, a
pickle in a .npy, a Lambda layer in the .keras model, a pickle served as a dataset file. The
marker must never appear and the input must be refused.
"""

import ast
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, error_line

from stages.download import download
from stages.files import load_npy

FAULT_CLASS = "safety: code planted in an input"
USER_SEES = (
    "a refusal: `error: params.yaml: YAML syntax error ...`, a rejected source, NumPy's "
    "`allow_pickle=False`, `error: cannot load data/model.keras: ... safe_mode ...`; the code "
    "never runs"
)


class Plant:
    """Unpickling this creates `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_params_yaml_python_tags_are_not_executed(tmp_path, entry_point):
    from stages.train import main

    marker = tmp_path / "pwned"
    text = (REPO / "params.yaml").read_text()
    text = text.replace("epochs: 5", f"epochs: !!python/object/apply:os.system ['touch {marker}']")
    (tmp_path / "params.yaml").write_text(text)
    line = error_line(*entry_point(main, tmp_path))
    assert line.startswith("error: params.yaml: YAML syntax error"), line
    assert "python/object/apply" in line
    assert not marker.exists()


# ftp:// is a case of test_params_faults.py (source-scheme-unknown).
@pytest.mark.parametrize("source", ["file:///usr/share/datasets/fashion-mnist", "javascript://x",
                                    "s3://bucket/fashion"])
def test_a_source_neither_url_nor_path_is_rejected_by_params(source, tmp_path, entry_point):
    import yaml

    from stages.download import main

    values = yaml.safe_load((REPO / "params.yaml").read_text())
    values["download"]["sources"] = [source]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    line = error_line(*entry_point(main, tmp_path))
    assert line.startswith(f"error: params.yaml: download.sources.0 = {source!r} is not allowed"), line
    assert "http(s) URL or a local directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_pickled_npy_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "x_train.npy"
    np.save(path, np.array([Plant(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False|Python objects"):
        load_npy(path)
    assert not marker.exists()


def test_a_pickle_served_as_a_dataset_file_is_rejected_unread(tmp_path, fault_server):
    marker = tmp_path / "pwned"
    body = gzip.compress(pickle.dumps(Plant(marker)))
    mirror = fault_server(lambda h, name: h.send(200, body))
    with pytest.raises(Exception, match="sha256"):
        download([mirror.url], tmp_path / "raw", retries=1, timeout=5)
    assert not marker.exists() and not (tmp_path / "raw").exists()


def test_a_model_with_code_is_refused_by_keras_safe_mode(tmp_path, entry_point):
    """A Lambda layer carries Python bytecode; the evaluate stage must refuse it, not run it."""
    from stages.evaluate import main
    from stages.keras_setup import import_keras

    keras = import_keras()
    marker = tmp_path / "pwned"
    path = str(marker)
    net = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Lambda(lambda x: (__import__("pathlib").Path(path).touch(), x)[1]),
        keras.layers.Dense(10, activation="softmax"),
    ])
    (tmp_path / "data").mkdir()
    net.save(tmp_path / "data/model.keras")
    marker.unlink(missing_ok=True)  # building it ran the lambda once; loading must not
    line = error_line(*entry_point(main, tmp_path))
    assert line.startswith("error: cannot load data/model.keras: "), line
    assert "Lambda" in line and "safe mode" in line, line
    assert not marker.exists()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["data", "data/model.keras"]


UNSAFE_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("joblib", "load"), ("torch", "load"),
    ("yaml", "unsafe_load"), ("yaml", "full_load"), ("dill", "load"),
    ("marshal", "loads"), ("shelve", "open"),
}


def calls(tree):
    """(owner, name, node) of every call: `pickle.load(...)` is ("pickle", "load"), a bare
    `eval(...)` is ("", "eval"). A bare call of a function the module defines is left out: its
    body's calls are checked where it is defined."""
    defined = {node.name for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            yield name, node.func.attr, node
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in defined:
            yield "", node.func.id, node


def test_no_stage_unpickles_or_loads_unsafely():
    """No pickle/joblib; yaml.load only with a SafeLoader; np.load never with allow_pickle;
    load_model only in safe mode. One case: a check of every file of stages/."""
    for path in sorted((REPO / "stages").glob("*.py")):
        check_loads(path)


def check_loads(path: Path) -> None:
    import importlib

    import yaml

    tree = ast.parse(path.read_text())
    module = importlib.import_module(f"stages.{path.stem}" if path.stem != "__init__" else "stages")
    for owner, name, node in calls(tree):
        assert (owner, name) not in UNSAFE_CALLS, f"{path.name}:{node.lineno}: {owner}.{name}"
        keywords = {k.arg: k.value for k in node.keywords}
        if (owner, name) == ("yaml", "load"):
            loader = keywords.get("Loader")
            assert isinstance(loader, ast.Name), f"{path.name}:{node.lineno}: yaml.load without Loader"
            assert issubclass(getattr(module, loader.id), yaml.SafeLoader), \
                f"{path.name}:{node.lineno}: yaml.load(Loader={loader.id}), not a SafeLoader"
        if name == "load" and owner in ("np", "numpy"):
            flag = keywords.get("allow_pickle")
            assert flag is None or (isinstance(flag, ast.Constant) and flag.value is False), \
                f"{path.name}:{node.lineno}: np.load(allow_pickle=...)"
        if name == "load_model":
            flag = keywords.get("safe_mode")
            assert isinstance(flag, ast.Constant) and flag.value is True, \
                f"{path.name}:{node.lineno}: load_model without safe_mode=True"
        if name == "eval" or name == "exec":
            raise AssertionError(f"{path.name}:{node.lineno}: {name}")
