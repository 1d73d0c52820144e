"""ruff enforces the developers' guide: public APIs only, no process tricks, nothing that runs code
from a file. The rules are pyproject.toml's [tool.ruff.lint]; these tests show they bite.

Each case hands ruff a source as if it were a file of the project (`--stdin-filename`), so the
project's configuration and its per-directory exemptions apply exactly as in `ruff check .`.
"""

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


def ruff(*args: str, source: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=REPO, input=source,
        capture_output=True, text=True, timeout=60,
    )


def violations(source: str, path: str = "stages/example.py") -> list[str]:
    """'CODE line N' of each violation ruff finds in `source` as the project's file `path`."""
    result = ruff("--output-format", "json", "--stdin-filename", path, "-", source=source)
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
def test_ruff_refuses_a_banned_call(source, expected):
    assert expected in violations(source)


def test_the_bans_hold_in_tests_bench_and_scripts_too():
    for path in ("tests/test_example.py", "bench/example.py", "scripts/example.py"):
        assert violations("import os\n\nos._exit(0)\n", path) == ["TID251 line 3"], path


def test_the_exemptions_are_per_directory():
    """assert and subprocess with PATH lookups are the tests' idiom, not a stage's."""
    source = """import subprocess
import sys

subprocess.run(["dvc", "repro"], check=True)
result = subprocess.run(sys.argv[1:], check=True)
assert result.returncode == 0
"""
    assert violations(source, "tests/test_example.py") == []
    assert sorted(violations(source, "stages/example.py")) == ["S101 line 6", "S603 line 5", "S607 line 4"]


def test_public_uses_pass():
    source = '''import os
import signal
import sys

import yaml
from sklearn.model_selection import cross_validate


def handle(signum: int, frame: object) -> None:
    raise SystemExit(130)


signal.signal(signal.SIGTERM, handle)
os.environ["KERAS_HOME"] = os.path.join("a", "b")
print(sys.__name__, cross_validate, yaml.safe_load("a: 1"))
'''
    assert violations(source) == []


def test_the_project_passes_ruff():
    result = ruff(".")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_the_lock_pins_what_pyproject_declares():
    """requirements.txt is generated from pyproject.toml (`make lock`): a pin changed in one and not
    the other fails here, before an install quietly uses the old one."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = map(Requirement, chain(project["dependencies"], *project["optional-dependencies"].values()))
    locked = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    locked = {canonicalize_name(name): version for name, version in locked.items()}
    for requirement in declared:
        version = locked.get(canonicalize_name(requirement.name))
        assert version is not None and requirement.specifier.contains(version), \
            f"{requirement} in pyproject.toml, {version} in requirements.txt: run `make lock`"
