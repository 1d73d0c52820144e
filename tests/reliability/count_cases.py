"""Print the README's "Reliability" table: each fault class, its cases, what the user sees.

    .venv/bin/python tests/reliability/count_cases.py

A case is one collected test of tests/reliability (each parametrized value counts once); the
fault class and what the user sees are each test module's FAULT_CLASS and USER_SEES.
"""

import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class Collector:
    def __init__(self) -> None:
        self.cases: Counter = Counter()
        self.modules: dict[str, object] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            module = item.module
            self.cases[module.__name__] += 1
            self.modules[module.__name__] = module


def table() -> str:
    collector = Collector()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(HERE)],
                       plugins=[collector])
    if code != 0:
        raise SystemExit(f"collection failed ({code})")
    rows = ["| Fault class | Cases | What the user sees |", "| --- | ---: | --- |"]
    for name, module in sorted(collector.modules.items(),
                               key=lambda kv: ORDER.index(kv[0].rsplit(".", 1)[-1])
                               if kv[0].rsplit(".", 1)[-1] in ORDER else 99):
        rows.append(f"| {module.FAULT_CLASS} | {collector.cases[name]} | {module.USER_SEES} |")
    rows.append(f"| **total** | **{sum(collector.cases.values())}** | |")
    return "\n".join(rows)


ORDER = ["test_download_faults", "test_data_faults", "test_params_faults", "test_interruption",
         "test_determinism", "test_concurrency", "test_safety", "test_store_faults"]

if __name__ == "__main__":
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        text = table()
    sys.stdout.write(text + "\n")
