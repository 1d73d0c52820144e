"""An Optuna search over params, each trial a DVC experiment on a Dask cluster (docs/search.md)."""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import math
import re
import secrets
import sys
import time
import warnings
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

import sweep
from stages.data import SUMMARY_METRICS, atomic_path
from stages.exits import UserError
from stages.params import PARAMS_FILE, flatten, read
from stages.summary import HEADLINE, SUMMARY_KEYS, TEST_ACCURACY, VAL_ACCURACY
from sweep import SweepError, run_experiment

if TYPE_CHECKING:
    from distributed import Client
    from hydra.core.override_parser.types import Override

# The worker task goes to the cluster by value, as under `python -m sweep`, so that the scheduler
# and the workers need the venv, not this project's files. distributed pickles a function of an
# importable module by reference (run_experiment submitted directly fails there: `sweep` is not
# importable); a function of __main__ goes through cloudpickle, which then takes sweep's by value.
cloudpickle.register_pickle_by_value(sweep)


def trial_task(commit: str, name: str, values: dict[str, str], topic: str) -> dict:
    """The sweep's worker task, run_experiment, sent from __main__ so that it travels by value."""
    return run_experiment(commit, name, values, topic)


SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
# What a search may optimise: the summary's figures but the test set's and a spread.
OBJECTIVES = [key for key in SUMMARY_KEYS if "test" not in key and not key.endswith("_std")]
REPORTS = Path("studies")  # a study's report and pictures: studies/<study>/


@dataclass(frozen=True)
class Space:
    """The searched params (Optuna distributions) and the fixed ones (-S values), by dotted key."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Any]
    keys: tuple[str, ...]  # every key, in the order of the -S given


def encoded(value: Any) -> Any:
    """A params.yaml value as a choice holds it: a list or mapping as its -S text, else itself."""
    if isinstance(value, list):
        return "[" + ",".join(str(encoded(item)) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{encoded(item)}" for key, item in value.items()) + "}"
    return value


def setting(value: Any) -> str:
    """A value as `dvc exp run -S` takes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(encoded(value))


def shown(value: Any) -> str:
    """A value as the progress lines and the table show it (floats to 4 significant digits)."""
    return f"{value:.4g}" if isinstance(value, float) else setting(value)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override, as Hydra's Optuna sweeper reads it."""
    value = override.value()
    tags = set(getattr(value, "tags", ()))
    if tags - {"log"}:
        raise ValueError(f"unknown tag {sorted(tags - {'log'})[0]!r}: a search reads only log")
    if getattr(value, "shuffle", False):
        raise ValueError("shuffle means nothing to a search: give choice, range or interval")
    log = "log" in tags
    if override.is_choice_sweep():
        if log:
            raise ValueError("a choice has no log scale")
        return CategoricalDistribution([encoded(choice) for choice in value.list])
    if override.is_interval_sweep():
        start, end = value.start, value.end
        if not start < end:
            raise ValueError(f"the start {start:g} must be below the end {end:g}")
        if log and start <= 0:
            raise ValueError(f"a log range must lie above 0, not from {start:g}")
        return FloatDistribution(start, end, log=log)
    if override.is_range_sweep():
        start, stop, step = value.start, value.stop, value.step
        if step <= 0 or start > stop:
            raise ValueError(f"a range goes up from its start to its end (the end included) in "
                             f"steps above 0, not from {start:g} to {stop:g} by {step:g}")
        if log and (start <= 0 or step != 1):
            raise ValueError("a log range must lie above 0, with no step")
        if any(isinstance(bound, float) for bound in (start, stop, step)):
            return FloatDistribution(start, start + (stop - start) // step * step, step=step)
        return IntDistribution(start, start + (stop - start) // step * step, log=log,
                               step=1 if log else step)
    raise ValueError("a search takes choice, range, interval or a plain value")


def space(settings: list[str], params: dict) -> Space:
    """The search space of `-S` settings over `params` (params.yaml); SweepError if one is wrong."""
    known = flatten(params)
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    parsed = sweep.overrides(settings)
    for override, text in zip(parsed, settings, strict=True):
        key = override.get_key_element()
        if key not in known:
            inside = [k for k in known if k.startswith(f"{key}.")]
            close = difflib.get_close_matches(key, known, n=1)
            hint = (f"a section; its keys: {', '.join(inside)}" if inside else
                    f"did you mean {close[0]}?" if close else "keys are dotted: model.dropout")
            raise SweepError(f"-S {text}: {PARAMS_FILE} has no key {key} ({hint})")
        if key in distributions or key in fixed:
            raise SweepError(f"-S {text}: {key} is set twice")
        if override.is_sweep_override():
            try:
                distributions[key] = distribution(override)
            except ValueError as error:
                raise SweepError(f"-S {text}: {error}") from None
        else:
            fixed[key] = override.value()
    return Space(distributions, fixed, tuple(override.get_key_element() for override in parsed))


def values_of(trial_params: dict[str, Any], space_: Space) -> dict[str, Any]:
    """Every key's value in a trial: the proposed ones and the fixed ones, in the -S order."""
    return {key: trial_params[key] if key in space_.distributions else space_.fixed[key]
            for key in space_.keys}


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial `number`."""
    # A trial's proposal then depends on the seed and the trials told, not on how many trials
    # were asked before it: a resumed study asks a missing trial as the uninterrupted one did.
    return int.from_bytes(hashlib.sha256(f"{seed}/{number}".encode()).digest()[:4], "big")


def batches(trials: int, size: int, done: Container[int]) -> Iterator[list[int]]:
    """The trial numbers still to run, by batch: the batches of `size` from 0, less `done`."""
    # Fixed places, whatever is on record: a gap (a failed or a lost trial) changes no batch.
    for first in range(0, trials, size):
        if numbers := [n for n in range(first, min(first + size, trials)) if n not in done]:
            yield numbers


def trial_numbers(refs: str, study: str, commit: str) -> dict[int, str]:
    """{number: name} of the study's experiments in `git ls-remote`'s `refs`, all on `commit`."""
    pattern = re.compile(rf"refs/exps/([0-9a-f]{{2}})/([0-9a-f]{{38}})/({re.escape(study)}-(\d+))$")
    found: dict[int, str] = {}
    for line in refs.splitlines():
        match = pattern.search(line)
        if not match:
            continue
        baseline = match[1] + match[2]
        if baseline != commit:
            raise SweepError(f"study {study} has trials on commit {baseline[:7]}, not on this one "
                             f"({commit[:7]}): check that commit out to continue it, or name "
                             f"another --study")
        found[int(match[4])] = match[3]
    return found


def shown_experiments(project: Path, commit: str) -> dict[str, tuple[dict, dict]]:
    """{name: (params by dotted key, metrics)} of `commit`'s experiments in `dvc exp show`."""
    listing = json.loads(sweep.command(project, "dvc", "exp", "show", "--json", timeout=600))
    return {row.name: (row.params, row.metrics) for row in sweep.shown_rows(listing)
            if row.baseline == commit and row.name}


def objective_error(metrics: dict, objective: str) -> str | None:
    """Why `metrics` give no objective to tell (missing, or not a finite number), or None."""
    if objective not in metrics:
        return f"{SUMMARY_METRICS} has no {objective}"
    value = metrics[objective]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{SUMMARY_METRICS} has {objective} = {value}, not a finite number"
    return None


def allows(allowed: BaseDistribution, value: Any) -> bool:
    """Whether a distribution of this module holds `value`."""
    if isinstance(allowed, CategoricalDistribution):
        return value in allowed.choices
    number = int if isinstance(allowed, IntDistribution) else int | float
    return (isinstance(value, number) and not isinstance(value, bool)
            and allowed.low <= value <= allowed.high)


def recorded_trial(name: str, params: dict, metrics: dict, space_: Space, objective: str
                   ) -> optuna.trial.FrozenTrial | None:
    """Experiment `name` as a trial of `space_` (SweepError if not one), None if it failed."""
    for key in space_.keys:
        value = encoded(params.get(key))
        if (key in space_.fixed and value != encoded(space_.fixed[key])
                or key in space_.distributions and not allows(space_.distributions[key], value)):
            raise SweepError(f"trial {name} has {key} = {setting(value)}, outside this command's "
                             f"-S: continue study {name.rsplit('-', 1)[0]} with its own -S, or "
                             "name another --study")
    if objective in metrics and objective_error(metrics, objective):
        return None
    return optuna.trial.create_trial(
        params={key: encoded(params[key]) for key in space_.distributions},
        distributions=space_.distributions, value=metrics[objective], user_attrs={"name": name})


def recorded(project: Path, args: argparse.Namespace, commit: str, space_: Space
             ) -> dict[int, dict]:
    """The study's finished trials by number, from its experiments on origin (pulled here)."""
    refs = sweep.command(project, "git", "ls-remote", "origin", "refs/exps/*", timeout=60)
    names = trial_numbers(refs, args.study, commit)
    if not names:
        return {}
    sweep.pull(project, sorted(names.values()))
    experiments = shown_experiments(project, commit)
    trials = {}
    for number, name in sorted(names.items()):
        if name not in experiments:
            raise SweepError(f"trial {name} is on origin, but `dvc exp show` does not list it "
                             "after `dvc exp pull`")
        params, metrics = experiments[name]
        try:
            frozen = recorded_trial(name, params, metrics, space_, args.objective)
        except (ValueError, KeyError) as error:  # a value off a range's steps, a metric missing
            raise SweepError(f"trial {name} is not of this command's search: {error}") from None
        if frozen is None:
            print(f"trial {name}: {objective_error(metrics, args.objective)}: it runs again",
                  flush=True)
            continue
        trials[number] = {"name": name, "values": values_of(frozen.params, space_),
                          "metrics": metrics, "error": None, "frozen": frozen}
    return trials


@dataclass
class Search:
    """A study's trials as they finish, the sampler's view of them, and the progress lines."""

    args: argparse.Namespace
    space: Space
    storage: optuna.storages.BaseStorage
    trials: dict[int, dict]  # by number: name, values, metrics, error

    @property
    def direction(self) -> str:
        """Optuna's direction: a loss is minimised, an accuracy maximised."""
        return "minimize" if self.args.objective.endswith("_loss") else "maximize"

    @property
    def goal(self) -> str:
        """`maximising OBJECTIVE`, or minimising."""
        return f"{self.direction[:-3]}ising {self.args.objective}"

    def study(self, number: int) -> optuna.Study:
        """The study, its sampler seeded for trial `number`."""
        sampler = SAMPLERS[self.args.sampler](seed=trial_seed(self.args.seed, number))
        return optuna.create_study(storage=self.storage, study_name=self.args.study,
                                   sampler=sampler, direction=self.direction, load_if_exists=True)

    def resume(self) -> None:
        """The recorded trials (their "frozen" ones) fed to the study, in number order."""
        study = self.study(0)
        for number in sorted(self.trials):
            study.add_trial(self.trials[number].pop("frozen"))

    def propose(self, numbers: list[int]) -> tuple[optuna.Study, dict[int, optuna.Trial]]:
        """The trials `numbers` asked at once, each of the study seeded for its number."""
        # One storage: a trial asked sees the batch's earlier ones running (TPE's constant liar).
        return self.study(0), {n: self.study(n).ask(self.space.distributions) for n in numbers}

    def tell(self, study: optuna.Study, asked: dict[int, optuna.Trial]) -> None:
        """Each asked trial's outcome (in self.trials) told, in number order."""
        for n in sorted(asked):
            outcome = self.trials[n]
            if outcome["error"]:
                study.tell(asked[n], state=TrialState.FAIL)
            else:
                asked[n].set_user_attr("name", outcome["name"])
                study.tell(asked[n], outcome["metrics"][self.args.objective])

    def rank(self, number: int) -> tuple:
        """Trial `number`'s place, best first: finished by objective, then failed, then number."""
        trial, sign = self.trials[number], -1 if self.direction == "maximize" else 1
        return (bool(trial["error"]),
                0 if trial["error"] else sign * trial["metrics"][self.args.objective], number)

    def best(self) -> dict | None:
        """The finished trial with the best objective (the lowest number among equals)."""
        first = min(self.trials, key=self.rank, default=None)
        return None if first is None or self.trials[first]["error"] else self.trials[first]

    def describe(self, trial: dict) -> str:
        """`name objective (key=value ...)` of a finished trial."""
        values = " ".join(f"{key}={shown(value)}" for key, value in trial["values"].items())
        return f"{trial['name']} {trial['metrics'][self.args.objective]:.4f} ({values})"

    def progress(self, line: str) -> None:
        best = self.best()
        print(f"[{len(self.trials)} of {self.args.trials}] {line}; best "
              f"{self.describe(best) if best else 'none yet'}", flush=True)


def run_batches(search: Search, commit: str, client: Client) -> float:
    """The trials not on record run, by `--batch`; the workers' idle share meanwhile."""
    from distributed import as_completed

    run_id = secrets.token_hex(3)
    busy = capacity = 0.0
    for numbers in batches(search.args.trials, search.args.batch, set(search.trials)):
        study, asked = search.propose(numbers)
        futures = {}
        for n, trial in asked.items():
            name, values = f"{search.args.study}-{n}", values_of(trial.params, search.space)
            print(f"[{len(search.trials)} of {search.args.trials}] {name} proposed: "
                  + " ".join(f"{key}={shown(value)}" for key, value in values.items()), flush=True)
            settings = {key: setting(value) for key, value in values.items()}
            future = client.submit(trial_task, commit, name, settings, f"search-{run_id}",
                                   key=f"{name}-{run_id}", pure=False)
            futures[future] = (n, name, values)
        started, slots = time.monotonic(), sum(client.nthreads().values())
        for future in as_completed(futures):
            n, name, values = futures[future]
            result = (future.result() if future.status == "finished"
                      else {**sweep.lost_task(future, values), "name": name})
            if not result["error"]:
                result["error"] = objective_error(result["metrics"], search.args.objective)
            search.trials[n] = {"name": name, "values": values, "metrics": result["metrics"],
                                "error": result["error"]}
            busy += result["seconds"]
            search.progress(sweep.outcome(result) + (
                "" if result["error"] else
                f": {search.args.objective} {result['metrics'][search.args.objective]:.4f}"))
        capacity += slots * (time.monotonic() - started)  # what the workers could have run
        search.tell(study, asked)
    return max(0.0, 1 - busy / capacity) if capacity else 0.0


def pictures(search: Search, folder: Path) -> list[str]:
    """Optuna's optimisation history and param importances as PNGs in `folder`; their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    finished = sum(1 for trial in search.trials.values() if not trial["error"])
    plots = {"history.png": (plot_optimization_history, "per trial, in the order told", 1),
             "importances.png": (plot_param_importances, "importance of each param", 2)}
    drawn = []
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a picture of few trials is still one
    for name, (plot, title, least) in plots.items():
        if finished < least:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's experimental and few-trials warnings
            axes = plot(search.study(0), target_name=search.args.objective)
        for where in ("left", "center"):  # Optuna's own title, at either place
            axes.set_title("", loc=where)
        axes.set_title(f"study {search.args.study}: {search.args.objective}, {title}", loc="left")
        axes.figure.set_size_inches(8, 4.5)
        if plot is plot_optimization_history:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
        with atomic_path(folder / name) as path:
            axes.figure.savefig(path, format="png", dpi=100, bbox_inches="tight")
        plt.close(axes.figure)
        drawn.append(name)
    return drawn


def model_artifact() -> str | None:
    """The model artifact dvc.yaml declares (what `gto register` names)."""
    artifacts = yaml.safe_load(Path("dvc.yaml").read_text()).get("artifacts") or {}
    return next((name for name, spec in artifacts.items() if spec.get("type") == "model"), None)


def report(search: Search, commit: str, command_line: str, idle: float | None) -> int:
    """The table, the best trial, the report and its pictures; the exit code."""
    args, best = search.args, search.best()
    ordered = [search.trials[n] for n in sorted(search.trials, key=search.rank)]
    columns = (*([args.objective] if args.objective not in HEADLINE else []), *HEADLINE)
    rows = [{"name": t["name"], "metrics": t["metrics"],
             "params": {key: shown(value) for key, value in t["values"].items()}}
            for t in ordered]
    failed = [t for t in ordered if t["error"]]
    table = sweep.table(rows, metrics=columns)
    lines = [f"{t['name']}: {t['error']}" for t in failed]
    if best:
        test = best["metrics"].get(TEST_ACCURACY)
        lines.append(f"best: {best['name']}, {args.objective} "
                     f"{search.describe(best).split(' ', 1)[1]}; its {TEST_ACCURACY} "
                     + (f"{test:.4f}" if isinstance(test, int | float) else "missing")
                     + " (reported, never used to choose)")
    if idle is not None:
        lines.append(f"workers idle {idle:.0%} of this run's batches: a batch waits for its "
                     "slowest trial, so that the same command proposes the same trials")
    folder = REPORTS / args.study
    drawn = pictures(search, folder)
    heading = (f"`{command_line}` on commit {commit[:7]}: {len(search.trials)} trials, "
               f"{len(failed)} failed; {args.sampler} sampler seed {args.seed}, {search.goal}.")
    markdown = [f"# Study {args.study}", "", heading, "", "```", table, "```", "",
                *(f"- {line}" for line in lines), "", *(f"![{name}]({name})" for name in drawn)]
    with atomic_path(folder / "report.md") as path:
        path.write_text("\n".join(markdown) + "\n")
    print(table)
    print("\n".join(lines))
    print(f"report: {folder / 'report.md'}" + "".join(f", {folder / name}" for name in drawn))
    if not best:
        print(f"error: no trial of study {args.study} finished", file=sys.stderr)
        return 1
    artifact = model_artifact()
    print(f"take it: dvc exp apply {best['name']} && dvc pull && git commit -am "
          f"'{best['name']} of study {args.study}'")
    print("    then: dvc push && git push origin HEAD"
          + (f" && gto register {artifact} --version vX.Y.Z --push" if artifact else ""))
    return 0


def search_study(args: argparse.Namespace, command_line: str) -> int:
    """The search of `args`: the record read, the rest run, the report written; the exit code."""
    project = Path.cwd()
    if not (project / PARAMS_FILE).is_file():
        raise SweepError(f"no {PARAMS_FILE} here: run the search in your clone of the project")
    try:
        params = read(PARAMS_FILE)
    except UserError as error:  # not YAML, or not a mapping
        raise SweepError(str(error)) from None
    space_ = space(args.set_param, params)
    if not space_.distributions:
        raise SweepError("nothing to search: give a key choice(...), range(...) or interval(...)")
    commit, origin = sweep.preflight(project, local_workers=not args.scheduler)
    search = Search(args, space_, optuna.storages.InMemoryStorage(),
                    recorded(project, args, commit, space_))
    search.resume()
    todo = [n for n in range(args.trials) if n not in search.trials]
    if search.trials:
        print(f"study {args.study}: {len(search.trials)} trials on record, {len(todo)} to run",
              flush=True)
    idle = None
    if todo:
        client = sweep.connect(args, origin)
        try:
            args.batch = args.batch or args.workers or sum(client.nthreads().values())
            print(f"search {args.study} of commit {commit[:7]}: {args.trials} trials, "
                  f"{args.batch} at a time, {args.sampler} sampler seed {args.seed}, "
                  f"{search.goal}; dashboard {client.dashboard_link}", flush=True)
            idle = run_batches(search, commit, client)
        finally:
            sweep.disconnect(client, args)
        sweep.pull(project, [search.trials[n]["name"] for n in todo
                             if n in search.trials and not search.trials[n]["error"]])
    return report(search, commit, command_line, idle)


def main(argv: list[str] | None = None) -> int:
    import shlex

    parser = sweep.OneLineParser(prog="python -m search", description=__doc__)
    parser.add_argument("-S", "--set-param", action="append", required=True, metavar="KEY=SPACE",
                        help="interval(a,b), tag(log, interval(a,b)), range(a,b[,step]), "
                             "choice(x,y,...) or a fixed value; one -S per key")
    parser.add_argument("--study", required=True,
                        help="the study's name: its trials are the experiments STUDY-0, STUDY-1...")
    parser.add_argument("--trials", type=int, required=True, help="the study's number of trials")
    parser.add_argument("--objective", default=VAL_ACCURACY,
                        help=f"the metric to optimise (default {VAL_ACCURACY}); a *_loss is "
                             f"minimised, the rest maximised: {', '.join(OBJECTIVES)}")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                        help="Optuna's TPE (default) or random sampler")
    parser.add_argument("--batch", type=int,
                        help="trials proposed at once (default: the workers); the same batch "
                             "replays the same trials")
    sweep.add_cluster_options(parser)
    args = parser.parse_args(argv)
    sweep.check_cluster_options(parser, args)
    if args.trials < 1:
        parser.error(f"--trials {args.trials}: give 1 or more")
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch {args.batch}: give 1 or more")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.study):
        parser.error(f"--study {args.study!r}: letters, digits, '.', '_' and '-' only")
    if "test" in args.objective:
        parser.error(f"--objective {args.objective}: a test metric is never the objective "
                     "(choosing on it leaks the test set into the choice); use a validation one")
    if args.objective not in OBJECTIVES:
        parser.error(f"--objective {args.objective}: one of {', '.join(OBJECTIVES)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    command_line = shlex.join(["python", "-m", "search", *(sys.argv[1:] if argv is None else argv)])
    try:
        return search_study(args, command_line)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: interrupted; the finished trials are on origin: the same command continues "
              f"study {args.study}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
