"""The docs' generated tables are what their generators write, and their links lead somewhere."""

import json
import re

from scripts import doc_tables
from scripts.toolkit import REPO, run
from stages.summary import HEADLINE


def test_generated_tables_are_not_stale():
    # README's results from metrics/summary.json, docs/params.md's table from the params schema.
    assert doc_tables.main(["--check"]) == 0, "run `python -m scripts.doc_tables`"
    # The fault table of tests/reliability/README.md collects the suite: in a process of its own.
    result = run(REPO, "python", "-m", "scripts.fault_table", "--check",
                 env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


def test_the_experiments_table_starts_from_the_committed_results():
    # `python -m scripts.experiments_table --readme` writes it from real runs: a stale baseline
    # row fails.
    readme = (REPO / "README.md").read_text()
    baseline = re.search(r"<!-- experiments:start -->.*?^(\| original model[^\n]*)", readme,
                         re.M | re.S)[1]
    summary = json.loads((REPO / "metrics/summary.json").read_text())
    expected = [f"{summary[key]:.4f}" for key in HEADLINE]
    assert [cell.strip() for cell in baseline.strip("|").split("|")][2:] == expected, baseline


def test_every_relative_link_of_the_docs_exists():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), \
                f"{doc.relative_to(REPO)} links to a missing {target}"
