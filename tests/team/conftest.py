"""The team's store, one per test worker (xdist) that needs it, holding the reference run's outputs and run
records."""

import shutil
from collections.abc import Iterator

import pytest

from scripts.toolkit import REPO, Store, run


@pytest.fixture(scope="session")
def store(reference_run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The reference run's outputs and run records pushed to the store as store-push.yml pushes them on
    main (`dvc push --run-cache`); its commit is on reference_run.origin, where every clone pulls from."""
    root = tmp_path_factory.mktemp("store")
    project = shutil.copytree(reference_run.project, root / "project", symlinks=True)  # push takes its lock
    with Store(root / "store") as store:
        pushed = run(project, str(REPO / "scripts/ci_cache.sh"), "push", env=store.env(), check=True)
        assert "pushed" in pushed.stdout + pushed.stderr
        yield store
