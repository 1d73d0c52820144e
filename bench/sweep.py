"""Benchmark an 8-experiment grid on DVC's queue against `python -m sweep` into bench/SWEEP.md."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import psutil

from scripts.toolkit import (
    REPO,
    VENV_BIN,
    Store,
    copy_project,
    dvc,
    exp_show,
    module_output,
    processes_in,
    venv_env,
    write_block,
)
from stages.data import DEBIAN
from stages.summary import HEADLINE

GRID = ["-S", "epochs=3,5", "-S", "model.optimizer=rmsprop,adam", "-S", "model.hidden=[],[100]"]
KEYS = ("epochs", "model.optimizer", "model.hidden")
TARGETS = {"b": 1.1, "c": 0.2}
OUT = REPO / "bench" / "SWEEP.md"


class Phase:
    """Wall time of a block, and how busy the machine's cores were meanwhile (ours and others')."""

    def __enter__(self) -> Self:
        self.cpu, self.start = psutil.cpu_times(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.start
        now = psutil.cpu_times()
        busy = sum(getattr(now, f) - getattr(self.cpu, f)
                   for f in ("user", "nice", "system", "irq", "softirq"))
        self.busy = busy / (self.wall * psutil.cpu_count())
        self.load = os.getloadavg()[0]


def by_params(project: Path, env: dict[str, str]) -> dict[tuple, dict]:
    """Metrics of the project's experiments, by their (epochs, optimizer, hidden)."""
    return {tuple(str(e.params[k]) for k in KEYS): e.metrics
            for e in exp_show(project, env=env) if e.name}


def queue(project: Path, env: dict[str, str]) -> None:
    """(a): queue the grid, start 2 workers, wait until every worker has exited."""
    dvc(project, "exp", "run", "--queue", *GRID, env=env)
    # Not through run(): the workers would inherit its output pipes, and reading them would wait.
    subprocess.run([str(VENV_BIN / "dvc"), "queue", "start", "-j", "2"], cwd=project,
                   env=venv_env(env), check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = False
    while True:  # the workers are daemons, not our children: watch the process table
        workers = processes_in(project, "queue-worker")
        seen = seen or bool(workers)
        if seen and not workers:
            return
        time.sleep(0.5)


def sweep(project: Path, env: dict[str, str]) -> str:
    """`python -m sweep GRID --workers 2`'s output."""
    return module_output(project, "sweep", *GRID, "--workers", "2", env=env, timeout=3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-samples", type=int, help="default: all the data")
    parser.add_argument("--work", type=Path, help="a directory to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    params = {"download.sources": [str(DEBIAN)],
              **({"max_samples": args.max_samples} if args.max_samples else {})}
    started = datetime.datetime.now(datetime.UTC)
    with Store(work / "store") as store:
        env = store.env()
        queued = copy_project(work / "queue", params)  # (a) has no store: it computes everything
        with Phase() as a:
            queue(queued, env)
        user = copy_project(work / "user", params, origin=work / "origin.git")
        sweep_env = store.sweep_env(work / "clones")
        with Phase() as b:
            out_b = sweep(user, sweep_env)
        with Phase() as c1:
            out_c1 = sweep(user, sweep_env)
        with Phase() as c2:
            out_c2 = sweep(user, store.sweep_env(work / "new-clones"))
        metrics = {"a": by_params(queued, env)}
        shown = exp_show(user, env=env)
    names = {key: re.findall(r"\] (\S+) done in", out)
             for key, out in (("b", out_b), ("c1", out_c1), ("c2", out_c2))}
    for key, found in names.items():
        metrics[key] = {tuple(str(e.params[k]) for k in KEYS): e.metrics
                        for e in shown if e.name in found}
    equal = all(len(m) == 8 and m == metrics["a"] for m in metrics.values())
    per_experiment = [float(s) for s in re.findall(r"done in (\d+) s", out_b)]
    mean = sum(per_experiment) / len(per_experiment)
    overhead = max(0.0, b.wall - sum(per_experiment) / 2)  # start, pull, table: not experiments
    # Rerun at most `summary` (a worker's own run-cache may hold even that one), the rest restored.
    restored = [len(re.findall(r"\(ran (?:summary|no stage); [67] restored\)", out))
                for out in (out_c1, out_c2)]
    data = (f"max_samples {args.max_samples}" if args.max_samples
            else "the real data (60,000 + 10,000 images)")
    rows = [("(a) `dvc exp run --queue` + `dvc queue start -j 2`", a, ""),
            ("(b) `python -m sweep --workers 2`", b,
             f"{b.wall / a.wall:.2f} × (a) (target ≤ {TARGETS['b']})"),
            ("(c1) the same sweep again, same workers' clones", c1,
             f"{c1.wall / a.wall:.2f} × (a) (target ≤ {TARGETS['c']}); "
             f"{restored[0]}/8 reran nothing but summary"),
            ("(c2) the same sweep again, new clones (all from the store)", c2,
             f"{c2.wall / a.wall:.2f} × (a); {restored[1]}/8 reran nothing but summary")]
    options = f" --max-samples {args.max_samples}" if args.max_samples else ""
    estimates = ", ".join(f"N={n}: ~{math.ceil(8 / n) * mean + overhead:.0f} s" for n in (2, 4, 8))
    lines = [(f"Produced by `python -m bench.sweep{options}` on {started:%Y-%m-%d %H:%M} UTC, "
              f"{data}; grid `{' '.join(GRID)}` (8 experiments); {os.cpu_count()} cores, one run "
              "of each (no repetition)."),
             "",
             ("The machine was shared with other work during the run: *busy* is how much of its "
              "cores were used meanwhile (this run's processes and everyone else's), *load* the "
              "1-minute load average at the end."),
             "",
             "| run | wall (s) | busy | load | vs (a) |",
             "|---|---:|---:|---:|---|",
             *(f"| {what} | {p.wall:.1f} | {p.busy:.0%} | {p.load:.1f} | {ratio} |"
               for what, p, ratio in rows),
             "",
             ("Equal metrics (every value of metrics/summary.json) for all 8 experiments in (a), "
              f"(b), (c1), (c2): **{'yes' if equal else 'NO'}**."),
             "",
             ("Per experiment in (b), on a worker (clone, `dvc exp run --pull`, `dvc exp push`), "
              f"two at a time: mean {mean:.1f} s, min {min(per_experiment):.0f} s, "
              f"max {max(per_experiment):.0f} s."),
             "",
             ("**ESTIMATE, not a measurement**: on N machines like this one, one worker each, the "
              "sweep of 8 would take about ceil(8 / N) × the per-experiment time plus the "
              f"cluster's start and the final `dvc exp pull`: {estimates} (the mean above was "
              "measured two to a 2-core machine; alone on one it would be shorter)."),
             "",
             "| experiment (epochs, optimizer, hidden) | " + " | ".join(HEADLINE) + " |",
             "|---|" + "---:|" * len(HEADLINE),
             *(f"| {', '.join(key)} | "
               + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in HEADLINE) + " |"
               for key, m in sorted(metrics["b"].items()))]
    write_block(OUT, "sweep", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
