"""Benchmark a team's use of the local S3 store: a fresh clone, a pull, a sweep on two clones."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scripts.toolkit import REPO, Store, clone, copy_project, dvc, git
from stages.data import DEBIAN

SWEEP = [["-S", f"model.learning_rate={rate}"] for rate in (0.0005, 0.002, 0.004, 0.008)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def baseline(max_samples: int | None, epochs: int) -> float:
    cmd = [sys.executable, str(REPO / "bench/baseline.py"), "--epochs", str(epochs)]
    if max_samples:
        cmd += ["--max-samples", str(max_samples)]
    return timed(lambda: subprocess.run(cmd, cwd=REPO, check=True, capture_output=True))


def sweep(root: Path, experiments: list[list[str]], env: dict[str, str]) -> None:
    for args in experiments:
        dvc(root, "exp", "run", *args, env=env)


def run_team(work: Path, max_samples: int | None, epochs: int) -> list[tuple[str, str]]:
    """Measure the three figures once, in `work`; rows of (what, measured)."""
    with Store(work / "store") as store:
        env = store.env()
        params = {"epochs": epochs, "download.sources": [str(DEBIAN)]}
        if max_samples:
            params["max_samples"] = max_samples
        a = copy_project(work / "a", params, origin=work / "origin.git")
        dvc(a, "repro", env=env)
        git(a, "add", "-A")
        git(a, "commit", "-qm", "run")
        dvc(a, "push", "--run-cache", env=env)
        git(a, "push", "-q", "origin", "main")

        base = baseline(max_samples, epochs)
        fresh = clone(work / "origin.git", work / "fresh")
        up_to_date = timed(lambda: dvc(fresh, "repro", "--pull", "--allow-missing", env=env))
        empty = clone(work / "origin.git", work / "empty")
        pull = timed(lambda: dvc(empty, "pull", env=env))
        size = sum(p.stat().st_size for p in (empty / ".dvc/cache").rglob("*") if p.is_file())

        workers = [clone(work / "origin.git", work / f"w{i}") for i in range(3)]
        for w in workers:
            dvc(w, "pull", env=env)
        one = timed(lambda: sweep(workers[0], SWEEP, env))
        with ThreadPoolExecutor(2) as pool:
            two = timed(lambda: list(pool.map(lambda wa: sweep(wa[0], wa[1], env),
                                              [(workers[1], SWEEP[:2]), (workers[2], SWEEP[2:])])))
    return [
        ("baseline (bench/baseline.py)", f"{base:.1f} s"),
        ("fresh clone to up to date, ≤ 0.1 × baseline",
         f"{up_to_date:.1f} s, {up_to_date / base:.2f} ×"),
        ("`dvc pull` of every output, empty cache", (f"{pull:.1f} s, {size / 2**20:.0f} MiB, "
                                                    f"{size / 2**20 / pull:.0f} MiB/s")),
        ("sweep of 4 experiments: 2 clones in parallel / 1 clone",
         f"{two:.1f} s / {one:.1f} s = {two / one:.2f}"),
    ]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Team benchmarks against a local S3 store.")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="a smoke run on N samples (≥ 500)")
    parser.add_argument("--epochs", type=int, default=5)
    return parser


def figures(work: Path, max_samples: int | None, epochs: int) -> str:
    """The "Team storage" section of BENCHMARKS.md, measured in `work/team`."""
    root = work / "team"
    root.mkdir()
    rows = run_team(root, max_samples, epochs)
    data = f"max_samples={max_samples}" if max_samples else "the real data"
    lines = ["", "", "## Team storage", "",
             f"One local rclone S3 store on 127.0.0.1 ({data}, {epochs} epoch(s)).", "",
             "| measure | result |", "|---|---|",
             *(f"| {what} | {measured} |" for what, measured in rows)]
    return "\n".join(lines)


def main() -> int:
    arguments = parser()
    args = arguments.parse_args()  # --help, an unknown option, a bad value: before any work
    if args.max_samples is not None and args.max_samples < 500:
        arguments.error("--max-samples must be at least 500 (params.yaml's limit)")
    work = Path(tempfile.mkdtemp(prefix="bench-team-"))
    try:
        print(figures(work, args.max_samples, args.epochs).strip())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
