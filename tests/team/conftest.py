"""One store and one pipeline run (clone A) for the whole session; every team test reads them."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import git
from scripts.storage import Store

from .helpers import REPO, digests, new_project, ok, run, start_store


@dataclass
class Team:
    env: dict[str, str]  # the store's variables
    origin: Path  # the bare Git repository every clone pushes to
    a_outputs: dict[str, str]  # digests of the outputs of clone A, which ran the pipeline and shared it


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Iterator[Store]:
    store = start_store(tmp_path_factory.mktemp("store"))
    yield store
    store.stop()


@pytest.fixture(scope="session")
def team(tmp_path_factory, store, dataset) -> Team:
    """Clone A ran the pipeline, pushed outputs and run-cache to the store and its commit to origin."""
    base = tmp_path_factory.mktemp("team")
    a = new_project(base / "a", dataset, origin=base / "origin.git")
    env = store.env()
    ok(run(a, "dvc", "repro", env=env))
    git(a, "add", "-A")
    git(a, "commit", "-qm", "pipeline run")
    # What store-push.yml runs on main (dvc push --run-cache): outputs and each stage's run record.
    ok(run(a, str(REPO / "scripts/ci_cache.sh"), "push", env=env))
    git(a, "push", "-q", "origin", "main")
    return Team(env, base / "origin.git", digests(a))
