"""Concurrency: a second `dvc repro` during the reference run is refused; the first ends intact."""

# The first run's outputs are checked in tests/test_pipeline.py and test_determinism.py. DVC 3
# releases its repository lock while a stage's command runs and guards the stage's paths with its
# read/write lock instead (.dvc/tmp/rwlock): the second run is refused either way.
import pytest

from scripts.toolkit import CONCURRENT_DURING

FAULT_CLASS = "concurrency: a second `dvc repro`"
USER_SEES = (
    "the second exits non-zero within seconds, running nothing: DVC's `Unable to acquire lock` "
    "or `'<path>' is busy, it is being blocked by: (PID n): dvc repro`; the first completes as if "
    "alone"
)
CAUSES = ("acquire lock", "is busy")  # the repository lock, or a stage's paths' read/write lock


@pytest.mark.parametrize("during", CONCURRENT_DURING)
def test_a_second_repro_is_refused_cleanly(during, reference_run):
    """Refused at once: it ended while the first still ran, whatever the machine's speed."""
    code, output, first_still_running = reference_run.attempts[during]
    assert code != 0 and any(cause in output.lower() for cause in CAUSES), output
    assert "Running stage" not in output and "Traceback" not in output, output
    assert first_still_running, "the first run ended before the refusal: it waited, or no test"
