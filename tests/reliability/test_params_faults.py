"""Parameter faults: a mistyped params.yaml, read by the stage that uses the key.

Each case edits params.yaml and runs the entry point of the stage that reads the key, in this
process (stages.cli.run around its `main`, in the project's directory, as `python -m` runs it):
one line naming the key, the value and what is allowed, exit 1, and not one file written or
changed. test_params.py runs one stage as a process, for what only a process shows.
"""

import importlib

import pytest
import yaml

from scripts.toolkit import REPO, copy_project, dvc, error_line, snapshot

FAULT_CLASS = "params: a mistyped params.yaml"
USER_SEES = (
    "`error: params.yaml: <key> = <value> is not allowed: <why> (allowed: <range or choices>)`, "
    "or the line and column of a YAML error; exit 1; nothing written"
)

DEFAULTS = (REPO / "params.yaml").read_text()
STAGE_OF = {"seed": "split", "max_samples": "prepare", "epochs": "train", "batch_size": "train",
            "download": "download", "split": "split", "sgd": "sgd_cv", "model": "train"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("params") / "project")


def with_value(key: str, value: object) -> str:
    values = yaml.safe_load(DEFAULTS)
    section, _, field = key.partition(".")
    (values[section] if field else values)[field or key] = value
    return yaml.safe_dump(values, sort_keys=False)


def without(key: str) -> str:
    values = yaml.safe_load(DEFAULTS)
    section, _, field = key.partition(".")
    del (values[section] if field else values)[field or key]
    return yaml.safe_dump(values, sort_keys=False)


def refused(project, entry_point, key: str, text: str) -> str:
    """The one error line of the stage reading `key` with params.yaml = `text`; checks nothing changed."""
    main = importlib.import_module(f"stages.{STAGE_OF[key.split('.')[0]]}").main
    (project / "params.yaml").write_text(text)
    before = snapshot(project)
    try:
        line = error_line(*entry_point(main, project))
    finally:
        (project / "params.yaml").write_text(DEFAULTS)
    after = snapshot(project)
    after["params.yaml"] = before["params.yaml"]  # restored by the test itself
    assert after == before, "the stage wrote or changed files"
    return line


# What the message says each key allows, after "(allowed: ".
ALLOWED = {
    "epochs": "an integer from 1 to 1000",
    "seed": "an integer from 0 to 4294967295",
    "batch_size": "an integer from 1 to 60000",
    "max_samples": "null or an integer >= 500",
    "split.test_size": "a number in (0, 1)",
    "download.sources": "a list of at least 1 item, each an http(s) URL or a local directory",
    "download.timeout": "a number in (0, 600]",
    "model.hidden": "a list of up to 8 items, each an integer from 1 to 4096",
    "sgd.folds": "an integer from 2 to 20",
    "sgd.max_iter": "an integer from 1 to 10000",
    "model.learning_rate": "a number in (0, 10]",
    "model.dropout": "a number in [0, 1)",
    "download.retries": "an integer from 1 to 10",
    "sgd.loss": "one of 'log_loss', 'hinge', 'modified_huber', 'squared_hinge', 'perceptron'",
    "model.optimizer": "one of 'rmsprop', 'adam', 'sgd'",
    "model.activation": "one of 'relu', 'tanh', 'sigmoid', 'elu', 'gelu'",
}
# name: (key, value, why): the message is "<key> = <value> is not allowed: <why> (allowed: ...)"
VALUE_CASES = {
    # wrong types
    "epochs-as-string": ("epochs", "5", "Input should be a valid integer"),
    "epochs-as-bool": ("epochs", True, "Input should be a valid integer"),
    "epochs-as-float": ("epochs", 2.5, "Input should be a valid integer"),
    "seed-as-float": ("seed", 1.5, "Input should be a valid integer"),
    "batch_size-as-float": ("batch_size", 32.0, "Input should be a valid integer"),
    "max_samples-as-word": ("max_samples", "all", "Input should be a valid integer"),
    "test_size-as-string": ("split.test_size", "20%", "Input should be a valid number"),
    "sources-as-string": ("download.sources", "http://127.0.0.1/", "Input should be a valid list"),
    "timeout-as-string": ("download.timeout", "30s", "Input should be a valid number"),
    "hidden-as-int": ("model.hidden", 128, "Input should be a valid list"),
    # out of range
    "epochs-zero": ("epochs", 0, "Input should be greater than or equal to 1"),
    "batch_size-negative": ("batch_size", -32, "Input should be greater than or equal to 1"),
    "seed-negative": ("seed", -1, "Input should be greater than or equal to 0"),
    "max_samples-too-few": ("max_samples", 10, "Input should be greater than or equal to 500"),
    "test_size-one": ("split.test_size", 1.0, "Input should be less than 1"),
    "folds-one": ("sgd.folds", 1, "Input should be greater than or equal to 2"),
    "max_iter-zero": ("sgd.max_iter", 0, "Input should be greater than or equal to 1"),
    "learning_rate-zero": ("model.learning_rate", 0.0, "Input should be greater than 0"),
    "dropout-one": ("model.dropout", 1.0, "Input should be less than 1"),
    "hidden-layer-zero": ("model.hidden", [128, 0], "Input should be greater than or equal to 1"),
    "hidden-too-many-layers": ("model.hidden", [8] * 9,
                               "List should have at most 8 items after validation, not 9"),
    "retries-zero": ("download.retries", 0, "Input should be greater than or equal to 1"),
    "timeout-negative": ("download.timeout", -1, "Input should be greater than 0"),
    "sources-empty": ("download.sources", [], "List should have at least 1 item after validation, not 0"),
    # unknown choices
    "loss-unknown": ("sgd.loss", "logistic", "Input should be 'log_loss', 'hinge', 'modified_huber', "
                                             "'squared_hinge' or 'perceptron'"),
    "optimizer-unknown": ("model.optimizer", "adamw", "Input should be 'rmsprop', 'adam' or 'sgd'"),
    "activation-unknown": ("model.activation", "swish",
                           "Input should be 'relu', 'tanh', 'sigmoid', 'elu' or 'gelu'"),
    "source-scheme-unknown": ("download.sources", ["ftp://127.0.0.1/fashion"],
                              "a source must be an http(s) URL or a local directory path"),
}


def named(key: str, value: object) -> tuple[str, str]:
    """How the message names the key and shows the value: a list item by its index (model.hidden.1)."""
    if isinstance(value, list) and value and len(value) <= 8:
        bad = next(i for i, v in enumerate(value) if v == 0 or isinstance(v, str))
        return f"{key}.{bad}", repr(value[bad])
    return key, repr(value)


@pytest.mark.parametrize("case", VALUE_CASES)
def test_a_bad_value_is_named_with_what_is_allowed(case, project, entry_point):
    key, value, why = VALUE_CASES[case]
    line = refused(project, entry_point, key, with_value(key, value))
    name, shown = named(key, value)
    assert line == f"error: params.yaml: {name} = {shown} is not allowed: {why} (allowed: {ALLOWED[key]})"


@pytest.mark.parametrize("key, allowed", [
    ("epochs", "an integer from 1 to 1000"), ("seed", "an integer from 0 to 4294967295"),
    ("sgd.folds", "an integer from 2 to 20"),
    ("model.optimizer", "one of 'rmsprop', 'adam', 'sgd'"),
])
def test_a_missing_key_is_named(key, allowed, project, entry_point):
    line = refused(project, entry_point, key, without(key))
    assert line == f"error: params.yaml: {key} is missing (allowed: {allowed})"


def test_a_missing_section_is_named(project, entry_point):
    line = refused(project, entry_point, "download", without("download"))
    assert line.startswith("error: params.yaml: download is missing"), line


def test_an_unknown_key_is_named(project, entry_point):
    text = DEFAULTS.replace("  dropout: 0.0", "  dropout: 0.0\n  dropuot: 0.5")  # a typo of dropout
    assert text != DEFAULTS
    line = refused(project, entry_point, "model", text)
    assert line == "error: params.yaml: unknown key model.dropuot"


SYNTAX_CASES = {
    "unclosed-bracket": ("model", DEFAULTS.replace("hidden: []", "hidden: [64, 32"), 26),
    "tab-indent": ("sgd", DEFAULTS.replace("  loss: log_loss", "\tloss: log_loss"), 20),
    "bad-indent": ("epochs", DEFAULTS.replace("epochs: 5", "epochs: 5\n  batch: 3"), 5),
}


@pytest.mark.parametrize("case", list(SYNTAX_CASES))
def test_a_yaml_syntax_error_gives_its_line(case, project, entry_point):
    key, text, line_number = SYNTAX_CASES[case]
    assert text != DEFAULTS
    line = refused(project, entry_point, key, text)
    assert line.startswith(f"error: params.yaml: YAML syntax error at line {line_number}, column "), line


@pytest.mark.parametrize("text", ["", "- epochs\n- 5\n", "just a sentence\n"],
                         ids=["empty-file", "a-list", "a-scalar"])
def test_params_that_are_not_a_mapping_are_refused(text, project, entry_point):
    line = refused(project, entry_point, "epochs", text)
    assert line.startswith("error: params.yaml: expected a mapping of keys to values, got "), line


def test_a_missing_params_file_is_named(project, entry_point):
    from stages.train import main

    (project / "params.yaml").unlink()
    try:
        line = error_line(*entry_point(main, project))
    finally:
        (project / "params.yaml").write_text(DEFAULTS)
    assert line == "error: cannot read params.yaml: No such file or directory"


DUPLICATED = DEFAULTS.replace("epochs: 5", "epochs: 5\nepochs: 50")


def test_a_duplicated_key_is_refused_by_the_stage(project, entry_point):
    """Run without DVC, a stage refuses it too (yaml.safe_load alone would keep the last)."""
    assert DUPLICATED != DEFAULTS
    line = refused(project, entry_point, "epochs", DUPLICATED)
    assert "key 'epochs' is given twice (first at line " in line, line


def test_under_dvc_the_stage_fails_and_nothing_is_recorded(tmp_path):
    """`dvc repro` shows the stage's one line and records nothing in dvc.lock."""
    project = copy_project(tmp_path / "project", {"download.retries": 0})
    result = dvc(project, "repro", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "error: params.yaml: download.retries = 0 is not allowed" in output, output[-2000:]
    assert "Traceback" not in output
    assert not (project / "dvc.lock").exists() and not (project / "data/raw").exists()


def test_a_duplicated_key_is_refused_by_dvc(tmp_path):
    """DVC reads params.yaml itself and refuses a key given twice, before running anything."""
    project = copy_project(tmp_path / "project")
    (project / "params.yaml").write_text(DUPLICATED)
    result = dvc(project, "repro", check=False)
    assert result.returncode != 0
    assert "YAML file structure is corrupted" in result.stdout + result.stderr
    assert not (project / "dvc.lock").exists() and not (project / "data").exists()
