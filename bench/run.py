"""Benchmark the DVC pipeline against the plain script (bench/baseline.py) into BENCHMARKS.md."""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from scripts.toolkit import REPO, VENV_BIN, copy_project, replace_block
from stages.data import rounded
from stages.summary import HEADLINE

PYTHON = Path(sys.executable)  # the venv's python: bench.run runs in it
BIN = VENV_BIN
GIB = 1 << 30
TARGETS = {"cold": 1.0, "exp": 0.45, "noop_s": 1.0, "rss": GIB}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure(cmd: list[str], cwd: Path, env: dict[str, str], out: Path) -> dict:
    """Run `cmd` (output to `out`): wall, CPU and peak RSS of it and its descendants, its output."""
    with open(out, "w") as f:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    text = out.read_text()
    if child.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {child.returncode}) in {cwd}:\n{text[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss": usage.ru_maxrss * 1024,
            "output": text}


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        shim = work / "shim" / "python"
        shim.parent.mkdir()
        timer = REPO / "bench" / "stage_timer.py"
        shim.write_text(f'#!/bin/sh\nexec "{PYTHON}" -I -S "{timer}" "$@"\n')
        shim.chmod(0o755)
        self.stage_log = work / "stages.jsonl"
        self.stage_log.touch()
        path = os.pathsep.join([str(shim.parent), str(BIN), os.environ["PATH"]])
        self.env = {**os.environ, "PATH": path, "BENCH_REAL_PYTHON": str(PYTHON),
                    "BENCH_STAGE_LOG": str(self.stage_log)}
        self.env.pop("PYTHONPATH", None)
        runs = ("baseline", "baseline_exp", "cold", "noop", "exp", "keras_import")
        self.results: dict[str, list[dict]] = {name: [] for name in runs}
        self.metrics: list[dict[str, bytes]] = []  # every metrics/*.json of each cold run

    def baseline(self, epochs: int, i: int) -> dict:
        cmd = [str(PYTHON), str(REPO / "bench" / "baseline.py"), "--epochs", str(epochs)]
        if self.args.max_samples:
            cmd += ["--max-samples", str(self.args.max_samples)]
        run = measure(cmd, REPO, self.env, self.work / f"baseline-{epochs}-{i}.log")
        result = {**json.loads(run.pop("output").rsplit("RESULT ", 1)[1]), **run}
        log(f"baseline, {epochs} epochs: {run['wall']:.1f} s")
        return result

    def project(self, i: int) -> Path:
        """A fresh copy of the project: its own git repository, an empty DVC cache."""
        return copy_project(self.work / f"project-{i}",
                            {"max_samples": self.args.max_samples, "epochs": self.args.epochs})

    def dvc(self, root: Path, *args: str, label: str) -> dict:
        """Run dvc in `root`: the run's figures and, from the shim's log, each stage's."""
        before = len(self.stage_log.read_text().splitlines())
        run = measure([str(BIN / "dvc"), *args], root, self.env, self.work / f"{label}.log")
        del run["output"]
        logged = self.stage_log.read_text().splitlines()[before:]
        run["stages"] = [json.loads(line) for line in logged]
        for s in run["stages"]:
            s["stage"] = s["argv"][-1].removeprefix("stages.")
        log(f"dvc {' '.join(args)}: {run['wall']:.2f} s, stages: "
            + (", ".join(f"{s['stage']} {s['wall']:.1f} s" for s in run["stages"]) or "none"))
        return run

    def round(self, i: int) -> None:
        a, r = self.args, self.results
        r["baseline"].append(self.baseline(a.epochs, i))
        root = self.project(i)
        r["cold"].append(self.dvc(root, "repro", "-f", label=f"cold-{i}"))
        r["cold"][-1].update(json.loads((root / "metrics" / "summary.json").read_text()))
        reports = sorted((root / "metrics").glob("*.json"))
        self.metrics.append({path.name: path.read_bytes() for path in reports})
        r["noop"].append(self.dvc(root, "repro", label=f"noop-{i}"))
        r["exp"].append(self.dvc(root, "exp", "run", "-S", f"epochs={a.exp_epochs}",
                                 label=f"exp-{i}"))
        r["exp"][-1].update(json.loads((root / "metrics" / "summary.json").read_text()))
        r["noop"].append(self.dvc(root, "repro", label=f"noop-after-exp-{i}"))
        r["baseline_exp"].append(self.baseline(a.exp_epochs, i))
        run = measure([str(PYTHON), "-c", "import keras"], REPO, self.env,
                      self.work / f"keras-{i}.log")
        del run["output"]
        r["keras_import"].append(run)
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


# -- the figures ----------------------------------------------------------------------------------

def med(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def each(runs: list[dict], key: str, digits: int) -> str:
    return ", ".join(f"{run[key]:.{digits}f}" for run in runs)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def met(flag: bool) -> str:
    return "met" if flag else "**NOT met**"


def run_row(label: str, runs: list[dict], ratio: str, digits: int = 1) -> list[str]:
    return [label, f"{med(runs, 'wall'):.{digits}f}", each(runs, "wall", digits), ratio,
            f"{med(runs, 'cpu'):.{digits}f}", f"{max(run['maxrss'] for run in runs) / GIB:.2f}"]


def stage_rows(runs: list[dict]) -> list[list[str]]:
    """One row per stage, in the order DVC ran them, and one for DVC's own time."""
    by_stage: dict[str, list[dict]] = {}
    for run in runs:
        for s in run["stages"]:
            by_stage.setdefault(s["stage"], []).append({**s, "cpu": s["user"] + s["sys"]})
    rows = [[name, f"{med(s, 'wall'):.2f}", each(s, "wall", 2), f"{med(s, 'cpu'):.2f}",
             f"{max(x['maxrss'] for x in s) / GIB:.2f}"] for name, s in by_stage.items()]
    in_stages = sum(med(s, "wall") for s in by_stage.values())
    dvc_itself = f"{med(runs, 'wall') - in_stages:.2f}"
    return rows + [["*DVC itself* (run − stages)", dvc_itself, "", "", ""]]


def machine() -> list[list[str]]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               "unknown")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = []
    for name in ("dvc", "scikit-learn", "tensorflow-cpu", "keras", "numpy"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return [["CPU", f"{cpu}, {os.cpu_count()} cores"], ["memory", f"{memory / GIB:.1f} GiB"],
            ["system", f"Linux {platform.release()}, Python {platform.python_version()}"],
            ["packages", ", ".join(versions)]]


def machine_cpu_seconds() -> float:
    """CPU seconds every process of the machine has used since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children: everything measured."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def figures(bench: Bench, started: datetime.datetime, others: dict) -> str:
    a, r = bench.args, bench.results
    base, base_exp, cold, exp, noop = (r[k] for k in ("baseline", "baseline_exp", "cold", "exp",
                                                      "noop"))
    ratio = med(cold, "wall") / med(base, "wall")
    exp_ratio = med(exp, "wall") / med(base_exp, "wall")
    noop_ran = sum(len(n["stages"]) for n in noop)
    stages = [(s["maxrss"], s["stage"]) for run in cold + exp for s in run["stages"]]
    rss, rss_stage = max(stages)
    # (baseline runs, pipeline runs, metric, epochs): the cold run's metrics, then the experiment's.
    pairs = [(b_runs, p_runs, k, epochs) for b_runs, p_runs, epochs in
             ((base, cold, a.epochs), (base_exp, exp, a.exp_epochs)) for k in HEADLINE]
    # The pipeline writes metrics at their stated precision (stages.data.rounded): so is the
    # baseline compared.
    equal = [all(rounded(b[k], k) == p[k] for b, p in zip(b_runs, p_runs, strict=True))
             for b_runs, p_runs, k, _ in pairs]
    data = (f"a smoke sample (max_samples={a.max_samples})" if a.max_samples
            else "the real data (60,000 + 10,000 images)")
    busy = others["cpu"] / others["wall"]

    lines = [
        (f"Produced by `{' '.join(['python -m bench.run', *sys.argv[1:]])}` on "
         f"{started:%Y-%m-%d %H:%M} UTC on {data}; {a.runs} round(s), figures are medians."),
        "",
        *table(["machine", ""], machine() + [[
            "other processes' CPU during the run",
            f"{others['cpu']:.0f} CPU-s in {others['wall']:.0f} s ({busy:.0%} of one core)"]]),
        "## Targets",
        "",
        *table(["target", "measured", ""], [
            [f"cold `dvc repro -f` ≤ {TARGETS['cold']} × baseline",
             f"{med(cold, 'wall'):.1f} s / {med(base, 'wall'):.1f} s = **{ratio:.2f} ×**",
             met(ratio <= TARGETS["cold"])],
            [(f"`dvc exp run -S epochs={a.exp_epochs}` ≤ {TARGETS['exp']} × baseline "
              f"at {a.exp_epochs} epochs"),
             f"{med(exp, 'wall'):.1f} s / {med(base_exp, 'wall'):.1f} s = **{exp_ratio:.2f} ×**",
             met(exp_ratio <= TARGETS["exp"])],
            [f"no-op `dvc repro` ≤ {TARGETS['noop_s']:.0f} s, nothing rerun",
             f"**{med(noop, 'wall'):.2f} s**; {noop_ran} stages ran in {len(noop)} runs",
             met(med(noop, "wall") <= TARGETS["noop_s"] and noop_ran == 0)],
            ["every stage's peak RSS ≤ 1 GiB", f"largest **{rss / GIB:.2f} GiB** ({rss_stage})",
             met(rss <= TARGETS["rss"])],
            ["accuracies equal to the baseline's",
             f"{sum(equal)} of {len(equal)} equal in every round", met(all(equal))],
        ]),
        (f"metrics/*.json byte-identical across the {len(bench.metrics)} cold run(s): "
         f"**{'yes' if all(m == bench.metrics[0] for m in bench.metrics) else 'NO'}**."),
        "",
        "## Wall time (s)",
        "",
        ("CPU: user + system seconds of the process and its descendants. Peak RSS: the largest "
         "single process of the tree."),
        "",
        *table(["run", "median", "runs", "ratio to its baseline", "CPU s", "peak RSS GiB"], [
            run_row(f"baseline, {a.epochs} epochs", base, "1"),
            run_row("cold `dvc repro -f`", cold, f"{ratio:.2f}"),
            run_row("no-op `dvc repro`", noop, "", digits=2),
            run_row(f"baseline, {a.exp_epochs} epochs", base_exp, "1"),
            run_row(f"`dvc exp run -S epochs={a.exp_epochs}` after the cold run", exp,
                    f"{exp_ratio:.2f}"),
            run_row('`python -c "import keras"`', r["keras_import"], ""),
        ]),
        "Inside the baseline, by its own clock:",
        "",
        *table(["part", "median", "runs"], [
            ["cross-validation", f"{med(base, 'cv_wall'):.1f}", each(base, "cv_wall", 1)],
            [f"Keras fit, {a.epochs} epochs", f"{med(base, 'fit_wall'):.1f}",
             each(base, "fit_wall", 1)],
            [f"Keras fit, {a.exp_epochs} epochs", f"{med(base_exp, 'fit_wall'):.1f}",
             each(base_exp, "fit_wall", 1)],
        ]),
    ]
    for title, runs in (("cold `dvc repro -f`", cold),
                        (f"`dvc exp run -S epochs={a.exp_epochs}`", exp)):
        lines += [f"## Stages of {title}", "",
                  *table(["stage", "wall s", "runs", "CPU s", "peak RSS GiB"], stage_rows(runs))]
    lines += [
        "## Accuracy",
        "",
        "Pipeline: metrics/summary.json of each run.",
        "",
        *table(["metric", "epochs", "baseline", "pipeline", "equal in every round",
                "runs: baseline / pipeline"],
               [[k, str(epochs), f"{med(b_runs, k):.4f}", f"{med(p_runs, k):.4f}",
                 "yes" if same else "**NO**", f"{each(b_runs, k, 4)} / {each(p_runs, k, 4)}"]
                for (b_runs, p_runs, k, epochs), same in zip(pairs, equal, strict=True)]),
    ]
    return "\n".join(lines)


def write_figures(out: Path, text: str) -> None:
    """Set the figures block of `out` to `text`; a new `out` starts from bench/BENCHMARKS.md."""
    template = out if out.exists() else REPO / "bench" / "BENCHMARKS.md"
    out.write_text(replace_block(template.read_text(), "figures", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="rounds; figures are medians (default 3)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="a smoke run on the first N images (>= 500) instead of the real data")
    parser.add_argument("--epochs", type=int, default=5, help="of the cold run and its baseline")
    parser.add_argument("--exp-epochs", type=int, default=10,
                        help="of the experiment and its baseline")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "BENCHMARKS.md",
                        help="the figures go between its markers (a new file: from the default's)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every raw figure as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the project copies and logs")
    parser.add_argument("--team", action="store_true",
                        help="add bench/team.py's figures (team storage), after the rounds")
    args = parser.parse_args()
    if args.max_samples is not None and args.max_samples < 500:
        parser.error("--max-samples must be at least 500 (params.yaml's limit)")

    started = datetime.datetime.now(datetime.UTC)
    machine_cpu, own_cpu, clock = machine_cpu_seconds(), own_cpu_seconds(), time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    log(f"working in {work}")
    bench = Bench(args, work)
    try:
        for i in range(args.runs):
            log(f"round {i + 1} of {args.runs}")
            bench.round(i)
        team_figures = ""
        if args.team:  # imported only then: it brings the tests' project helpers along
            from bench import team

            team_figures = team.figures(work, args.max_samples, args.epochs)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    # /proc/stat and getrusage count in different ticks: on a quiet machine the difference can
    # dip below 0.
    others = {"cpu": max(0.0, machine_cpu_seconds() - machine_cpu - (own_cpu_seconds() - own_cpu)),
              "wall": time.monotonic() - clock}
    text = figures(bench, started, others) + team_figures
    write_figures(args.out, text)
    if args.json:
        args.json.write_text(json.dumps(bench.results, indent=1))
    print(text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
