"""Parameter faults: a mistyped params.yaml, read by the stage that uses the key.

Each case edits params.yaml of a fresh project and runs that stage: one line naming the key,
the value and what is allowed, exit 1, no traceback, and not one file written or changed.
"""

import pytest
import yaml
from conftest import REPO, dvc, make_project

from .conftest import one_error_line, snapshot, stage

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
    return make_project(tmp_path_factory.mktemp("params") / "project")


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


# name: (key, value) — the value is set in params.yaml; the message must name both and the rule
VALUE_CASES = {
    # wrong types
    "epochs-as-string": ("epochs", "5", "an integer from 1 to 1000"),
    "epochs-as-bool": ("epochs", True, "an integer from 1 to 1000"),
    "seed-as-float": ("seed", 1.5, "an integer from 0 to 2**32-1"),
    "batch_size-as-float": ("batch_size", 32.0, "an integer from 1 to 60000"),
    "max_samples-as-word": ("max_samples", "all", "null (all samples) or an integer >= 500"),
    "test_size-as-string": ("split.test_size", "20%", "a fraction in (0, 1)"),
    "sources-as-string": ("download.sources", "http://127.0.0.1/", "a list of http(s) URLs"),
    "timeout-as-string": ("download.timeout", "30s", "seconds, a number in (0, 600]"),
    "hidden-as-int": ("model.hidden", 128, "a list of up to 8 layer sizes"),
    # out of range
    "epochs-zero": ("epochs", 0, "an integer from 1 to 1000"),
    "batch_size-negative": ("batch_size", -32, "an integer from 1 to 60000"),
    "seed-negative": ("seed", -1, "an integer from 0 to 2**32-1"),
    "max_samples-too-few": ("max_samples", 10, "an integer >= 500"),
    "test_size-one": ("split.test_size", 1.0, "a fraction in (0, 1)"),
    "folds-one": ("sgd.folds", 1, "an integer from 2 to 20"),
    "max_iter-zero": ("sgd.max_iter", 0, "an integer from 1 to 10000"),
    "learning_rate-zero": ("model.learning_rate", 0.0, "a number in (0, 10]"),
    "dropout-one": ("model.dropout", 1.0, "a fraction in [0, 1)"),
    "hidden-layer-zero": ("model.hidden", [128, 0], "layer sizes from 1 to 4096"),
    "retries-zero": ("download.retries", 0, "an integer from 1 to 10"),
    "timeout-negative": ("download.timeout", -1, "a number in (0, 600]"),
    "sources-empty": ("download.sources", [], "a list of http(s) URLs or directories"),
    # unknown choices
    "loss-unknown": ("sgd.loss", "logistic", "'log_loss', 'hinge'"),
    "optimizer-unknown": ("model.optimizer", "adamw", "'rmsprop', 'adam' or 'sgd'"),
    "activation-unknown": ("model.activation", "swish", "'relu', 'tanh'"),
    "source-scheme-unknown": ("download.sources", ["ftp://127.0.0.1/fashion"],
                              "an http(s) URL or a local directory path"),
}


def key_in_message(key, value):
    # A list item is named by its index: model.hidden.1, download.sources.0.
    if isinstance(value, list) and value:
        bad = next(i for i, v in enumerate(value) if v in (0,) or isinstance(v, str))
        return f"{key}.{bad}", repr(value[bad])
    return key, repr(value)


def check_refused(project, name, text):
    (project / "params.yaml").write_text(text)
    before = snapshot(project)
    try:
        line = one_error_line(stage(project, STAGE_OF[name.split(".")[0]]))
    finally:
        (project / "params.yaml").write_text(DEFAULTS)
    after = snapshot(project)
    after["params.yaml"] = before["params.yaml"]  # restored by the test itself
    assert after == before, "the stage wrote or changed files"
    return line


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_a_bad_value_is_named_with_what_is_allowed(case, project):
    key, value, allowed = VALUE_CASES[case]
    line = check_refused(project, key, with_value(key, value))
    named, shown = key_in_message(key, value)
    assert line.startswith(f"error: params.yaml: {named} = {shown} is not allowed: "), line
    assert allowed in line, line


@pytest.mark.parametrize("key", ["epochs", "seed", "sgd.folds", "model.optimizer", "download"])
def test_a_missing_key_is_named(key, project):
    line = check_refused(project, key, without(key))
    assert line.startswith(f"error: params.yaml: {key} is missing"), line


def test_an_unknown_key_is_named(project):
    text = DEFAULTS.replace("  dropout: 0.0", "  dropuot: 0.5")  # a typo of dropout
    assert text != DEFAULTS
    line = check_refused(project, "model", text)
    assert line.startswith("error: params.yaml: model.dropout is missing") or \
        line.startswith("error: params.yaml: unknown key model.dropuot"), line


SYNTAX_CASES = {
    "unclosed-bracket": ("model", DEFAULTS.replace("hidden: []", "hidden: [64, 32"), "line"),
    "tab-indent": ("sgd", DEFAULTS.replace("  loss: log_loss", "\tloss: log_loss"), "line"),
    "bad-indent": ("epochs", DEFAULTS.replace("epochs: 5", "epochs: 5\n  batch: 3"), "line"),
}


@pytest.mark.parametrize("case", list(SYNTAX_CASES))
def test_a_yaml_syntax_error_gives_its_line(case, project):
    key, text, _ = SYNTAX_CASES[case]
    assert text != DEFAULTS
    line = check_refused(project, key, text)
    assert line.startswith("error: params.yaml: YAML syntax error at line "), line


@pytest.mark.parametrize("text", ["", "- epochs\n- 5\n", "just a sentence\n"],
                         ids=["empty-file", "a-list", "a-scalar"])
def test_params_that_are_not_a_mapping_are_refused(text, project):
    line = check_refused(project, "epochs", text)
    assert line.startswith("error: params.yaml: expected a mapping of keys to values, got "), line


def test_a_missing_params_file_is_named(project):
    (project / "params.yaml").unlink()
    try:
        line = one_error_line(stage(project, "train"))
    finally:
        (project / "params.yaml").write_text(DEFAULTS)
    assert line == "error: cannot read params.yaml: No such file or directory"


def test_under_dvc_the_stage_fails_and_nothing_is_recorded(tmp_path):
    """`dvc repro` shows the stage's one line and records nothing in dvc.lock."""
    project = make_project(tmp_path / "project", **{"download.retries": 0})
    result = dvc(project, "repro", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "error: params.yaml: download.retries = 0 is not allowed" in output, output[-2000:]
    assert "Traceback" not in output
    assert not (project / "dvc.lock").exists() and not (project / "data/raw").exists()


DUPLICATED = DEFAULTS.replace("epochs: 5", "epochs: 5\nepochs: 50")


def test_a_duplicated_key_is_refused_by_dvc(tmp_path):
    """DVC reads params.yaml itself and refuses a key given twice, before running anything."""
    project = make_project(tmp_path / "project")
    (project / "params.yaml").write_text(DUPLICATED)
    result = dvc(project, "repro", check=False)
    assert result.returncode != 0
    assert "YAML file structure is corrupted" in result.stdout + result.stderr
    assert not (project / "dvc.lock").exists() and not (project / "data").exists()


def test_a_duplicated_key_is_refused_by_the_stage(project):
    """Run without DVC, a stage refuses it too (yaml.safe_load alone would keep the last)."""
    assert DUPLICATED != DEFAULTS
    line = check_refused(project, "epochs", DUPLICATED)
    assert "key 'epochs' is given twice (first at line " in line, line
