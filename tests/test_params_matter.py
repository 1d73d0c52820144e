"""Each param a stage declares is read by it, and another `seed` changes every output it seeds."""

import ast
import shutil

import numpy as np
import pytest
import yaml

from scripts.toolkit import REPO, dvc, ran_stages, set_params
from tests.test_dvc_yaml import STAGES

# What dvc.yaml gives `seed`, and what reads their outputs: what another seed reruns, in order.
SEEDED = ["split", "sgd_cv", "train", "evaluate", "summary"]
# Each seeded stage's outputs that another seed must change (the plots follow from these).
CHANGED = ("data/split/train_idx.npy", "data/split/val_idx.npy", "metrics/sgd_cv.json",
           "data/model.keras", "metrics/train.json", "metrics/evaluate.json",
           "metrics/summary.json")


def params_read(module: str) -> tuple[bool, set[str]]:
    """Whether `module` loads its PARAMS (`p = params.load(*PARAMS)`), and the keys read of p."""
    tree = ast.parse((REPO / f"{module.replace('.', '/')}.py").read_text())
    loaded = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
              for target in node.targets if isinstance(target, ast.Name)
              and ast.unparse(node.value) == "params.load(*PARAMS)"}
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id in loaded}
    return bool(loaded), read


@pytest.mark.parametrize("name", [name for name in STAGES if "params" in STAGES[name]])
def test_a_stage_reads_every_param_dvc_yaml_gives_it(name):
    """dvc.yaml's params of a stage (its PARAMS: test_dvc_yaml.py) are each read by its module."""
    loads, read = params_read(STAGES[name]["cmd"].removeprefix("python -m "))
    assert loads and read == set(STAGES[name]["params"]), read


def test_another_seed_reruns_what_it_seeds_and_changes_each_output(reference, tmp_path):
    """`seed` + 1 in a copy of the reference: `dvc repro` reruns SEEDED; each of CHANGED differs."""
    # The same seed gives the same bytes: tests/reliability/test_determinism.py.
    project = shutil.copytree(reference, tmp_path / "project", symlinks=True)
    seed = yaml.safe_load((project / "params.yaml").read_text())["seed"]
    set_params(project, {"seed": seed + 1})
    out = dvc(project, "repro").stdout
    assert ran_stages(out) == SEEDED, out
    differ = [path for path in CHANGED
              if (project / path).read_bytes() != (reference / path).read_bytes()]
    assert differ == list(CHANGED)
    # Other rows for validation, as many: the split's sizes come from split.test_size alone.
    val, reference_val = (np.load(root / "data/split/val_idx.npy") for root in (project, reference))
    assert len(val) == len(reference_val) and set(val) != set(reference_val)
