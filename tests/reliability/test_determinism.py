"""Determinism: the same params give the same bytes, and a no-op `dvc repro` touches nothing.

The run from scratch also shows how every output is written: whole or not at all, at any stop."""

import fnmatch
import json
import shutil
from pathlib import Path

import pytest

from scripts.toolkit import STAGES, digests, dvc, run, snapshot, stages_command, temporaries
from stages.data import OUTPUTS, remove

FAULT_CLASS = "determinism: a rerun"
USER_SEES = (
    "byte-identical metrics, model, data and plots from two runs from scratch, each output put in "
    "place by one rename of a hidden temporary beside it; "
    "`Data and pipelines are up to date.` and not one file changed by a no-op `dvc repro`"
)
# Python's audit hooks (sys.addaudithook) log every file the stages open for writing and every
# rename, as absolute paths, in the project (the working directory) only.
AUDITING = """
import os, sys
log, root = open({log!r}, "w", buffering=1), os.getcwd() + os.sep
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def audit(event, args):
    if event == "open" and not isinstance(args[0], int) and args[2] & WRITES:
        kind, names = "write", args[:1]
    elif event == "os.rename":
        kind, names = "rename", args[:2]
    else:
        return
    names = [os.path.abspath(os.fsdecode(name)) for name in names]
    if names[-1].startswith(root):
        log.write("\\t".join([kind, *names]) + "\\n")

sys.addaudithook(audit)
"""


@pytest.fixture(scope="module")
def from_scratch(reference: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, list[list[str]]]:
    """A copy of the reference, its outputs removed, every stage run again; and the audit log.

    In one fresh process, as `python -m stages.<name>` runs each there."""
    root = tmp_path_factory.mktemp("from-scratch")
    project = shutil.copytree(reference, root / "project", symlinks=True).resolve()
    for path in (path for outputs in OUTPUTS.values() for path in outputs):
        remove(project / path)
    assert digests(project) == {}
    prelude = AUDITING.format(log=str(root / "audit.log"))
    run(project, *stages_command(*STAGES, prelude=prelude), check=True)
    return project, [line.split("\t") for line in (root / "audit.log").read_text().splitlines()]


def test_two_runs_from_scratch_give_identical_outputs(reference, from_scratch):
    """The same bytes as the reference's, the ones dvc.lock records (`dvc status` has nothing)."""
    project, _ = from_scratch
    first, second = digests(reference), digests(project)
    assert {"data/model.keras", "metrics/summary.json", "plots/misclassified.png"} <= set(first)
    different = {path for path in first if first[path] != second.get(path)}  # dates not saved
    assert different == set() and set(first) == set(second), different
    assert json.loads(dvc(project, "status", "--json").stdout) == {} and temporaries(project) == []


def test_every_output_is_put_in_place_by_one_rename_of_a_temporary_beside_it(from_scratch):
    """Never opened for writing under its own name (nor a file in it): a stop leaves it whole or
    absent, the hidden temporary being all a stop can cut short."""
    project, log = from_scratch
    outputs = [project / path for paths in OUTPUTS.values() for path in paths]

    def output_of(path: Path) -> Path | None:
        return next((out for out in outputs if out == path or out in path.parents), None)

    written = [Path(line[1]) for line in log if line[0] == "write"]
    renames = [(Path(line[1]), Path(line[2])) for line in log if line[0] == "rename"]
    assert written and renames, "the audit hook logged nothing"
    assert [path for path in written if output_of(path)] == []
    for out in outputs:
        onto = [rename for rename in renames if output_of(rename[1]) == out]
        assert [target for _, target in onto] == [out], (out, onto)  # one rename, onto itself
        source = onto[0][0]
        assert source.parent == out.parent, source
        assert fnmatch.fnmatch(source.name, f".{out.stem}-tmp-*{out.suffix}"), source


def test_a_noop_repro_changes_nothing_on_disk(reference, tmp_path):
    project = shutil.copytree(reference, tmp_path / "project", symlinks=True)
    # .dvc/tmp is DVC's own scratch space (its lock files, the hash cache), not the project's.
    ignore = (".git", "__pycache__", "tmp")
    before = snapshot(project, ignore)
    result = dvc(project, "repro")
    assert "Data and pipelines are up to date." in result.stdout, result.stdout
    assert "Running stage" not in result.stdout
    assert snapshot(project, ignore) == before
