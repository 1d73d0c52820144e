"""Concurrency: a second `dvc repro` while one is running is refused; the first ends intact.

DVC 3 releases its repository lock while a stage's command runs and guards the stage's paths
with its read/write lock instead (.dvc/tmp/rwlock): the second run is refused either way.
"""

import json

import pytest

from scripts.toolkit import dvc, temporaries

from .conftest import CONCURRENT_DURING

FAULT_CLASS = "concurrency: a second `dvc repro`"
USER_SEES = (
    "the second exits non-zero within seconds, running nothing: DVC's `Unable to acquire lock` or "
    "`'<path>' is busy, it is being blocked by: (PID n): dvc repro`; the first completes as if alone"
)
REFUSALS = ("Unable to acquire lock", "is busy, it is being blocked by")


@pytest.mark.parametrize("during", CONCURRENT_DURING)
def test_a_second_repro_is_refused_cleanly(during, concurrent_run):
    result, seconds, first_still_running = concurrent_run.attempts[during]
    output = result.stdout + result.stderr
    assert result.returncode != 0 and any(words in output for words in REFUSALS), output
    assert "Running stage" not in output and "Traceback" not in output, output
    assert first_still_running, "the first run ended before the refusal: no test"
    assert seconds < 30


@pytest.mark.control
def test_the_first_run_finishes_intact(concurrent_run, reference):
    project = concurrent_run.project
    assert concurrent_run.first_code == 0, concurrent_run.first_output[-3000:]
    assert json.loads(dvc(project, "status", "--json").stdout) == {}
    summary = "metrics/summary.json"
    assert (project / summary).read_bytes() == (reference / summary).read_bytes()
    assert temporaries(project) == []
