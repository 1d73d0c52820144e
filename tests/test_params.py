import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages import params
from stages.cli import UserError

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text())


def write_params(tmp_path: Path, **changes) -> Path:
    values = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            values[section][field] = value
        else:
            values[section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def error_of(path: Path, *keys: str) -> str:
    with pytest.raises(UserError) as caught:
        params.load(*keys, path=path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_reproduce_the_study():
    p = params.load(*params.SCHEMA, path=REPO / "params.yaml")
    assert (p.seed, p.epochs, p.batch_size, p.max_samples) == (42, 5, 32, None)
    assert p.split.test_size == 0.2
    assert (p.sgd.loss, p.sgd.max_iter, p.sgd.folds) == ("log_loss", 5, 5)
    assert p.model.hidden == [] and p.model.optimizer == "rmsprop"
    assert p.download.sources[0] == "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize(
    "changes, keys, expected",
    [
        ({"epochs": 0}, ["epochs"], "params.yaml: epochs = 0 is not allowed: Input should be greater than or equal to 1 (allowed: an integer from 1 to 1000)"),
        ({"epochs": "abc"}, ["epochs"], "epochs = 'abc' is not allowed: Input should be a valid integer (allowed: an integer from 1 to 1000)"),
        ({"epochs": 2.5}, ["epochs"], "epochs = 2.5 is not allowed"),
        ({"epochs": True}, ["epochs"], "epochs = True is not allowed"),
        ({"split__test_size": 1.5}, ["split"], "split.test_size = 1.5 is not allowed: Input should be less than 1 (allowed: a fraction in (0, 1))"),
        ({"sgd__loss": "squared_loss"}, ["sgd"], "sgd.loss = 'squared_loss' is not allowed: Input should be 'log_loss', 'hinge', 'modified_huber', 'squared_hinge' or 'perceptron'"),
        ({"sgd__folds": 1}, ["sgd"], "sgd.folds = 1 is not allowed"),
        ({"model__optimizer": "adagrad"}, ["model"], "model.optimizer = 'adagrad' is not allowed: Input should be 'rmsprop', 'adam' or 'sgd'"),
        ({"model__hidden": [100, 0]}, ["model"], "model.hidden.1 = 0 is not allowed: Input should be greater than or equal to 1"),
        ({"model__hidden": 100}, ["model"], "model.hidden = 100 is not allowed: Input should be a valid list"),
        ({"model__dropout": 1.0}, ["model"], "model.dropout = 1.0 is not allowed"),
        ({"max_samples": 10}, ["max_samples"], "max_samples = 10 is not allowed: Input should be greater than or equal to 500 (allowed: null (all samples) or an integer >= 500)"),
        ({"download__sources": ["ftp://example.org/data"]}, ["download"], "download.sources.0 = 'ftp://example.org/data' is not allowed: a source must be an http(s) URL or a local directory path"),
        ({"download__sources": []}, ["download"], "download.sources = [] is not allowed"),
        ({"download__timeout": -1}, ["download"], "download.timeout = -1 is not allowed"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(tmp_path, changes, keys, expected):
    assert expected in error_of(write_params(tmp_path, **changes), *keys)


def test_old_log_spelling_means_log_loss(tmp_path):
    assert params.load("sgd", path=write_params(tmp_path, sgd__loss="log")).sgd.loss == "log_loss"


def test_missing_and_unknown_keys(tmp_path):
    values = dict(DEFAULTS)
    del values["epochs"]
    values["sgd"] = {**values["sgd"], "alpha": 0.1}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    assert error_of(path, "epochs").endswith("epochs is missing (allowed: an integer from 1 to 1000)")
    assert error_of(path, "sgd").endswith("unknown key sgd.alpha")


def test_a_stage_checks_only_its_own_keys(tmp_path):
    path = write_params(tmp_path, epochs=0)
    assert params.load("sgd", "seed", path=path).sgd.max_iter == 5


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("epochs: 5\nsgd: [unclosed\n")
    assert "YAML syntax error at line 3" in error_of(path, "epochs")


def test_yaml_is_parsed_safely(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("epochs: !!python/object/apply:os.system ['touch pwned']\n")
    assert "YAML syntax error" in error_of(path, "epochs")
    assert not (tmp_path / "pwned").exists()


def test_stage_entry_point_prints_one_line_and_writes_nothing(tmp_path):
    write_params(tmp_path, epochs="abc")
    result = subprocess.run(
        [sys.executable, "-m", "stages.train"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: params.yaml: epochs = 'abc' is not allowed: Input should be a valid integer "
        "(allowed: an integer from 1 to 1000)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
