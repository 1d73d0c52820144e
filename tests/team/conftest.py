"""The team tests' project: the user's clone, its bare Git origin and the store, per module."""

import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.toolkit import (
    REPO,
    SMALL_RUN_PARAMS,
    Store,
    copy_project,
    git,
    kill_processes_in,
    run,
    venv_env,
)


@dataclass
class TeamProject:
    """The user's clone, its bare Git origin and the store: where `python -m MODULE` runs."""

    module: str  # sweep or search
    project: Path
    origin: Path
    store: Store

    def env(self, clones: Path) -> dict[str, str]:
        """The store's keys and the workers' clones' home; the module from the repo."""
        return {**self.store.env(), "PYTHONPATH": str(REPO), "SWEEP_CLONES": str(clones)}

    def run(self, *args: str, env: Mapping[str, str], project: Path | None = None
            ) -> subprocess.CompletedProcess:
        """`python -m MODULE ARGS` in the user's clone (or `project`), to its end."""
        return run(project or self.project, "python", "-m", self.module, *args, env=env,
                   timeout=900)

    def start(self, *args: str, clones: Path) -> subprocess.Popen:
        """`python -m MODULE ARGS` in the user's clone, started, its output piped."""
        return subprocess.Popen([sys.executable, "-m", self.module, *args], cwd=self.project,
                                env=venv_env(self.env(clones)), text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def pushed(self) -> list[str]:
        """The experiments in the Git origin, one name per ref."""
        refs = git(self.origin, "for-each-ref", "--format=%(refname)", "refs/exps").split()
        return [ref.rsplit("/", 1)[1] for ref in refs if not ref.startswith("refs/exps/exec/")]


def team_project(factory: pytest.TempPathFactory, module: str, store: Store
                 ) -> Iterator[TeamProject]:
    """A new clone and origin for `module`'s tests; whatever ran in them killed at the end."""
    root = factory.mktemp(module)
    try:
        yield TeamProject(module, copy_project(root / "user", SMALL_RUN_PARAMS,
                                               origin=root / "origin.git"),
                          root / "origin.git", store)
    finally:
        kill_processes_in(root)


@pytest.fixture(scope="module")
def sweeper(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Iterator[TeamProject]:
    yield from team_project(tmp_path_factory, "sweep", store)


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Iterator[TeamProject]:
    yield from team_project(tmp_path_factory, "search", store)
