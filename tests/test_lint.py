"""ruff enforces the developers' guide (pyproject.toml's [tool.ruff.lint], run on the tree by `make test`):
these tests show it bites. Each source goes to ruff as a file of the project (`--stdin-filename`): the
project's configuration and its per-directory exemptions apply exactly as in `ruff check .`."""

import json
import subprocess
import sys
import tomllib
from itertools import chain
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def violations(source: str, path: str) -> list[str]:
    """'CODE line N' of each violation ruff finds in `source` as the project's file `path`."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "json",
                             "--stdin-filename", path, "-"], cwd=REPO, input=source, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr  # 2: ruff itself failed (config, syntax)
    found = [f"{v['code']} line {v['location']['row']}" for v in json.loads(result.stdout)]
    assert (result.returncode == 1) == bool(found), result.stdout
    return found


@pytest.mark.parametrize("source, expected", [
    ("import keras.src.saving\n", "TID251 line 1"),
    ("from keras.src.saving import saving_lib\n\nprint(saving_lib)\n", "TID251 line 1"),
    ("import os\n\nos._exit(0)\n", "TID251 line 3"),
    ("import os as system\n\nsystem.dup2(3, 2)\n", "TID251 line 3"),  # an alias hides nothing
    ("import ctypes\n", "TID251 line 1"),
    ("import signal\n\nsignal.setitimer(signal.ITIMER_REAL, 1.0)\n", "TID251 line 3"),
    ("import sys\n\nsys.modules['tensorflow'] = None\n", "TID251 line 3"),
    ("import yaml\n\nyaml.unsafe_load('a: 1')\n", "TID251 line 3"),
    ("import atexit\n\natexit._run_exitfuncs()\n", "SLF001 line 3"),
    ("import numpy as np\n\nprint(np._core.multiarray)\n", "SLF001 line 3"),
    ("from sklearn.linear_model import _stochastic_gradient\n\nprint(_stochastic_gradient)\n",
     "PLC2701 line 1"),
    ("from sklearn.linear_model._base import LinearModel\n\nprint(LinearModel)\n", "PLC2701 line 1"),
    ("import pickle\n\npickle.loads(b'')\n", "S301 line 3"),
    ("import yaml\n\nyaml.load('a: 1', Loader=yaml.Loader)\n", "S506 line 3"),
    ("eval('1 + 1')\n", "S307 line 1"),
    ("exec('x = 1')\n", "S102 line 1"),
    ("import subprocess\n\nsubprocess.run('dvc repro', shell=True, check=True)\n", "S602 line 3"),
], ids=lambda value: value.strip().splitlines()[-1][:40])
def test_ruff_refuses_a_banned_call_in_every_directory(source, expected):
    for path in ("stages/example.py", "tests/test_example.py", "bench/example.py", "scripts/example.py"):
        assert expected in violations(source, path), path


def test_public_uses_pass_and_the_exemptions_are_the_tests_only():
    """Public APIs pass everywhere; assert and subprocess with PATH lookups are the tests' idiom only."""
    source = """import os
import signal
import subprocess
import sys

import yaml

signal.signal(signal.SIGTERM, signal.default_int_handler)
os.environ["KERAS_HOME"] = yaml.safe_load("a: b")["a"]
subprocess.run(["dvc", "repro"], check=True)
assert subprocess.run(sys.argv[1:], check=True).returncode == 0
"""
    assert violations(source, "tests/test_example.py") == []
    assert sorted(violations(source, "stages/example.py")) == ["S101 line 11", "S603 line 11", "S607 line 10"]


def test_the_lock_pins_what_pyproject_declares():
    """requirements.txt is generated from pyproject.toml (`make lock`): a pin changed in one only fails."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = map(Requirement, chain(project["dependencies"], *project["optional-dependencies"].values()))
    locked = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    locked = {canonicalize_name(name): version for name, version in locked.items()}
    for requirement in declared:
        version = locked.get(canonicalize_name(requirement.name))
        assert version is not None and requirement.specifier.contains(version), \
            f"{requirement} in pyproject.toml, {version} in requirements.txt: run `make lock`"
