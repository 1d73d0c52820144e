"""The reliability suite's fixture: a second pipeline run from scratch, with `dvc repro` tried again
while it runs. Every test in this folder gets the `reliability` marker (`pytest -m reliability`);
`python -m scripts.fault_table` writes the fault table of tests/reliability/README.md."""

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.toolkit import SMALL_RUN_PARAMS, VENV_BIN, copy_project, dvc, venv_env

HERE = Path(__file__).resolve().parent
CONCURRENT_DURING = ("sgd_cv", "train")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.reliability)


@dataclass
class ConcurrentRun:
    project: Path
    first_output: str
    first_code: int
    # By the stage the first run was in: the second `dvc repro`, its seconds, whether the first still ran.
    attempts: dict[str, tuple[subprocess.CompletedProcess, float, bool]]


@pytest.fixture(scope="session")
def concurrent_run(tmp_path_factory, dataset) -> ConcurrentRun:
    """A run from scratch with the reference's params (so the same bytes); once it prints that it runs
    sgd_cv, then train, `dvc repro` is tried again in the same project."""
    project = copy_project(tmp_path_factory.mktemp("concurrent") / "project", SMALL_RUN_PARAMS)
    # SHELL=/bin/sh: DVC runs each cmd with `$SHELL -c`, and dash forks (as in CI and under cron).
    first = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                             env=venv_env({"PYTHONUNBUFFERED": "1", "SHELL": "/bin/sh"}),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, attempts = [], {}
    try:
        for line in first.stdout:
            lines.append(line)
            for during in (name for name in CONCURRENT_DURING if f"Running stage '{name}'" in line):
                start = time.monotonic()
                result = dvc(project, "repro", check=False)
                attempts[during] = (result, time.monotonic() - start, first.poll() is None)
        code = first.wait(600)
    finally:
        first.kill()
        first.wait()
    return ConcurrentRun(project, "".join(lines), code, attempts)
