"""params.yaml as the stages read it (each mistake's message: reliability/test_params_faults.py)."""

import typing

from scripts.toolkit import REPO
from stages import params
from stages.data import DEBIAN


def test_defaults_reproduce_the_study():
    p = params.load(*params.SCHEMA, path=REPO / "params.yaml")
    assert (p.seed, p.epochs, p.batch_size, p.max_samples) == (42, 5, 32, None)
    assert p.split.test_size == 0.2
    assert (p.sgd.loss, p.sgd.max_iter, p.sgd.folds) == ("log_loss", 5, 5)
    assert (p.model.hidden, p.model.optimizer) == ([], "rmsprop")
    assert p.download.sources[0] == str(DEBIAN)


def test_a_stage_checks_only_its_own_keys_and_log_means_log_loss(tmp_path):
    (tmp_path / "params.yaml").write_text("epochs: 0\nseed: 1\n"
                                          "sgd: {loss: log, max_iter: 5, folds: 5}\n")
    p = params.load("sgd", "seed", path=tmp_path / "params.yaml")
    assert (p.seed, p.sgd.loss, p.sgd.max_iter) == (1, "log_loss", 5)


def test_what_each_key_allows_is_what_its_checks_allow():
    """The messages quote each field's description: it must state the field's bounds and choices."""
    for section in (params.Params, params.Download, params.Split, params.SGD, params.Model):
        for name, field in section.model_fields.items():
            if field.description is None:  # a section: described by its keys
                continue
            bounds = [getattr(c, b) for c in field.metadata
                      for b in ("ge", "gt", "le", "lt", "min_length", "max_length")
                      if hasattr(c, b)]
            choices = [a for a in typing.get_args(field.annotation) if isinstance(a, str)]
            assert bounds or choices, name
            for value in bounds + choices:
                assert str(value) in field.description, (name, value, field.description)
