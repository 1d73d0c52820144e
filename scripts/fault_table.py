"""Write tests/reliability/README.md's fault table: each module's FAULT_CLASS, cases and USER_SEES.

A case is a collected test (each parametrized value once) not marked `control`."""

import argparse
import contextlib
import importlib
import io
import sys
from collections import Counter
from pathlib import Path

import pytest

from scripts.toolkit import REPO, replace_block

HERE = REPO / "tests/reliability"
README = HERE / "README.md"
ORDER = ["test_download_faults", "test_data_faults", "test_missing_inputs", "test_params_faults",
         "test_interruption", "test_determinism", "test_concurrency", "test_safety",
         "test_store_faults"]


def table() -> str:
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):  # `path::test[value]`, a line per collected case
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "not control",
                            str(HERE)])
    if code != 0:
        raise SystemExit(f"error: collecting {HERE} failed (pytest exit {code})")
    lines = listing.getvalue().splitlines()
    cases = Counter(Path(line.split("::")[0]).stem for line in lines if "::" in line)
    modules = {name: importlib.import_module(f"tests.reliability.{name}") for name in cases}
    counted = sorted((name for name, module in modules.items() if hasattr(module, "FAULT_CLASS")),
                     key=lambda name: ORDER.index(name) if name in ORDER else len(ORDER))
    rows = ["| Fault class | Cases | What the user sees |", "| --- | ---: | --- |"]
    rows += [f"| {modules[n].FAULT_CLASS} | {cases[n]} | {modules[n].USER_SEES} |" for n in counted]
    rows.append(f"| **total** | **{sum(cases[name] for name in counted)}** | |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the table in the file is stale")
    document = README.read_text()
    updated = replace_block(document, "fault-table", table() + "\n")
    if not parser.parse_args().check:
        README.write_text(updated)
    elif updated != document:
        print(f"error: {README.relative_to(REPO)} is stale: run "
              "`python -m scripts.fault_table`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
