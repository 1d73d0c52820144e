"""The team's store for the session, holding the reference run: outputs and run records."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.toolkit import REPO, Store, digests, run


@dataclass
class Team:
    env: dict[str, str]  # the store's variables
    origin: Path  # the bare Git repository every clone pulls from: the reference run's commit
    a_outputs: dict[str, str]  # digests of the outputs of the reference run, which shared them


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store(tmp_path_factory.mktemp("store")) as store:
        yield store


@pytest.fixture(scope="session")
def team(reference_run, store: Store) -> Team:
    """The reference run's outputs and run records pushed to the store (what store-push.yml runs
    on main: `dvc push --run-cache`), its commit on `origin`."""
    project = reference_run.project
    pushed = run(project, str(REPO / "scripts/ci_cache.sh"), "push", env=store.env(), check=True)
    assert "pushed" in pushed.stdout + pushed.stderr
    return Team(store.env(), reference_run.origin, digests(project))
