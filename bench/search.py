"""Optuna's TPE and random samplers and bench/SWEEP.md's grid on 2 local Dask workers."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shutil
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

import search
from bench.sweep import GRID, Phase
from scripts.toolkit import (
    REPO,
    Store,
    copy_project,
    dvc,
    exp_show,
    module_output,
    processes_in,
    write_block,
)
from stages.data import DEBIAN
from stages.summary import HEADLINE, TEST_ACCURACY, VAL_ACCURACY

# Up to 3 hidden layers of 32 to 512 units (a list is one choice: the grammar has no conditional
# params), dropout, a log learning rate, the optimizer, epochs and batch size.
SPACE = ["-S", "model.hidden=choice([],[32],[128],[512],[256,128],[512,256],[512,128],"
               "[128,64,32],[256,128,64],[512,256,128])",
         "-S", "model.dropout=interval(0,0.5)",
         "-S", "model.learning_rate=tag(log, interval(1e-4,1e-2))",
         "-S", "model.optimizer=choice(adam,rmsprop,sgd)",
         "-S", "epochs=range(5,30)",
         "-S", "batch_size=choice(32,64,128,256)"]
TINY = [*SPACE[:8], "-S", "epochs=range(1,2)", *SPACE[10:]]  # --tiny: 1 or 2 epochs
SEED = 0
TARGETS = {"test": 0.89, "replay": 0.1, "restored sweep": 0.2}
COPIED = "restored sweep, copies"  # the workers' clones set back to DVC's default: copy outputs
OUT = REPO / "bench" / "SEARCH.md"


class StageClock:
    """The wall time of every stage process (`python -m stages.X`) run under `root`, by polling."""

    def __init__(self, root: Path) -> None:
        self.root, self.seen, self.running = root, {}, True
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while self.running:
            now = time.time()
            for process in processes_in(self.root):
                if any(arg.startswith("stages.") for arg in process.info["cmdline"] or []):
                    with contextlib.suppress(psutil.Error):  # it may have ended meanwhile
                        self.seen[process.pid] = (process.create_time(), now)
            time.sleep(0.05)

    def seconds(self, since: float, until: float) -> float:
        """The stages' time within the window [since, until] (time.time())."""
        return sum(end - start for start, end in self.seen.values() if since <= start <= until)

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def trials(output: str) -> list[tuple[str, float, str]]:
    """(name, seconds, stages run) of each finished trial or experiment in a run's lines."""
    return [(name, float(seconds), ran) for name, seconds, ran in
            re.findall(r"\] (\S+) done in (\d+) s \(ran (.*?);", output)]


def best_after_k(names: list[str], shown: dict) -> list[float]:
    """The best validation accuracy of the first k trials, for each k (a failed one adds none)."""
    best, found = float("nan"), []
    for name in names:
        value = shown[name].metrics[VAL_ACCURACY] if name in shown else float("nan")
        best = value if best != best or value > best else best  # nan: none finished yet
        found.append(best)
    return found


def plot(curves: dict[str, list[float]], grid: tuple[float, int], path: Path) -> None:
    """Best validation accuracy after k trials, one line per sampler, the grid's best dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    styles = [{"marker": "o", "markersize": 7}, {"marker": "x", "linestyle": ":"}]
    for (label, values), style in zip(curves.items(), styles, strict=False):
        axes.plot(range(1, len(values) + 1), values, label=label, **style)
    axes.axhline(grid[0], linestyle="--", color="grey",
                 label=f"the grid's best ({grid[1]} experiments)")
    axes.set(xlabel="trials", ylabel=f"best {VAL_ACCURACY} so far",
             title="Best validation accuracy after k trials")
    axes.legend()
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-samples", type=int, help="default: all the data")
    parser.add_argument("--trials", type=int, default=24, help="each study's trials (default 24)")
    parser.add_argument("--tiny", action="store_true", help="epochs 1 or 2: a smoke run")
    parser.add_argument("--work", type=Path, help="a directory to keep (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=OUT, help="default bench/SEARCH.md")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-search-"))
    space = TINY if args.tiny else SPACE
    params = {"download.sources": [str(DEBIAN)],
              **({"max_samples": args.max_samples} if args.max_samples else {})}
    started = datetime.datetime.now(datetime.UTC)
    clock = StageClock(work / "clones")
    with Store(work / "store") as store:
        user = copy_project(work / "user", params, origin=work / "origin.git")
        env = store.sweep_env(work / "clones")
        dvc(user, "repro", "sgd_cv", "split", env=env, timeout=3600)  # the stages every run shares
        dvc(user, "push", "--run-cache", env=env)
        study = ("--trials", str(args.trials), "--seed", str(SEED), "--workers", "2",
                 "--batch", "2", *space)
        outputs, phases, windows = {}, {}, {}
        grid = ("sweep", *GRID, "--workers", "2", "--name-prefix", "grid")  # (d), (e) and (f)
        runs = {"tpe": ("search", "--study", "tpe", "--sampler", "tpe", *study),
                "random": ("search", "--study", "random", "--sampler", "random", *study),
                "replay": ("search", "--study", "replay", "--sampler", "tpe", *study),
                "sweep": grid, "restored sweep": grid, COPIED: grid}
        for key, (module, *arguments) in runs.items():
            if key == COPIED:  # as before the workers linked outputs from their caches
                for config in (work / "clones").glob("*/*/.dvc/config.local"):
                    dvc(config.parents[1], "config", "--local", "cache.type", "copy", env=env)
            since = time.time()
            with Phase() as phase:
                outputs[key] = module_output(user, module, *arguments, env=env)
            phases[key], windows[key] = phase, (since, time.time())
        with Phase() as shown_phase:
            shown = {e.name: e for e in exp_show(user, env=env) if e.name}
    clock.stop()
    folder = args.out.parent
    for name in ("history.png", "importances.png"):
        shutil.copyfile(user / "studies/tpe" / name, folder / f"search_tpe_{name}")
    names = {key: [f"{key}-{n}" for n in range(args.trials)] for key in ("tpe", "random")}
    curves = {key: best_after_k(names[key], shown) for key in names}
    grid_names = [name for name, _, _ in trials(outputs["sweep"])]
    grid_best = max(shown[n].metrics[VAL_ACCURACY] for n in grid_names)
    plot({"TPE": curves["tpe"], "random": curves["random"]}, (grid_best, len(grid_names)),
         folder / "search_best.png")

    def chosen(key: str) -> str:
        return max((n for n in names[key] if n in shown),
                   key=lambda n: (shown[n].metrics[VAL_ACCURACY], -int(n.rsplit("-")[-1])))

    def overhead(key: str) -> tuple[float, float]:
        """(mean task seconds, mean seconds not in a stage) of a run's trials."""
        done = trials(outputs[key])
        stage_time = clock.seconds(*windows[key])
        mean = sum(seconds for _, seconds, _ in done) / len(done)
        return mean, (sum(seconds for _, seconds, _ in done) - stage_time) / len(done)

    tpe_best, random_best = curves["tpe"][-1], curves["random"][-1]
    best = shown[chosen("tpe")]
    replay_ratio = phases["replay"].wall / phases["tpe"].wall
    sweep_ratio, copied_ratio = (phases[key].wall / phases["sweep"].wall
                                 for key in ("restored sweep", COPIED))
    replayed_nothing = all(ran in ("no stage", "summary")
                           for _, _, ran in trials(outputs["replay"]))

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    data = (f"max_samples {args.max_samples}" if args.max_samples
            else "the real data (60,000 + 10,000 images)")
    options = "".join(f" {flag}" for flag in (
        *(("--max-samples", str(args.max_samples)) if args.max_samples else ()),
        *(("--trials", str(args.trials)) if args.trials != 24 else ()),
        *(("--tiny",) if args.tiny else ())))
    rows = []
    for key in runs:
        phase = phases[key]
        mean, not_stages = overhead(key)
        rows.append(f"| {key} | {len(trials(outputs[key]))} | {phase.wall:.1f} | {mean:.1f} | "
                    f"{not_stages:.1f} | {phase.busy:.0%} | {phase.load:.1f} |")
    idle = {key: re.search(r"workers idle (\d+)%", outputs[key]) for key in ("tpe", "random")}
    lines = [
        f"Produced by `python -m bench.search{options}` on {started:%Y-%m-%d %H:%M} UTC, {data}; "
        f"{os.cpu_count()} cores, 2 local workers, one run of each (no repetition). Seeds: "
        f"the samplers' `--seed {SEED}`, the project's `seed` 42 (split, SGD, Keras).",
        "",
        f"The space (`python -m search` with `--trials {args.trials} --batch 2`):",
        "",
        "```",
        *(f"    -S '{arg}'" for arg in space[1::2]),
        "```",
        "",
        "TPE's first 10 trials are its startup, drawn by Optuna's random sampler with the same "
        "seed: the two studies share them (the random study restores them from the run-cache), "
        "so that what differs is what TPE's model proposes after them.",
        "",
        "| run | trials | wall (s) | per trial (s) | overhead per trial (s) | busy | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "*per trial*: a trial's task on its worker (clone, `dvc exp run --pull`, pushes), as its "
        "line says; *overhead*: that minus the time its stages ran (each `python -m stages.X` "
        "process, timed by polling the process table). *busy*: how much of the machine's cores "
        "were used meanwhile (this run's processes and everyone else's); *load*: the 1-minute "
        "load average at the end.",
        "",
        "![best validation accuracy after k trials](search_best.png)",
        "",
        "| | TPE | random | grid |",
        "|---|---:|---:|---:|",
        f"| best {VAL_ACCURACY} | {tpe_best:.4f} | {random_best:.4f} | {grid_best:.4f} |",
        f"| workers idle (batches of 2) | {idle['tpe'][1] if idle['tpe'] else '?'}% | "
        f"{idle['random'][1] if idle['random'] else '?'}% | |",
        "",
        f"The trial TPE chose by validation: **{best.name}**, "
        + ", ".join(f"{key} {best.metrics[key]:.4f}" for key in HEADLINE)
        + " (" + ", ".join(f"{key}={search.shown(best.params[key])}" for key in
                           ("model.hidden", "model.dropout", "model.learning_rate",
                            "model.optimizer", "epochs", "batch_size")) + ").",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| the chosen trial's test accuracy ≥ {TARGETS['test']} (the anchor's MLP: 0.900) | "
        f"{best.metrics[TEST_ACCURACY]:.4f} | "
        f"{met(best.metrics[TEST_ACCURACY] >= TARGETS['test'])} |",
        f"| TPE's best validation accuracy ≥ random's at {args.trials} trials | "
        f"{tpe_best:.4f} vs {random_best:.4f} | {met(tpe_best >= random_best)} |",
        f"| the replayed search ≤ {TARGETS['replay']} × the first | {replay_ratio:.2f} × "
        f"({'no stage but summary ran' if replayed_nothing else 'some stages ran again'}) | "
        f"{met(replay_ratio <= TARGETS['replay'])} |",
        f"| the restored sweep ≤ {TARGETS['restored sweep']} × the first | {sweep_ratio:.2f} × | "
        f"{met(sweep_ratio <= TARGETS['restored sweep'])} |",
        "",
        "Linking the restored outputs from the workers' caches (sweep.py sets `cache.type "
        "hardlink,symlink,copy` in each new clone) against copying them (DVC's default, what the "
        f"workers did before; set back in the same clones for the run `{COPIED}`): overhead per "
        f"experiment {overhead('restored sweep')[1]:.1f} s against {overhead(COPIED)[1]:.1f} s, "
        f"the restored sweep {sweep_ratio:.2f} × the first against {copied_ratio:.2f} ×.",
        "",
        f"`dvc exp show --json` in the user's clone with these {len(shown)} experiments: "
        f"{shown_phase.wall:.1f} s.",
        "",
        "The TPE study's own pictures (`python -m search` writes them in studies/tpe/):",
        "",
        "![TPE: optimisation history](search_tpe_history.png)",
        "![TPE: param importances](search_tpe_importances.png)",
    ]
    lines = [textwrap.fill(line, 100, break_long_words=False, break_on_hyphens=False)
             if line[:1].isalpha() or line[:1] in "*`" else line for line in lines]
    write_block(args.out, "search", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
