"""dvc.yaml declares exactly the code and params each stage reads: what makes caching right."""

import ast
import importlib

import pytest
import yaml

from scripts.toolkit import REPO
from stages.data import OUTPUTS

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def stage_imports(module: str, seen: set[str]) -> set[str]:
    """Files of the `stages` package that `module` imports, directly or not (itself included)."""
    path = f"stages/{module.removeprefix('stages.')}.py"
    if path not in seen:
        seen.add(path)
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages"):
                names = ([node.module] if node.module != "stages"
                         else [f"stages.{a.name}" for a in node.names])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("stages.")]
            for name in names:
                stage_imports(name, seen)
    return seen


@pytest.mark.parametrize("name", STAGES)
def test_dvc_yaml_declares_exactly_the_code_and_params_a_stage_reads_and_its_outputs(name):
    stage, module = STAGES[name], STAGES[name]["cmd"].removeprefix("python -m ")
    code = [d for d in stage["deps"] if d.startswith("stages/")]
    assert len(set(code)) == len(code), "a module is listed twice"
    assert set(code) == stage_imports(module, set())
    assert len(code) <= 5  # each stage reads at most five code files
    reads = getattr(importlib.import_module(module), "PARAMS", ())
    assert set(stage.get("params", [])) == set(reads)
    # stages/data.py names every output once (OUTPUTS): dvc.yaml declares the same paths.
    declared = [path if isinstance(path, str) else next(iter(path))
                for path in stage.get("outs", []) + stage.get("metrics", [])]
    assert declared == [str(path) for path in OUTPUTS[name]]
    assert list(STAGES) == list(OUTPUTS)
    # Its data: other stages' outputs as they name them, not a file inside one (dvc.yaml says why).
    data = {d for d in stage["deps"] if not d.startswith("stages/")}
    assert data <= {str(path) for paths in OUTPUTS.values() for path in paths}, data


def test_summary_is_the_one_metrics_file_and_every_other_output_is_cached():
    """Each figure shows once in `dvc metrics show`; every other output is cached, git-ignored."""
    metrics = {name: stage["metrics"] for name, stage in STAGES.items() if "metrics" in stage}
    assert metrics == {"summary": [{"metrics/summary.json": {"cache": False}}]}
    outs = [entry for stage in STAGES.values() for entry in stage.get("outs", [])]
    assert all(isinstance(entry, str) for entry in outs), outs  # no options: cached
    assert not any("plots" in stage for stage in STAGES.values())  # drawn by the top-level plots
    for folder in ("metrics", "plots"):
        ignored = sorted((REPO / folder / ".gitignore").read_text().split())
        inside = [path.removeprefix(folder) for path in outs if path.startswith(folder + "/")]
        assert ignored == sorted(inside)
    drawn = {path for plot in DVC_YAML["plots"]
             for path in ([plot] if isinstance(plot, str) else next(iter(plot.values()))["y"])}
    assert drawn == {path for path in outs if path.startswith("plots/")}
