"""Write the README's results and docs/params.md's table from the files they describe."""

import argparse
import json
import sys
from pathlib import Path

import yaml

from scripts.toolkit import REPO, default_params, replace_block
from stages.params import flatten
from stages.summary import SUMMARY_KEYS

# What the README calls each figure of metrics/summary.json, in its order (SUMMARY_KEYS).
FIGURES = dict(zip(SUMMARY_KEYS, (
    "SGD logistic regression, 5-fold CV accuracy",
    "Keras softmax layer, validation accuracy",
    "Keras softmax layer, test accuracy",
    "SGD logistic regression, the CV accuracy's standard deviation over the folds",
    "Keras softmax layer, training accuracy (last epoch)",
    "… training loss (last epoch)",
    "… validation loss",
    "… test loss",
), strict=True))


def results_table(summary: dict[str, float]) -> str:
    rows = [f"| {FIGURES[key]} | {summary[key]} |" for key in FIGURES]
    return "\n".join(["| figure (`metrics/summary.json`) | value |", "|---|---:|", *rows]) + "\n"


def params_table(params: dict, stages: dict) -> str:
    from stages.params import SCHEMA

    readers: dict[str, list[str]] = {}
    for stage, spec in stages.items():
        for key in spec.get("params", []):
            readers.setdefault(key, []).append(stage)
    rows = []
    for key, default in flatten(params).items():
        section, _, name = key.partition(".")
        field = SCHEMA[section].annotation.model_fields[name] if name else SCHEMA[section]
        shown = json.dumps(default) if not isinstance(default, str) else default
        read_by = ", ".join(readers[section])
        rows.append(f"| `{key}` | `{shown}` | {field.description} | {read_by} |")
    return "\n".join(["| key | default | allowed | read by |", "|---|---|---|---|", *rows]) + "\n"


def generated() -> dict[Path, str]:
    """Each document's text with its tables as the files they describe say."""
    readme, params_doc = REPO / "README.md", REPO / "docs" / "params.md"
    summary = json.loads((REPO / "metrics" / "summary.json").read_text())
    params = default_params()
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {
        readme: replace_block(readme.read_text(), "results", results_table(summary)),
        params_doc: replace_block(params_doc.read_text(), "params", params_table(params, stages)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a table is stale; write nothing")
    args = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"error: {path.relative_to(REPO)} is stale: run `python -m scripts.doc_tables`",
                  file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
