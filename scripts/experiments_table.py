"""Run experiments on the full data in a copy of the project; print their table from exp show."""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scripts.toolkit import REPO, CommandFailed, copy_project, dvc, exp_show, git, write_block
from stages.data import DEBIAN
from stages.summary import HEADLINE

DEFAULT_EXPERIMENTS = ["epochs=10", "model.hidden=[100]", "model.optimizer=adam"]
# The table's columns: each headline figure of metrics/summary.json and its short label.
COLUMNS = dict(zip(HEADLINE, ("SGD CV acc", "Keras val acc", "Keras test acc"), strict=True))


def show(value: object) -> str:
    return json.dumps(value) if isinstance(value, (list, dict, type(None), bool)) else str(value)


def rows(workdir: Path, names: list[str]) -> list[list[str]]:
    """A row for the baseline, then one per experiment in `names` order, from `dvc exp show`."""
    shown = exp_show(workdir)
    baseline = shown[0]  # the commit the experiments ran from

    def cells(metrics: dict) -> list[str]:
        return [f"{metrics[key]:.4f}" for key in COLUMNS]

    table = [["original model (baseline)", "—", *cells(baseline.metrics)]]
    experiments = {e.name: e for e in shown if e.name}
    for name in names:
        params = experiments[name].params
        changed = [f"`{k}={show(v)}`" for k, v in params.items() if baseline.params.get(k) != v]
        table.append([name, ", ".join(changed) or "none", *cells(experiments[name].metrics)])
    return table


def markdown(table: list[list[str]]) -> str:
    header = ["Experiment", "Params changed", *COLUMNS.values()]
    rule = "|" + "|".join(["---", "---"] + ["---:"] * len(COLUMNS)) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
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
                        help="one experiment's `dvc exp run -S` overrides, space-separated, "
                             "e.g. 'model.hidden=[100] model.dropout=0.2' "
                             f"(default: {DEFAULT_EXPERIMENTS})")
    parser.add_argument("--rev", default="HEAD",
                        help="the project's revision to measure (default: HEAD)")
    parser.add_argument("--source", help=f"the data's only source, e.g. {DEBIAN}")
    parser.add_argument("--max-samples", type=int,
                        help="a quick trial on fewer images (default: all)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the copy here (a new or empty directory)")
    parser.add_argument("--readme", action="store_true",
                        help="write the table into README.md (between its experiments markers)")
    args = parser.parse_args()

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            sys.exit(f"error: {args.workdir} is not empty")
        workdir = args.workdir.resolve()
    else:
        workdir = Path(tempfile.mkdtemp(prefix="fashion-mnist-experiments-"))
    try:
        params = {"download.sources": [args.source]} if args.source else {}
        if args.max_samples is not None:  # a trial of the script; the README's uses all the data
            params["max_samples"] = args.max_samples
        copy_project(workdir, params, rev=args.rev)
        start = time.perf_counter()
        dvc(workdir, "repro")
        git(workdir, "add", "-A")
        git(workdir, "commit", "-qm", "baseline results")
        print(f"baseline: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        names = []
        for experiment in args.experiments:
            overrides = experiment.split()
            names.append(name_of(overrides))
            start = time.perf_counter()
            sets = [arg for override in overrides for arg in ("-S", override)]
            dvc(workdir, "exp", "run", "--temp", "-n", names[-1], *sets)
            print(f"{names[-1]}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        table = markdown(rows(workdir, names))
        if args.readme:
            write_block(REPO / "README.md", "experiments", table)
        else:
            print(table, end="")
    except CommandFailed as error:
        sys.exit(f"error: {error}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
