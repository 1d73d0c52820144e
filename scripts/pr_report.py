"""A Markdown report of what the workspace changes against a revision: params, metrics, plots."""

import argparse
import json
import sys
from pathlib import Path

from scripts.toolkit import run
from stages.data import SUMMARY_METRICS

SUMMARY = str(SUMMARY_METRICS)


class ReportError(Exception):
    pass


def output(*args: str) -> str:
    """The stdout of the venv's `dvc ARGS` or `git ARGS` in the current directory (toolkit.run)."""
    result = run(Path.cwd(), *args)
    if result.returncode != 0:
        why = result.stderr.strip() or result.stdout.strip()
        raise ReportError(f"`{' '.join(args)}` failed:\n{why}")
    return result.stdout.strip()


def check_revision(base: str) -> str:
    """The commit BASE names, or a clear error (e.g. a shallow clone without the base branch)."""
    try:
        return output("git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except ReportError:
        raise ReportError(
            f"unknown revision {base!r}: fetch it first "
            "(in CI: actions/checkout with fetch-depth: 0)"
        ) from None


def plot_versions(base: str, images_dir: Path) -> dict[str, dict[str, object]]:
    """{plot id: {revision: its data (rows) or image path}} for each plot dvc.yaml declares."""
    shown = output("dvc", "plots", "diff", base, "--json", "--out", str(images_dir))
    data = json.loads(shown)["data"]
    plots = {}
    for name, renders in data.items():
        versions: dict[str, object] = {}
        for render in renders:
            if render["type"] == "image":
                versions[render["revisions"][0]] = Path(render["url"])
            else:  # a Vega-Lite spec holding every revision's rows, each with its `rev`
                for row in render["content"]["data"]["values"]:
                    row = dict(row)
                    versions.setdefault(row.pop("rev", ""), []).append(sorted(row.items()))
        plots[name] = versions
    return plots


def differs(versions: dict[str, object]) -> bool:
    contents = [v.read_bytes() if isinstance(v, Path) else v for v in versions.values()]
    return len(contents) < 2 or any(c != contents[0] for c in contents[1:])


def rows(table: str) -> int:
    """Rows of a Markdown table dvc printed (only a header when nothing changed)."""
    return max(0, len(table.splitlines()) - 2)


def report(base: str, plots_dir: Path, plots_url: str | None) -> str:
    commit = check_revision(base)
    lines = [f"## DVC report: `{base}` ({commit[:7]}) → this branch's workspace", ""]

    params = output("dvc", "params", "diff", base, "--md")
    lines += ["### Params", "", params if rows(params) else "No params changed.", ""]

    summary = output("dvc", "metrics", "diff", base, "--md", "--all", "--targets", SUMMARY)
    lines += ["### Metrics", "",
              summary if rows(summary) else f"No {SUMMARY} in either revision.", ""]
    changed = output("dvc", "metrics", "diff", base, "--md")
    if rows(changed):
        summary_line = f"<details><summary>All changed metrics ({rows(changed)})</summary>"
        lines += [summary_line, "", changed, "", "</details>", ""]
    else:
        lines += ["No metric changed.", ""]

    plots_dir.mkdir(parents=True, exist_ok=True)
    output("dvc", "plots", "diff", base, "--out", str(plots_dir))
    plots = plot_versions(base, plots_dir / "images")
    lines += ["### Plots", ""]
    for name, versions in plots.items():
        lines.append(f"- {name}: {'changed' if differs(versions) else 'unchanged'}")
    lines.append("")
    if plots_url:
        lines.append(f"`{base}` and this branch overlaid: [download the plots]({plots_url}), "
                     "open `index.html`.")
    else:
        index = plots_dir / "index.html"
        lines += [f"`{base}` and this branch overlaid: [{index}]({index.resolve().as_uri()})", ""]
        for name, versions in plots.items():
            base_first = sorted(versions.items(), key=lambda item: item[0] != base)
            images = {rev: path for rev, path in base_first if isinstance(path, Path)}
            if images and differs(versions):
                pictures = " | ".join(f"![{rev}]({path})" for rev, path in images.items())
                lines += [f"**{name}**", "", "| " + " | ".join(images) + " |",
                          "|" + "---|" * len(images), f"| {pictures} |", ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", default="main",
                        help="Git revision to compare with (default: main)")
    parser.add_argument("--plots-dir", type=Path, default=Path(".dvc/tmp/pr-plots"),
                        help="where to render the plots (default: .dvc/tmp/pr-plots)")
    parser.add_argument("--plots-url",
                        help="where the plots directory is published, for the comment's link")
    args = parser.parse_args()
    try:
        print(report(args.base, args.plots_dir, args.plots_url), end="")
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
