"""Parameter faults: a mistyped params.yaml, read by the stage that uses the key, or by DVC."""

# A stage runs in this process, stages.exits.run around its `main`, as `python -m` runs it. Its
# line is the project's words around the reason pydantic or PyYAML gives: the tests check those
# words and the facts (the key, the value, what is allowed, the line and column), not the reason.
import importlib
import re

import pytest
import yaml

from scripts.toolkit import REPO, copy_project, dvc, error_line, snapshot

FAULT_CLASS = "params: a mistyped params.yaml"
USER_SEES = ("`error: params.yaml: <key> = <value> is not allowed: <why> (allowed: <range or "
             "choices>)`, or the line and column of a YAML error; exit 1; nothing written")
DEFAULTS = (REPO / "params.yaml").read_text()
STAGE_OF = {"seed": "split", "max_samples": "prepare", "epochs": "train", "batch_size": "train",
            "download": "download", "split": "split", "sgd": "sgd_cv", "model": "train"}
# key: (what the message says it allows, its bad values; a list's bad item as (the value, how the
# message names the item[, the project's own reason]))
BAD = {
    "epochs": ("an integer from 1 to 1000", ["5", True, 2.5, 0]),
    "seed": ("an integer from 0 to 4294967295", [1.5, -1]),
    "batch_size": ("an integer from 1 to 60000", [32.0, -32]),
    "max_samples": ("null or an integer >= 500", ["all", 10]),
    "split.test_size": ("a number in (0, 1)", ["20%", 1.0]),
    "download.sources": ("a list of at least 1 item, each an http(s) URL or a local directory", [
        "http://127.0.0.1/", [],
        (["ftp://127.0.0.1/fashion"], "download.sources.0 = 'ftp://127.0.0.1/fashion'",
         "a source must be an http(s) URL or a local directory path")]),
    "download.timeout": ("a number in (0, 600]", ["30s", -1]),
    "download.retries": ("an integer from 1 to 10", [0]),
    "model.hidden": ("a list of up to 8 items, each an integer from 1 to 4096",
                     [128, ([128, 0], "model.hidden.1 = 0"), [8] * 9]),
    "sgd.folds": ("an integer from 2 to 20", [1]),
    "sgd.max_iter": ("an integer from 1 to 10000", [0]),
    "model.learning_rate": ("a number in (0, 10]", [0.0]),
    "model.dropout": ("a number in [0, 1)", [1.0]),
    "sgd.loss": ("one of 'log_loss', 'hinge', 'modified_huber', 'squared_hinge', 'perceptron'",
                 ["logistic"]),
    "model.optimizer": ("one of 'rmsprop', 'adam', 'sgd'", ["adamw"]),
    "model.activation": ("one of 'relu', 'tanh', 'sigmoid', 'elu', 'gelu'", ["swish"]),
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


def not_allowed(key: str, bad: object) -> str | tuple[str, str]:
    """The line refusing `bad` as `key`: whole with the project's reason, else its start and end."""
    value, named, why = (*bad, "")[:3] if isinstance(bad, tuple) else (bad, "", "")
    start = f"error: params.yaml: {named or f'{key} = {value!r}'} is not allowed: "
    end = f" (allowed: {BAD[key][0]})"
    return f"{start}{why}{end}" if why else (start, end)


def value_of(bad: object) -> object:
    return bad[0] if isinstance(bad, tuple) else bad


NOT_A_MAPPING = "error: params.yaml: expected a mapping of keys to values, got "
SYNTAX_ERROR = "error: params.yaml: YAML syntax error at line "
DUPLICATED = DEFAULTS.replace("epochs: 5", "epochs: 5\nepochs: 50")
# name: (the stage run, params.yaml's text (None: no file), its line: the whole line when the
# project's words alone, else (its start, its end))
CASES = {
    f"{key}={value_of(bad)!r}": (STAGE_OF[key.split(".")[0]], edited(key, value_of(bad)),
                                 not_allowed(key, bad))
    for key, (_, values) in BAD.items() for bad in values
} | {
    f"{key}-missing": (STAGE_OF[key.split(".")[0]], edited(key),
                       f"error: params.yaml: {key} is missing (allowed: {BAD[key][0]})")
    for key in ("epochs", "seed", "sgd.folds", "model.optimizer")
} | {
    "download-section-missing": ("download", edited("download"), "error: params.yaml: download "
                                 "is missing (allowed: a mapping of sources, retries, timeout)"),
    "unknown-key": ("train", DEFAULTS.replace("  dropout: 0.0", "  dropout: 0.0\n  dropuot: 0.5"),
                    "error: params.yaml: unknown key model.dropuot"),
    "unclosed-bracket": ("train", DEFAULTS.replace("hidden: []", "hidden: [64, 32"),
                         (f"{SYNTAX_ERROR}26, column 3: ", "")),
    "tab-indent": ("sgd_cv", DEFAULTS.replace("  loss: log_loss", "\tloss: log_loss"),
                   (f"{SYNTAX_ERROR}20, column 1: ", "")),
    "bad-indent": ("split", DEFAULTS.replace("epochs: 5", "epochs: 5\n  batch: 3"),
                   (f"{SYNTAX_ERROR}5, column 8: ", "")),
    # Run without DVC, a stage refuses it too (yaml.safe_load alone would keep the last).
    "duplicated-key": ("split", DUPLICATED, f"{SYNTAX_ERROR}5, column 1: key 'epochs' is given "
                       "twice (first at line 4); keep one"),
    "empty-file": ("split", "", f"{NOT_A_MAPPING}NoneType"),
    "a-list": ("split", "- epochs\n- 5\n", f"{NOT_A_MAPPING}list"),
    "a-scalar": ("split", "just a sentence\n", f"{NOT_A_MAPPING}str"),
    "no-params-file": ("train", None, "error: cannot read params.yaml: No such file or directory"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("params") / "project")


def refusal(project, entry_point, stage: str, text: str | None) -> str:
    """The one `error:` line of `stage` on `text` as params.yaml (None: none); nothing written."""
    params = project / "params.yaml"
    assert text != DEFAULTS
    params.unlink() if text is None else params.write_text(text)
    before = snapshot(project)
    try:
        line = error_line(*entry_point(importlib.import_module(f"stages.{stage}").main, project))
        assert snapshot(project) == before, "the stage wrote or changed files"
    finally:
        params.write_text(DEFAULTS)
    return line


@pytest.mark.parametrize("case", CASES)
def test_a_mistyped_params_yaml_is_one_line_and_writes_nothing(case, project, entry_point):
    stage, text, expected = CASES[case]
    line = refusal(project, entry_point, stage, text)
    if isinstance(expected, str):
        assert line == expected
    else:
        start, end = expected
        assert line.startswith(start) and line.endswith(end), (expected, line)
        assert len(line) > len(start) + len(end), line  # a reason between


@pytest.mark.control  # not a case of its own: epochs=0 is one above
def test_the_docs_quote_the_line_the_installed_pydantic_gives(project, entry_point):
    """Each doc quoting the refusal of `epochs: 0` quotes what the stage prints, word for word."""
    stage, text, (start, _) = CASES["epochs=0"]
    line = refusal(project, entry_point, stage, text)
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    quotes = [quote for doc in docs
              for quote in re.findall(rf"{re.escape(start)}.*?\(allowed: [^)]*\)", doc.read_text())]
    verbatim = [quote for quote in quotes if "..." not in quote and "…" not in quote]
    assert verbatim and set(verbatim) == {line}, (line, verbatim)


@pytest.mark.parametrize("text, says", [
    (edited("download.retries", 0), ("error: params.yaml: download.retries = 0 is not allowed",)),
    (DUPLICATED, ("params.yaml", "epochs")),  # DVC reads params.yaml itself, before any stage
], ids=["refused-by-the-stage", "duplicated-key-refused-by-dvc"])
def test_under_dvc_a_mistyped_params_yaml_fails_and_nothing_is_recorded(text, says, tmp_path):
    project = copy_project(tmp_path / "project")
    (project / "params.yaml").write_text(text)
    result = dvc(project, "repro", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output[-2000:]
    assert all(fact in output for fact in says), output[-2000:]
    assert not (project / "dvc.lock").exists() and not (project / "data").exists()
