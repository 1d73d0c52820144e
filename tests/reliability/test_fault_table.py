"""The fault table of tests/reliability/README.md is the one the suite's tests make today."""

from scripts.toolkit import REPO, run


def test_the_fault_table_is_not_stale():
    result = run(REPO, "python", "-m", "tests.reliability.count_cases", "--check",
                 env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
