"""Missing inputs: a stage run by hand before its inputs exist, or with one unreadable.

Each case runs the stage's `main` in this process through stages.cli.run, in a fresh copy of the
project (train runs as a process, to show that no traceback reaches the user): one line naming the
input, what is wrong and the command that makes it, exit 1, nothing written.
"""

import importlib
import subprocess
import sys

import pytest

from scripts.toolkit import copy_project, error_line
from stages.data import OUTPUTS

FAULT_CLASS = "missing input: a stage run by hand before the stage that makes its input"
USER_SEES = ("`error: cannot read <path>: <No such file or directory, Is a directory, not a NumPy array "
             "file, not JSON>; `dvc repro <stage>` makes it (or `dvc pull` fetches it, if the team store is "
             "set up)`, exit 1, nothing written")
PULL = "(or `dvc pull` fetches it, if the team store is set up)"
MISSING = "No such file or directory"
# stage: the input it reads first, the stage that makes it
FIRST_INPUT = {
    "prepare": ("data/raw/train-images-idx3-ubyte", "download"),
    "split": ("data/prepared/y_train.npy", "prepare"),
    "sgd_cv": ("data/prepared/x_train.npy", "prepare"),
    "train": ("data/prepared/x_train.npy", "prepare"),
    "evaluate": ("data/model.keras", "train"),
    "summary": ("metrics/sgd_cv.json", "sgd_cv"),
}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh copy of the project: code and params, no data, no outputs."""
    return copy_project(tmp_path_factory.mktemp("fresh") / "project")


def files(project):
    return sorted(str(p.relative_to(project)) for p in project.rglob("*")
                  if ".git" not in p.parts and "tmp" not in p.parts and "__pycache__" not in p.parts)


@pytest.mark.parametrize("stage", [stage for stage in OUTPUTS if stage != "download"])  # its input: a source
def test_a_missing_input_names_the_command_that_makes_it(stage, fresh, entry_point):
    path, maker = FIRST_INPUT[stage]
    before = files(fresh)
    if stage == "train":  # as a process: no traceback
        result = subprocess.run([sys.executable, "-m", "stages.train"], cwd=fresh, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.splitlines()
    else:
        line = error_line(*entry_point(importlib.import_module(f"stages.{stage}").main, fresh))
    assert line == f"error: cannot read {path}: {MISSING}; `dvc repro {maker}` makes it {PULL}"
    assert files(fresh) == before


MADE_BY = {"data/prepared/y_train.npy": "prepare", "metrics/sgd_cv.json": "sgd_cv"}


@pytest.mark.parametrize("stage, path, content, problem", [
    ("split", "data/prepared/y_train.npy", None, "Is a directory"),
    ("split", "data/prepared/y_train.npy", b"not an array", "not a NumPy array file"),
    ("summary", "metrics/sgd_cv.json", b'{"accuracy": ', "not JSON"),
])
def test_an_unreadable_input_says_what_is_wrong(stage, path, content, problem, tmp_path, entry_point):
    project = copy_project(tmp_path / "project")
    target = project / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    before = files(project)
    line = error_line(*entry_point(importlib.import_module(f"stages.{stage}").main, project))
    assert line.startswith(f"error: cannot read {path}: {problem}"), line
    assert line.endswith(f"`dvc repro {MADE_BY[path]}` makes it {PULL}"), line
    assert files(project) == before
