"""params.yaml as the stages read it; the messages of every mistake are in
tests/reliability/test_params_faults.py (in-process), one stage run as a process is here."""

import subprocess
import sys
import typing
from pathlib import Path

import yaml

from stages import params

REPO = Path(__file__).resolve().parents[1]


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


def test_defaults_reproduce_the_study():
    p = params.load(*params.SCHEMA, path=REPO / "params.yaml")
    assert (p.seed, p.epochs, p.batch_size, p.max_samples) == (42, 5, 32, None)
    assert p.split.test_size == 0.2
    assert (p.sgd.loss, p.sgd.max_iter, p.sgd.folds) == ("log_loss", 5, 5)
    assert p.model.hidden == [] and p.model.optimizer == "rmsprop"
    assert p.download.sources[0] == "/usr/share/datasets/fashion-mnist"


def test_old_log_spelling_means_log_loss(tmp_path):
    assert params.load("sgd", path=write_params(tmp_path, sgd__loss="log")).sgd.loss == "log_loss"


def test_a_stage_checks_only_its_own_keys(tmp_path):
    path = write_params(tmp_path, epochs=0)
    assert params.load("sgd", "seed", path=path).sgd.max_iter == 5


def test_stage_entry_point_prints_one_line_and_writes_nothing(tmp_path):
    """The one run as a process: exactly one line on stderr, exit status 1, no file written."""
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


def test_what_each_key_allows_is_what_its_checks_allow():
    """The messages quote each field's description: it must state the field's bounds and choices."""
    for section in (params.Params, params.Download, params.Split, params.SGD, params.Model):
        for name, field in section.model_fields.items():
            if field.description is None:  # a section: described by its keys
                continue
            bounds = [getattr(c, b) for c in field.metadata
                      for b in ("ge", "gt", "le", "lt", "min_length", "max_length") if hasattr(c, b)]
            choices = [a for a in typing.get_args(field.annotation) if isinstance(a, str)]
            for value in bounds + choices:
                assert str(value) in field.description, (name, value, field.description)
            assert bounds or choices, name
