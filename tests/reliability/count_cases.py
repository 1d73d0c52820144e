"""Write the fault table of tests/reliability/README.md: each fault class, its distinct cases, what
the user sees. `--check`: exit 1 if the file's table is stale. A case is a collected test (each
parametrized value counts once) not marked `control`; the class and what the user sees are each
module's FAULT_CLASS and USER_SEES."""

import argparse
import contextlib
import io
import sys
from collections import Counter
from pathlib import Path

import pytest

from scripts.doc_tables import replace_block

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
ORDER = ["test_download_faults", "test_data_faults", "test_missing_inputs", "test_params_faults",
         "test_interruption", "test_determinism", "test_concurrency", "test_safety", "test_store_faults"]


class Collector:
    def __init__(self) -> None:
        self.cases: Counter = Counter()
        self.modules: dict[str, object] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if hasattr(item.module, "FAULT_CLASS"):  # not, e.g., this table's own test
                name = item.module.__name__.rsplit(".", 1)[-1]
                self.modules[name] = item.module
                self.cases[name] += item.get_closest_marker("control") is None


def table() -> str:
    collector = Collector()
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(HERE)], plugins=[collector])
    if code != 0:
        raise SystemExit(f"error: collecting {HERE} failed (pytest exit {code})")
    rows = ["| Fault class | Cases | What the user sees |", "| --- | ---: | --- |"]
    for name in sorted(collector.modules, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        module = collector.modules[name]
        rows.append(f"| {module.FAULT_CLASS} | {collector.cases[name]} | {module.USER_SEES} |")
    rows.append(f"| **total** | **{sum(collector.cases.values())}** | |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the table in the file is stale")
    document = README.read_text()
    updated = replace_block(document, "fault-table", table() + "\n")
    if not parser.parse_args().check:
        README.write_text(updated)
    elif updated != document:
        print(f"error: {README.relative_to(HERE.parents[1])} is stale: run "
              "`python -m tests.reliability.count_cases`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
