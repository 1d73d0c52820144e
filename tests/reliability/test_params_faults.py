"""Parameter faults: a mistyped params.yaml, read by the entry point of the stage that uses the key (in
this process, stages.exits.run around its `main` as `python -m` runs it), or by `dvc repro`."""

import importlib

import pytest
import yaml

from scripts.toolkit import REPO, copy_project, dvc, error_line, snapshot

FAULT_CLASS = "params: a mistyped params.yaml"
USER_SEES = ("`error: params.yaml: <key> = <value> is not allowed: <why> (allowed: <range or choices>)`, "
             "or the line and column of a YAML error; exit 1; nothing written")
DEFAULTS = (REPO / "params.yaml").read_text()
STAGE_OF = {"seed": "split", "max_samples": "prepare", "epochs": "train", "batch_size": "train",
            "download": "download", "split": "split", "sgd": "sgd_cv", "model": "train"}
INTEGER, NUMBER, LIST = (f"Input should be a valid {kind}" for kind in ("integer", "number", "list"))
AT_LEAST = "Input should be greater than or equal to "
# key: (what the message says it allows, [(a bad value, why it is refused[, how a list's item is named])])
BAD = {
    "epochs": ("an integer from 1 to 1000",
               [("5", INTEGER), (True, INTEGER), (2.5, INTEGER), (0, f"{AT_LEAST}1")]),
    "seed": ("an integer from 0 to 4294967295", [(1.5, INTEGER), (-1, f"{AT_LEAST}0")]),
    "batch_size": ("an integer from 1 to 60000", [(32.0, INTEGER), (-32, f"{AT_LEAST}1")]),
    "max_samples": ("null or an integer >= 500", [("all", INTEGER), (10, f"{AT_LEAST}500")]),
    "split.test_size": ("a number in (0, 1)", [("20%", NUMBER), (1.0, "Input should be less than 1")]),
    "download.sources": ("a list of at least 1 item, each an http(s) URL or a local directory", [
        ("http://127.0.0.1/", LIST), ([], "List should have at least 1 item after validation, not 0"),
        (["ftp://127.0.0.1/fashion"], "a source must be an http(s) URL or a local directory path",
         "download.sources.0 = 'ftp://127.0.0.1/fashion'")]),
    "download.timeout": ("a number in (0, 600]", [("30s", NUMBER), (-1, "Input should be greater than 0")]),
    "download.retries": ("an integer from 1 to 10", [(0, f"{AT_LEAST}1")]),
    "model.hidden": ("a list of up to 8 items, each an integer from 1 to 4096", [
        (128, LIST), ([128, 0], f"{AT_LEAST}1", "model.hidden.1 = 0"),
        ([8] * 9, "List should have at most 8 items after validation, not 9")]),
    "sgd.folds": ("an integer from 2 to 20", [(1, f"{AT_LEAST}2")]),
    "sgd.max_iter": ("an integer from 1 to 10000", [(0, f"{AT_LEAST}1")]),
    "model.learning_rate": ("a number in (0, 10]", [(0.0, "Input should be greater than 0")]),
    "model.dropout": ("a number in [0, 1)", [(1.0, "Input should be less than 1")]),
    "sgd.loss": ("one of 'log_loss', 'hinge', 'modified_huber', 'squared_hinge', 'perceptron'", [("logistic",
                 "Input should be 'log_loss', 'hinge', 'modified_huber', 'squared_hinge' or 'perceptron'")]),
    "model.optimizer": ("one of 'rmsprop', 'adam', 'sgd'",
                        [("adamw", "Input should be 'rmsprop', 'adam' or 'sgd'")]),
    "model.activation": ("one of 'relu', 'tanh', 'sigmoid', 'elu', 'gelu'",
                         [("swish", "Input should be 'relu', 'tanh', 'sigmoid', 'elu' or 'gelu'")]),
}


def edited(key: str, *value: object) -> str:
    """params.yaml's defaults with `key` set to `value`, or without `key` when no value is given."""
    params = yaml.safe_load(DEFAULTS)
    *section, name = key.split(".")
    parent = params[section[0]] if section else params
    if value:
        parent[name] = value[0]
    else:
        del parent[name]
    return yaml.safe_dump(params, sort_keys=False)


def not_allowed(key: str, value: object, why: str, named: str = "") -> str:
    """The line refusing `key` = `value` (`named`: a list's bad item, as the message names it)."""
    allowed = BAD[key][0]
    return f"error: params.yaml: {named or f'{key} = {value!r}'} is not allowed: {why} (allowed: {allowed})"


NOT_A_MAPPING = "error: params.yaml: expected a mapping of keys to values, got "
SYNTAX_ERROR = "error: params.yaml: YAML syntax error at line "
DUPLICATED = DEFAULTS.replace("epochs: 5", "epochs: 5\nepochs: 50")
# name: (the stage run, params.yaml's text (None: no file), its one line)
CASES = {
    f"{key}={value!r}": (STAGE_OF[key.split(".")[0]], edited(key, value), not_allowed(key, value, *refusal))
    for key, (_, values) in BAD.items() for value, *refusal in values
} | {
    f"{key}-missing": (STAGE_OF[key.split(".")[0]], edited(key),
                       f"error: params.yaml: {key} is missing (allowed: {BAD[key][0]})")
    for key in ("epochs", "seed", "sgd.folds", "model.optimizer")
} | {
    "download-section-missing": ("download", edited("download"), "error: params.yaml: download is missing "
                                 "(allowed: a mapping of sources, retries, timeout)"),
    "unknown-key": ("train", DEFAULTS.replace("  dropout: 0.0", "  dropout: 0.0\n  dropuot: 0.5"),
                    "error: params.yaml: unknown key model.dropuot"),
    "unclosed-bracket": ("train", DEFAULTS.replace("hidden: []", "hidden: [64, 32"),
                         f"{SYNTAX_ERROR}26, column 3: expected ',' or ']', but got '<scalar>'"),
    "tab-indent": ("sgd_cv", DEFAULTS.replace("  loss: log_loss", "\tloss: log_loss"),
                   f"{SYNTAX_ERROR}20, column 1: found character '\\t' that cannot start any token"),
    "bad-indent": ("split", DEFAULTS.replace("epochs: 5", "epochs: 5\n  batch: 3"),
                   f"{SYNTAX_ERROR}5, column 8: mapping values are not allowed here"),
    # Run without DVC, a stage refuses it too (yaml.safe_load alone would keep the last).
    "duplicated-key": ("split", DUPLICATED,
                       f"{SYNTAX_ERROR}5, column 1: key 'epochs' is given twice (first at line 4); keep one"),
    "empty-file": ("split", "", f"{NOT_A_MAPPING}NoneType"),
    "a-list": ("split", "- epochs\n- 5\n", f"{NOT_A_MAPPING}list"),
    "a-scalar": ("split", "just a sentence\n", f"{NOT_A_MAPPING}str"),
    "no-params-file": ("train", None, "error: cannot read params.yaml: No such file or directory"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("params") / "project")


@pytest.mark.parametrize("case", CASES)
def test_a_mistyped_params_yaml_is_one_line_and_writes_nothing(case, project, entry_point):
    stage, text, expected = CASES[case]
    params = project / "params.yaml"
    assert text != DEFAULTS
    params.unlink() if text is None else params.write_text(text)
    before = snapshot(project)
    try:
        assert error_line(*entry_point(importlib.import_module(f"stages.{stage}").main, project)) == expected
        assert snapshot(project) == before, "the stage wrote or changed files"
    finally:
        params.write_text(DEFAULTS)


@pytest.mark.parametrize("text, says", [
    (edited("download.retries", 0), "error: params.yaml: download.retries = 0 is not allowed"),  # the stage's
    (DUPLICATED, "YAML file structure is corrupted"),  # DVC reads params.yaml itself, before running anything
], ids=["refused-by-the-stage", "duplicated-key-refused-by-dvc"])
def test_under_dvc_a_mistyped_params_yaml_fails_and_nothing_is_recorded(text, says, tmp_path):
    project = copy_project(tmp_path / "project")
    (project / "params.yaml").write_text(text)
    result = dvc(project, "repro", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and says in output and "Traceback" not in output, output[-2000:]
    assert not (project / "dvc.lock").exists() and not (project / "data").exists()
