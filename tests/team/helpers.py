"""Helpers of the team tests: a real S3 store on 127.0.0.1, clones, dvc with the store's keys."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from conftest import git, make_project
from scripts.storage import Store

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
# The smallest run the params allow: one epoch, two folds, a few SGD passes.
TEAM_PARAMS = {"max_samples": 500, "epochs": 1, "sgd.folds": 2, "sgd.max_iter": 3}
STAGES = ("download", "prepare", "split", "sgd_cv", "train", "evaluate", "summary")
OUTPUTS = ("data/raw", "data/prepared", "data/split", "data/model.keras",
           "metrics", "plots")


def run(root: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command of the venv (dvc, python) in `root` with the store's variables in `env`."""
    full = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    full.pop("PYTHONPATH", None)
    program = str(VENV_BIN / args[0]) if (VENV_BIN / args[0]).exists() else args[0]
    return subprocess.run([program, *args[1:]], cwd=root, env=full, capture_output=True,
                          text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, by its "Running stage" lines."""
    return {name for name in STAGES if f"Running stage '{name}'" in output}


def restored(output: str) -> set[str]:
    """The stages it restored from the run-cache instead of running them."""
    return {name for name in STAGES if f"Stage '{name}' is cached - skipping run" in output}


def clone(origin: Path, target: Path) -> Path:
    """A Git clone of `origin`'s main: no DVC cache, no outputs."""
    subprocess.run(["git", "clone", "-q", "-b", "main", str(origin), str(target)],
                   check=True, capture_output=True)
    return target


def digests(root: Path, paths: tuple[str, ...] = OUTPUTS) -> dict[str, str]:
    """sha256 of every file under `paths` of `root`, by relative path."""
    found = {}
    for name in paths:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if path.name != ".gitignore":
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def new_project(root: Path, dataset: Path, origin: Path | None = None, **params: object) -> Path:
    """A copy of the project (small params, the real files as source), pushing to a bare `origin`."""
    project = make_project(root, **TEAM_PARAMS, **{"download.sources": [str(dataset)]}, **params)
    git(project, "branch", "-M", "main")
    if origin is not None:
        subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
        git(project, "remote", "add", "origin", str(origin))
    return project


def start_store(root: Path, **kwargs: object) -> Store:
    store = Store(root)
    store.start(**kwargs)
    return store
