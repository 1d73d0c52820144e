#!/usr/bin/env python3
"""Run a few experiments on the full data in a scratch copy of the project; print a Markdown table.

    python scripts/experiments_table.py [EXPERIMENT ...] [--rev REV] [--source DIR] [--workdir DIR]

Each EXPERIMENT is one or more `dvc exp run -S` overrides separated by spaces, e.g. "epochs=10" or
"model.hidden=[100] model.dropout=0.2"; by default the README's three. The project's pipeline at
REV (default HEAD) is copied into a new Git repository (WORKDIR, else a temporary directory that is
removed at the end), reproduced with the params of REV (the original model, the baseline), then
each experiment runs with `dvc exp run --temp`. The table comes from `dvc exp show --json`:
nothing in it is typed by hand. The repository this script lives in is only read.
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml
from project_files import PROJECT_FILES  # this script's folder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENTS = ["epochs=10", "model.hidden=[100]", "model.optimizer=adam"]
COLUMNS = {  # column → key of metrics/summary.json
    "SGD CV acc": "sgd_cv_accuracy",
    "Keras val acc": "keras_val_accuracy",
    "Keras test acc": "keras_test_accuracy",
}


def run(cwd: Path, *args: str) -> str:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # dvc.yaml runs `python`
    env.update(GIT_AUTHOR_NAME="experiments", GIT_AUTHOR_EMAIL="experiments@localhost",
               GIT_COMMITTER_NAME="experiments", GIT_COMMITTER_EMAIL="experiments@localhost")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        sys.exit(f"error: `{' '.join(args)}` failed in {cwd}:\n{output}")
    return result.stdout


def dvc(cwd: Path, *args: str) -> str:
    sibling = Path(sys.executable).parent / "dvc"
    return run(cwd, str(sibling) if sibling.is_file() else "dvc", *args)


def copy_project(rev: str, workdir: Path, source: str | None, max_samples: int | None) -> None:
    """The pipeline files of `rev` in a new Git repository at `workdir`, with one commit."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, *PROJECT_FILES],
                             cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    if source is not None:  # only where the data comes from: the same files, checked by sha256
        params["download"]["sources"] = [source]
    if max_samples is not None:  # a quick trial of the script; the README's table uses all the data
        params["max_samples"] = max_samples
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(workdir, "git", "init", "-q")
    run(workdir, "git", "add", "-A")
    run(workdir, "git", "commit", "-qm", f"pipeline of {rev}")


def flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def show(value: object) -> str:
    return json.dumps(value) if isinstance(value, (list, dict, type(None), bool)) else str(value)


def rows(workdir: Path, names: list[str]) -> list[list[str]]:
    """One row for the baseline, then one per experiment in `names` order, from `dvc exp show --json`."""
    shown = json.loads(dvc(workdir, "exp", "show", "--json"))
    baseline = next(commit for commit in shown if commit["rev"] != "workspace")

    def cells(data: dict) -> tuple[dict, list[str]]:
        params = flatten(data["params"]["params.yaml"]["data"])
        summary = data["metrics"]["metrics/summary.json"]["data"]
        return params, [f"{summary[key]:.4f}" for key in COLUMNS.values()]

    base_params, base_cells = cells(baseline["data"])
    table = [["original model (baseline)", "—", *base_cells]]
    experiments = {e["name"]: e["revs"][0]["data"] for e in baseline.get("experiments") or []}
    for name in names:
        params, metrics = cells(experiments[name])
        changed = [f"`{k}={show(v)}`" for k, v in params.items() if base_params.get(k) != v]
        table.append([name, ", ".join(changed) or "none", *metrics])
    return table


def markdown(table: list[list[str]]) -> str:
    header = ["Experiment", "Params changed", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * len(COLUMNS)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def name_of(overrides: list[str]) -> str:
    """A Git-ref-safe experiment name from its overrides: model.hidden=[100] → hidden-100."""
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        value = "".join(c if c.isalnum() or c == "." else "-" for c in value).strip("-")
        parts.append(f"{key.rsplit('.', 1)[-1]}-{value}")
    return "_".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", default=DEFAULT_EXPERIMENTS,
                        help=f"overrides of one experiment, space-separated (default: {DEFAULT_EXPERIMENTS})")
    parser.add_argument("--rev", default="HEAD", help="the project's revision to measure (default: HEAD)")
    parser.add_argument("--source", help="the data's only source, e.g. /usr/share/datasets/fashion-mnist")
    parser.add_argument("--max-samples", type=int, help="a quick trial on fewer images (default: all)")
    parser.add_argument("--workdir", type=Path, help="keep the copy here (a new or empty directory)")
    args = parser.parse_args()

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            sys.exit(f"error: {args.workdir} is not empty")
        workdir = args.workdir.resolve()
    else:
        workdir = Path(tempfile.mkdtemp(prefix="fashion-mnist-experiments-"))
    try:
        copy_project(args.rev, workdir, args.source, args.max_samples)
        start = time.perf_counter()
        dvc(workdir, "repro")
        run(workdir, "git", "add", "-A")
        run(workdir, "git", "commit", "-qm", "baseline results")
        print(f"baseline: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        names = []
        for experiment in args.experiments:
            overrides = experiment.split()
            names.append(name_of(overrides))
            start = time.perf_counter()
            dvc(workdir, "exp", "run", "--temp", "-n", names[-1], *[a for o in overrides for a in ("-S", o)])
            print(f"{names[-1]}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        print(markdown(rows(workdir, names)), end="")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
