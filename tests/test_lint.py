"""ruff's and deptry's rules bite, and the lock pins what pyproject.toml declares."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from itertools import chain

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.toolkit import REPO, VENV_BIN, git


def violations(source: str, path: str) -> list[str]:
    """'CODE line N' of each violation ruff finds in `source` as the project's file `path`."""
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "json",
               "--stdin-filename", path, "-"]  # `source` checked as the project's file `path`
    result = subprocess.run(command, cwd=REPO, input=source, capture_output=True, text=True,
                            timeout=60)
    found = [f"{v['code']} line {v['location']['row']}" for v in json.loads(result.stdout or "[]")]
    assert result.returncode == (1 if found else 0), result.stderr  # 2: ruff failed (config?)
    return found


@pytest.mark.parametrize("source, expected", [
    ("from keras.src.saving import saving_lib\n\nprint(saving_lib)\n", "TID251 line 1"),
    ("import os\n\nos._exit(0)\n", "TID251 line 3"),
    ("import os as system\n\nsystem.dup2(3, 2)\n", "TID251 line 3"),  # an alias hides nothing
    ("import ctypes\n", "TID251 line 1"),
    ("import signal\n\nsignal.setitimer(signal.ITIMER_REAL, 1.0)\n", "TID251 line 3"),
    ("import sys\n\nsys.modules['tensorflow'] = None\n", "TID251 line 3"),
    ("import yaml\n\nyaml.unsafe_load('a: 1')\n", "TID251 line 3"),
    ("import atexit\n\natexit._run_exitfuncs()\n", "SLF001 line 3"),
    ("from sklearn.utils import _param_validation\n\nprint(_param_validation)\n", "PLC2701 line 1"),
    ("from sklearn.linear_model._base import LinearModel\n\nprint(LinearModel)\n",
     "PLC2701 line 1"),
    ("import pickle\n\npickle.loads(b'')\n", "S301 line 3"),
    ("import yaml\n\nyaml.load('a: 1', Loader=yaml.Loader)\n", "S506 line 3"),
    ("eval('1 + 1')\n", "S307 line 1"),
    ("exec('x = 1')\n", "S102 line 1"),
    ("import subprocess\n\nsubprocess.run('dvc repro', shell=True, check=True)\n", "S602 line 3"),
], ids=lambda value: value.strip().splitlines()[-1][:40])
def test_ruff_refuses_a_banned_call_in_every_directory(source, expected):
    for path in ("stages/example.py", "tests/test_example.py", "bench/example.py",
                 "scripts/example.py"):
        assert expected in violations(source, path), path


def test_the_tests_idioms_are_exempted_in_tests_only():
    """assert and subprocess with PATH lookups: pyproject.toml exempts tests/, not stages/."""
    source = """import subprocess
import sys

subprocess.run(["dvc", "repro"], check=True)
assert subprocess.run(sys.argv[1:], check=True).returncode == 0
"""
    assert violations(source, "tests/test_example.py") == []
    assert sorted(violations(source, "stages/example.py")) == ["S101 line 5", "S603 line 5",
                                                                "S607 line 4"]


def test_the_lock_pins_what_pyproject_declares():
    """A pin changed in pyproject.toml but not in requirements.txt (`make lock`) fails."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = (line.partition("==") for line in (REPO / "requirements.txt").read_text().splitlines())
    locked = {canonicalize_name(name): version for name, _, version in pins
              if version and name[0] != "#"}
    for declared in chain(project["dependencies"], *project["optional-dependencies"].values()):
        requirement = Requirement(declared)
        version = locked.get(canonicalize_name(requirement.name))
        assert version is not None and requirement.specifier.contains(version), \
            f"{requirement} in pyproject.toml, {version} in requirements.txt: run `make lock`"


def dependency_issues(tree) -> set[tuple[str, str]]:
    """(code, module) of each issue `deptry .` finds in `tree`, by its pyproject.toml's config."""
    report = tree / "deptry.json"
    result = subprocess.run([str(VENV_BIN / "deptry"), ".", "--json-output", str(report)], cwd=tree,
                            capture_output=True, text=True, timeout=120, check=False)
    issues = json.loads(report.read_text())
    assert result.returncode == (1 if issues else 0), result.stderr
    return {(issue["error"]["code"], issue["module"]) for issue in issues}


def test_deptry_refuses_an_import_that_pyproject_does_not_declare(tmp_path):
    """`deptry .` as `make test` runs it, on a copy of the tracked Python files and pyproject."""
    for name in git(REPO, "ls-files", "*.py", "pyproject.toml").split():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    assert dependency_issues(tmp_path) == set()
    (tmp_path / "tests/test_example.py").write_text("import yaml_include\n")  # tests/ scanned too
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(re.sub(r'\n *"psutil==.*', "", pyproject.read_text()))  # installed, by dvc
    assert dependency_issues(tmp_path) == {("DEP001", "yaml_include"), ("DEP003", "psutil")}
