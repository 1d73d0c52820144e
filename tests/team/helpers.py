"""Helpers of the team tests: a real S3 store on 127.0.0.1, clones, dvc with the store's keys."""

import hashlib
from pathlib import Path

# run, ok and STAGES are the team tests' too: re-exported.
from conftest import STAGES, git, make_project, ok, ran_stages, run  # noqa: F401
from scripts.storage import Store

REPO = Path(__file__).resolve().parents[2]
# The smallest run the params allow: one epoch, two folds, a few SGD passes.
TEAM_PARAMS = {"max_samples": 500, "epochs": 1, "sgd.folds": 2, "sgd.max_iter": 3}
OUTPUTS = ("data/raw", "data/prepared", "data/split", "data/model.keras",
           "metrics", "plots")


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, by its "Running stage" lines."""
    return set(ran_stages(output))


def restored(output: str) -> set[str]:
    """The stages it restored from the run-cache instead of running them."""
    return {name for name in STAGES if f"Stage '{name}' is cached - skipping run" in output}


def clone(origin: Path, target: Path) -> Path:
    """A Git clone of `origin`'s main: no DVC cache, no outputs."""
    git(target.parent, "clone", "-q", "-b", "main", str(origin), str(target))
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
        git(origin.parent, "init", "-q", "--bare", str(origin))
        git(project, "remote", "add", "origin", str(origin))
    return project


def start_store(root: Path, **kwargs: object) -> Store:
    store = Store(root)
    store.start(**kwargs)
    return store
