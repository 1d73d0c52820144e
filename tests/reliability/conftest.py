"""Every test in this folder gets the `reliability` marker (`pytest -m reliability`);
`python -m scripts.fault_table` writes the fault table of tests/reliability/README.md."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.reliability)
