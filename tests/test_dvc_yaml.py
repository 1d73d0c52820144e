"""dvc.yaml declares exactly the code and params each stage reads: that is what makes caching right."""

import ast
import importlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Files of the `stages` package that `module` imports, directly or not (itself included)."""
    seen = set() if seen is None else seen
    path = f"stages/{module.removeprefix('stages.')}.py"
    if path in seen:
        return seen
    seen.add(path)
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stages"):
            names = [node.module] if node.module != "stages" else [f"stages.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("stages.")]
        for name in names:
            stage_imports(name, seen)
    return seen


@pytest.mark.parametrize("name", STAGES)
def test_code_deps_are_exactly_the_imported_modules(name):
    stage = STAGES[name]
    module = stage["cmd"].removeprefix("python -m ")
    declared = [d for d in stage["deps"] if d.startswith("stages/")]
    assert len(set(declared)) == len(declared), "a module is listed twice"
    assert set(declared) == stage_imports(module)


@pytest.mark.parametrize("name", STAGES)
def test_params_are_exactly_the_validated_keys(name):
    stage = STAGES[name]
    module = importlib.import_module(stage["cmd"].removeprefix("python -m "))
    assert set(stage.get("params", [])) == set(getattr(module, "PARAMS", ()))


def test_outputs_are_where_the_code_writes_them():
    """stages/data.py names every output once; dvc.yaml must declare the same paths, stage by stage."""
    from stages.data import OUTPUTS

    declared = {name: [path if isinstance(path, str) else next(iter(path))
                       for path in stage.get("outs", []) + stage.get("metrics", [])]
                for name, stage in STAGES.items()}
    assert declared == {name: [str(path) for path in paths] for name, paths in OUTPUTS.items()}


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_reads_at_most_five_code_files(name):
    assert len([d for d in STAGES[name]["deps"] if d.startswith("stages/")]) <= 5


def test_summary_is_the_one_metrics_file_and_every_other_output_is_cached():
    """`dvc metrics show` shows each figure once, from Git; every other output is restorable
    from DVC's cache and run-cache, and git-ignored (DVC's outputs are not Git's)."""
    metrics = {name: stage["metrics"] for name, stage in STAGES.items() if "metrics" in stage}
    assert metrics == {"summary": [{"metrics/summary.json": {"cache": False}}]}
    outs = []
    for stage in STAGES.values():
        assert "plots" not in stage  # plots are ordinary outputs, drawn by dvc.yaml's top-level plots
        for entry in stage.get("outs", []):
            assert isinstance(entry, str), entry  # no options: cached
            outs.append(entry)
    for folder in ("metrics", "plots"):
        ignored = (REPO / folder / ".gitignore").read_text().split()
        assert sorted(ignored) == sorted(f"/{path.removeprefix(folder + '/')}" for path in outs
                                         if path.startswith(folder + "/"))
    drawn = {path for plot in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
             for path in ([plot] if isinstance(plot, str) else next(iter(plot.values()))["y"])}
    assert drawn == {path for path in outs if path.startswith("plots/")}
