"""Missing inputs: a stage run by hand in a fresh copy of the project, its input absent or bad.

In this process through stages.exits.run; train as a process too (no traceback reaches the user)."""

import importlib
import re

import pytest

from scripts.toolkit import copy_project, error_line, run, snapshot

FAULT_CLASS = "missing input: a stage run by hand before the stage that makes its input"
USER_SEES = ("`error: cannot read <path>: <No such file or directory, Is a directory, not a NumPy "
             "array file, not JSON>; `dvc repro <stage>` makes it (or `dvc pull` fetches it, if "
             "the team store is set up)`, exit 1, nothing written")
MISSING = "No such file or directory"
# name: (stage, the input it reads first, the stage making it, what is there (None: nothing),
# the fault)
CASES = {
    "prepare": ("prepare", "data/raw/train-images-idx3-ubyte", "download", None, MISSING),
    "split": ("split", "data/prepared/y_train.npy", "prepare", None, MISSING),
    "sgd_cv": ("sgd_cv", "data/prepared/x_train.npy", "prepare", None, MISSING),
    "train": ("train", "data/prepared/x_train.npy", "prepare", None, MISSING),
    "evaluate": ("evaluate", "data/model.keras", "train", None, MISSING),
    "summary": ("summary", "metrics/sgd_cv.json", "sgd_cv", None, MISSING),
    "split-a-directory": ("split", "data/prepared/y_train.npy", "prepare", "a directory",
                          "Is a directory"),
    "split-not-npy": ("split", "data/prepared/y_train.npy", "prepare", b"not an array",
                      r"not a NumPy array file \(.+\)"),
    "summary-not-json": ("summary", "metrics/sgd_cv.json", "sgd_cv", b'{"accuracy": ',
                         r"not JSON \(Expecting value: .+\)"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_missing_or_unreadable_input_names_the_command_that_makes_it(case, tmp_path, entry_point):
    stage, path, maker, content, problem = CASES[case]
    project = copy_project(tmp_path / "project")
    if content is not None:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        if content == "a directory":
            (project / path).mkdir()
        else:
            (project / path).write_bytes(content)
    ignored = (".git", "__pycache__", "tmp")  # .dvc/tmp/stage-home: Keras's and Matplotlib's HOME
    before = snapshot(project, ignored)
    if stage == "train":
        result = run(project, "python", "-m", "stages.train", timeout=120)
        line = error_line(result.returncode, result.stderr.splitlines())  # one line: no traceback
    else:
        line = error_line(*entry_point(importlib.import_module(f"stages.{stage}").main, project))
    fix = f"`dvc repro {maker}` makes it (or `dvc pull` fetches it, if the team store is set up)"
    expected = f"error: cannot read {re.escape(path)}: {problem}; {re.escape(fix)}"
    assert re.fullmatch(expected, line), line
    assert snapshot(project, ignored) == before
