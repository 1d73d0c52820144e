"""The team tests' project: the user's clone, its bare Git origin and the store, per module."""

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from scripts.toolkit import (
    SMALL_RUN_PARAMS,
    Store,
    copy_project,
    default_params,
    git,
    kill_processes_in,
    processes_in,
    run,
    venv_env,
    wait_for,
)

MAX_ITER = default_params()["sgd"]["max_iter"]  # the reference's SGD (in the store); sweeps vary it


@dataclass
class TeamProject:
    """The user's clone, its bare Git origin and the store: where `python -m MODULE` runs."""

    module: str  # sweep or search
    project: Path
    origin: Path
    store: Store

    def env(self, clones: Path) -> dict[str, str]:
        """The store's keys and the workers' clones' home; the module from the repo."""
        return self.store.sweep_env(clones)

    def run(self, *args: str, env: Mapping[str, str], project: Path | None = None
            ) -> subprocess.CompletedProcess:
        """`python -m MODULE ARGS` in the user's clone (or `project`), to its end."""
        return run(project or self.project, "python", "-m", self.module, *args, env=env,
                   timeout=900)

    def start(self, *args: str, clones: Path, env: Mapping[str, str] | None = None
              ) -> subprocess.Popen:
        """`python -m MODULE ARGS` in the user's clone (`env` added), started, its output piped."""
        return subprocess.Popen([sys.executable, "-m", self.module, *args], cwd=self.project,
                                env=venv_env({**self.env(clones), **(env or {})}), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def run_killing_a_worker(self, *args: str, root: Path) -> tuple[int, str, str]:
        """`python -m MODULE ARGS` (clones in root/clones), a worker killed in train; its result."""
        # Dask's default, set: a machine's own Dask config could allow no rerun.
        process = self.start(*args, clones=root / "clones",
                             env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3"})
        try:
            assert kill_the_worker_in_train(root / "clones", process), "none reached train"
            out, err = process.communicate(timeout=600)
        finally:
            process.kill()
            kill_processes_in(root)
        return process.returncode, out, err

    def refs(self) -> list[str]:
        """The experiments' refs in the Git origin (refs/exps/<commit>/<name>)."""
        refs = git(self.origin, "for-each-ref", "--format=%(refname)", "refs/exps").split()
        return [ref for ref in refs if not ref.startswith("refs/exps/exec/")]

    def pushed(self) -> list[str]:
        """The experiments in the Git origin, one name per ref."""
        return [ref.rsplit("/", 1)[1] for ref in self.refs()]


def kill_the_worker_in_train(clones: Path, command: subprocess.Popen) -> bool:
    """SIGKILL the Dask worker of the first experiment under `clones` to reach train."""

    def killed() -> bool:
        assert command.poll() is None, "the command ended before any experiment reached train"
        for train in processes_in(clones, "stages.train"):
            # The worker that started train's `dvc exp run` (it may have ended meanwhile).
            with contextlib.suppress(psutil.Error, StopIteration):
                dvc_run = next(p for p in train.parents() if p.cmdline()[2:4] == ["exp", "run"])
                dvc_run.parent().send_signal(signal.SIGKILL)
                return True
        return False

    return bool(wait_for(killed, timeout=300, interval=0.2))


@contextlib.contextmanager
def dask_processes(root: Path) -> Iterator[Callable[..., None]]:
    """Start quiet `dask ARGS` processes (`start`); at the end all are killed, with their work."""
    dask, started = str(Path(sys.executable).parent / "dask"), []

    def start(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        started.append(subprocess.Popen([dask, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))

    try:
        yield start
    finally:
        for process in started:
            process.kill()
            process.wait()
        kill_processes_in(root)  # what the workers started


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
