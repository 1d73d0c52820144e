"""Fixtures of the reliability suite: a second pipeline run from scratch, with `dvc repro` tried
again while it runs. (The download faults' loopback mirrors are in tests/mirrors.py.)

Every test in this folder gets the `reliability` marker: `pytest -m reliability` or
`pytest tests/reliability` runs the suite alone; `python -m tests.reliability.count_cases`
writes the fault table of tests/reliability/README.md.
"""

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.toolkit import SMALL_RUN_PARAMS, VENV_BIN, copy_project, dvc, venv_env

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.reliability)


# ---------------------------------------------------------------- a second run from scratch


@dataclass
class Attempt:
    result: subprocess.CompletedProcess
    seconds: float
    first_still_running: bool


@dataclass
class ConcurrentRun:
    project: Path
    first_output: str
    first_code: int
    attempts: dict[str, Attempt]  # by the stage the first run was in


CONCURRENT_DURING = ("sgd_cv", "train")


# The second run from scratch is the reference's twin: the same params, so the same bytes.
@pytest.fixture(scope="session")
def concurrent_run(tmp_path_factory, dataset) -> ConcurrentRun:
    """A second run from scratch; once it prints that it runs sgd_cv, then train, `dvc repro` is
    tried again in the same project."""
    project = copy_project(tmp_path_factory.mktemp("concurrent") / "project", SMALL_RUN_PARAMS)
    # DVC runs each cmd with `$SHELL -c`; /bin/sh (dash) forks, leaving a shell between DVC and
    # the stage, as in CI and under cron where SHELL is unset.
    first = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                             env=venv_env({"PYTHONUNBUFFERED": "1", "SHELL": "/bin/sh"}),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, attempts = [], {}
    try:
        for line in first.stdout:
            lines.append(line)
            during = next((name for name in CONCURRENT_DURING if f"Running stage '{name}'" in line), None)
            if during:
                start = time.monotonic()
                result = dvc(project, "repro", check=False)
                attempts[during] = Attempt(result, time.monotonic() - start, first.poll() is None)
        code = first.wait(600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    return ConcurrentRun(project, "".join(lines), code, attempts)
