"""`python -m search`: Optuna's trials as DVC experiments on Dask, on origin and the store."""
# The store holds the reference run and the space is SGD's: a trial trains no network. One search
# runs by default; resuming, replaying and a refused trial are in the tier `sweep_faults`.

import argparse
import json
import re
import signal
from pathlib import Path

import optuna
import pytest
import yaml

import search
from scripts.toolkit import (
    REPO,
    clone,
    default_params,
    error_line,
    exp_show,
    free_port,
    kill_processes_in,
    run,
    venv_env,
)
from stages.params import flatten
from stages.summary import HEADLINE, TEST_ACCURACY
from sweep import SweepError
from tests.team.conftest import MAX_ITER, TeamProject, dask_processes

# The reference's SGD and 2 more, none that test_sweep runs: it counts what the shared store holds.
SPACE = ("-S", f"sgd.max_iter=range({MAX_ITER},{MAX_ITER + 4},2)")
faults = pytest.mark.sweep_faults


def pushed(searcher: TeamProject, study: str) -> list[str]:
    """The study's experiments in the Git origin, one name per ref."""
    return [name for name in searcher.pushed() if re.fullmatch(rf"{study}-\d+", name)]


def proposed(output: str) -> dict[str, int]:
    """{trial: sgd.max_iter} of a search's `proposed:` lines."""
    return {name: int(value) for name, value in
            re.findall(r"\] (\S+) proposed: sgd\.max_iter=(\d+)$", output, re.MULTILINE)}


def finished(output: str) -> dict[str, str]:
    """{trial: the stages it ran, or its failure} of a search's `done`/`failed` lines."""
    return {name: ran or why for name, ran, why in re.findall(
        r"\] (\S+) (?:done in \d+ s \(ran (.*?);|failed: (.*?); best )", output)}


def table(output: str) -> list[list[str]]:
    """The rows of the final table, below its `experiment` header."""
    lines = output.split("\nexperiment ", 1)[1].splitlines()[1:]
    return [line.split() for line in lines if re.match(r"\S+-\d+ ", line)]


def test_the_grammar_maps_onto_optuna_distributions():
    params = default_params()
    space = search.space(["model.dropout=interval(0,0.5)",
                          "model.learning_rate=tag(log, interval(1e-4,1e-2))",
                          "epochs=range(5,30)", "batch_size=range(32,256,32)",
                          "model.hidden=choice([],[128],[256,128])", "model.optimizer=adam"],
                         params)
    shown = {key: (type(d).__name__, getattr(d, "low", None), getattr(d, "high", None),
                   getattr(d, "log", None), getattr(d, "step", None), getattr(d, "choices", None))
             for key, d in space.distributions.items()}
    assert shown == {
        "model.dropout": ("FloatDistribution", 0.0, 0.5, False, None, None),
        "model.learning_rate": ("FloatDistribution", 1e-4, 1e-2, True, None, None),
        "epochs": ("IntDistribution", 5, 30, False, 1, None),  # the end included
        "batch_size": ("IntDistribution", 32, 256, False, 32, None),
        "model.hidden": ("CategoricalDistribution", None, None, None, None,
                         ("[]", "[128]", "[256,128]")),
    }
    assert space.fixed == {"model.optimizer": "adam"}
    # What a trial sets is what `dvc exp run -S` reads back as the same value.
    assert [search.setting(v) for v in ([256, 128], 1e-05, 0.25, 7, "adam")] == [
        "[256,128]", "1e-05", "0.25", "7", "adam"]
    assert search.encoded([256, 128]) in space.distributions["model.hidden"].choices


def test_bad_input_is_one_line_before_anything_starts(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture):
    monkeypatch.chdir(REPO)  # params.yaml; no Git, store or cluster is reached for any of these
    cases = {  # -S or another option: what the line names
        "model.dropout=interval(1,0)": "the start 1 must be below the end 0",
        "model.learning_rate=tag(log, interval(0,1e-2))": "a log range must lie above 0",
        # Hydra's parser words these two: the project's line echoes the -S, names the function.
        "model.dropout=uniform(0,1)": "'uniform'",
        "model.hidden=choice()": "choice()",
        "model.dropot=interval(0,1)": "params.yaml has no key model.dropot (did you mean "
                                      "model.dropout?)",
        "--trials=0": "--trials 0: give 1 or more",
        "--objective=keras_test_accuracy": "a test metric is never the objective",
    }
    for case, named in cases.items():
        option = case.split("=", 1) if case.startswith("--") else []
        settings = ["-S", "model.dropout=interval(0,0.5)"] if option else ["-S", case]
        argv = [*settings, "--study", "s", "--trials", "2", "--workers", "1", *option]
        try:
            code = search.main(argv)
        except SystemExit as exit:  # argparse's mistakes
            code = exit.code
        out, err = capsys.readouterr()
        line = error_line(code, err.strip().splitlines())
        assert out == "" and named in line, (case, line)
        assert option or line.startswith(f"error: -S {case}: "), (case, line)


def test_a_params_file_that_is_not_yaml_is_one_line(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture):
    (tmp_path / "params.yaml").write_text("epochs: [2\n")
    monkeypatch.chdir(tmp_path)  # read before any Git, store or cluster
    code = search.main(["-S", "sgd.max_iter=range(5,7)", "--study", "s", "--trials", "2",
                        "--workers", "1"])
    line = error_line(code, capsys.readouterr().err.strip().splitlines())
    assert line.startswith("error: params.yaml: YAML syntax error at line 2"), line


def test_a_record_that_does_not_fit_the_command_is_refused():
    params = default_params()
    space = search.space(["sgd.max_iter=range(5,7)", "epochs=2"], params)
    recorded = {**flatten(params), "sgd.max_iter": 6, "epochs": 2}
    trial = search.recorded_trial("s-0", recorded, {"keras_val_accuracy": 0.8}, space,
                                  "keras_val_accuracy")
    assert trial.params == {"sgd.max_iter": 6} and trial.value == 0.8
    for key, value in (("sgd.max_iter", 9), ("epochs", 3)):
        with pytest.raises(SweepError, match=rf"trial s-1 has {key} = {value}, outside"):
            search.recorded_trial("s-1", {**recorded, key: value}, {"keras_val_accuracy": 0.8},
                                  space, "keras_val_accuracy")
    # A trial whose objective is not a number failed: left out of the record, it runs again.
    assert search.recorded_trial("s-2", recorded, {"keras_val_accuracy": float("nan")}, space,
                                 "keras_val_accuracy") is None
    for value in (float("nan"), float("inf"), None):
        assert "keras_val_accuracy = " in search.objective_error({"keras_val_accuracy": value},
                                                                 "keras_val_accuracy")
    assert search.objective_error({"keras_val_accuracy": 0.8}, "keras_val_accuracy") is None


def made_up_study(seed: int, trials: int, record: int = 0, objective: str = "keras_val_accuracy",
                  gap: tuple[int, ...] = ()) -> search.Search:
    """A study in batches of 2 of a made-up objective, trials < `record` but `gap` on record."""
    # The record: an uninterrupted study's trials as `dvc exp show` gives them back.
    params = default_params()
    space = search.space(["model.dropout=interval(0,0.5)", "epochs=range(1,20)",
                          "model.hidden=choice([],[64],[128,64])"], params)
    args = argparse.Namespace(study="s", sampler="tpe", seed=seed, objective=objective,
                              trials=trials)
    study = search.Search(args, space, optuna.storages.InMemoryStorage(), {})
    if record:
        earlier = made_up_study(seed, record, objective=objective)
        for n, trial in earlier.trials.items():
            if n in gap:  # failed, or lost: not on record
                continue
            shown = {key: yaml.safe_load(search.setting(v)) for key, v in trial["values"].items()}
            frozen = search.recorded_trial(f"s-{n}", {**flatten(params), **shown},
                                           trial["metrics"], space, objective)
            study.trials[n] = {**trial, "frozen": frozen}
        study.resume()
    for numbers in search.batches(trials, 2, set(study.trials)):
        batch, asked = study.propose(numbers)
        for n, trial in reversed(asked.items()):  # finished in any order
            values = search.values_of(trial.params, space)
            score = 1 - (values["model.dropout"] - 0.2) ** 2 - (values["epochs"] - 12) ** 2 / 400
            study.trials[n] = {"name": f"s-{n}", "values": values, "error": None,
                               "metrics": {objective: score if "accuracy" in objective else -score}}
        study.tell(batch, asked)
    return study


def test_the_same_seed_proposes_the_same_trials_also_after_a_resume():
    """Past TPE's 10 random startup trials, so that the proposals depend on the trials told."""
    proposals = {key: [t["values"] for _, t in sorted(study.trials.items())] for key, study in {
        "first": made_up_study(0, 16), "again": made_up_study(0, 16),
        "resumed": made_up_study(0, 16, record=8), "other seed": made_up_study(1, 16),
        # A trial failed in one batch, another batch lost: they run again, the rest as before.
        "resumed with gaps": made_up_study(0, 16, record=8, gap=(3, 6, 7)),
        "minimised loss": made_up_study(0, 16, objective="keras_val_loss")}.items()}
    assert proposals["again"] == proposals["first"] == proposals["resumed"]
    assert proposals["resumed with gaps"] == proposals["first"]
    startup = [json.dumps(values) for values in proposals["first"][:10]]  # each batch its own seed
    assert len(set(startup)) == 10, startup
    assert proposals["other seed"][:10] != proposals["first"][:10]
    assert proposals["minimised loss"] == proposals["first"]  # a loss's sign flipped, minimised
    loss = made_up_study(0, 4, objective="keras_val_loss")
    assert loss.best() == min(loss.trials.values(), key=lambda t: t["metrics"]["keras_val_loss"])


def test_a_best_trial_without_a_test_accuracy_is_reported(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture):
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())  # the model artifact
    monkeypatch.chdir(tmp_path)  # the report goes to studies/s/
    study = made_up_study(0, 2)  # its summaries hold the objective alone
    assert search.report(study, "0" * 40, "python -m search ...", None) == 0
    out = capsys.readouterr().out
    assert f"its {TEST_ACCURACY} missing (reported, never used to choose)" in out


def test_search_of_four_trials_on_two_workers_lands_in_exp_show(searcher: TeamProject, tmp_path):
    command = (*SPACE, "--study", "s4", "--trials", "4", "--seed", "0", "--workers", "2",
               "--objective", "sgd_cv_accuracy")  # what SGD's max_iter changes
    result = searcher.run(*command, env=searcher.env(tmp_path / "clones"))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^search s4 of commit \w{7}: 4 trials, 2 at a time, .*; dashboard "
                     r"http://127\.0\.0\.1:\d+/status$", out, re.MULTILINE), out
    trials = proposed(out)
    assert sorted(trials) == ["s4-0", "s4-1", "s4-2", "s4-3"]
    assert set(finished(out)) == set(trials) and "[4 of 4]" in out
    # Every trial is an experiment with its proposed params, within the range asked for.
    shown = {e.name: e for e in exp_show(searcher.project) if e.name in trials}
    assert {name: e.params["sgd.max_iter"] for name, e in shown.items()} == trials
    assert set(trials.values()) <= {MAX_ITER, MAX_ITER + 2, MAX_ITER + 4}
    assert sorted(pushed(searcher, "s4")) == sorted(trials)
    # The table is sorted by the objective, best first, its figures those of `dvc exp show`.
    rows = table(out)
    assert [row[0] for row in rows] == sorted(trials, key=lambda n: (
        -shown[n].metrics["sgd_cv_accuracy"], int(n.split("-")[1])))
    assert len({shown[n].metrics["sgd_cv_accuracy"] for n in trials}) > 1  # an order to check
    for row in rows:
        assert [float(x) for x in row[1:4]] == [round(shown[row[0]].metrics[k], 4)
                                                for k in HEADLINE]
    best = rows[0][0]
    assert f"best: {best}, sgd_cv_accuracy " in out and f"dvc exp apply {best} " in out
    assert re.search(r"its keras_test_accuracy \d\.\d{4} \(reported, never used to choose\)", out)
    report = searcher.project / "studies/s4"
    assert {p.name for p in report.iterdir()} == {"report.md", "history.png", "importances.png"}
    assert all((report / name).read_bytes().startswith(b"\x89PNG") for name in
               ("history.png", "importances.png"))
    # The same command again: every trial is on record, nothing runs.
    again = searcher.run(*command, env=searcher.env(tmp_path / "clones"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "study s4: 4 trials on record, 0 to run" in again.stdout
    assert not proposed(again.stdout) and table(again.stdout) == rows


@faults
def test_an_interrupted_search_completes_in_a_teammates_clone_and_replays(searcher: TeamProject,
                                                                         tmp_path: Path):
    command = (*SPACE, "--trials", "4", "--seed", "1", "--workers", "2")
    process = searcher.start(*command, "--study", "r", clones=tmp_path / "clones")
    try:
        lines = []
        for line in process.stdout:  # Ctrl-C once two trials have finished
            lines.append(line)
            if line.startswith("[2 of 4]") and " proposed: " not in line:
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
        kill_processes_in(tmp_path)
    first = "".join(lines) + out
    assert process.returncode == 130, first + err
    assert err.strip().splitlines()[-1].startswith("error: interrupted; the finished trials are on "
                                                   "origin"), err
    done_first = set(finished(first))
    assert len(done_first) == 2 and set(pushed(searcher, "r")) >= done_first
    # A teammate clones origin and runs the same command: the 2 come from the record, not rerun.
    teammate = clone(searcher.origin, tmp_path / "teammate")
    second = searcher.run(*command, "--study", "r", env=searcher.env(tmp_path / "clones2"),
                          project=teammate)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"study r: {len(done_first)} trials on record, 2 to run" in second.stdout
    assert not set(proposed(second.stdout)) & done_first
    names = [row[0] for row in table(second.stdout)]
    assert sorted(names) == ["r-0", "r-1", "r-2", "r-3"] and sorted(pushed(searcher, "r")) == names
    # The same command as a new study proposes the same trials in the same order, resumed or not:
    # each is restored, only summary may run again.
    replay = searcher.run(*command, "--study", "r2", env=searcher.env(tmp_path / "clones2"))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    trials = {e.name: e.params["sgd.max_iter"] for e in exp_show(teammate) if e.name in names}
    assert {n.replace("r2-", "r-"): v for n, v in proposed(replay.stdout).items()} == trials
    assert all(ran in ("no stage", "summary") for ran in finished(replay.stdout).values()), (
        replay.stdout)


@faults
def test_a_killed_worker_s_trial_runs_again_and_is_counted_once(searcher: TeamProject,
                                                                tmp_path: Path):
    # A dropout of their own: neither trial is in the store, both train.
    code, out, err = searcher.run_killing_a_worker("-S", "model.dropout=interval(0.1,0.2)",
                                                   "--study", "k", "--trials", "2", "--seed", "0",
                                                   "--workers", "2", root=tmp_path)
    assert code == 0, out + err
    outcomes = finished(out)
    assert sorted(outcomes) == ["k-0", "k-1"] and " failed: " not in out, out
    assert [len(re.findall(rf"\] {n} done in ", out)) for n in outcomes] == [1, 1], out
    assert "[2 of 2]" in out and "[3 of 2]" not in out
    assert sorted(row[0] for row in table(out)) == sorted(pushed(searcher, "k")) == ["k-0", "k-1"]
    shown = {e.name: e for e in exp_show(searcher.project) if e.name in outcomes}
    assert all(TEST_ACCURACY in e.metrics for e in shown.values()) and len(shown) == 2


@faults
def test_a_refused_trial_fails_alone_on_workers_without_the_project(searcher: TeamProject,
                                                                     tmp_path: Path):
    """The params refuse sgd.folds = 1 (seed 3 proposes 2, then 1); the rest goes on."""
    # `dask scheduler` and `dask worker` outside the project, with no PYTHONPATH: the worker task
    # reaches them by value.
    port = free_port()
    env = venv_env({**searcher.store.env(), "HOME": str(tmp_path), "SWEEP_GIT_ORIGIN":
                    str(searcher.origin), "SWEEP_CLONES": str(tmp_path / "clones")})
    with dask_processes(tmp_path) as dask:
        dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
             "127.0.0.1:0", cwd=tmp_path, env=env)
        dask("worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2", "--nthreads", "1", "--host",
             "127.0.0.1", cwd=tmp_path, env=env)
        result = run(searcher.project, "python", "-m", "search", "-S", "sgd.folds=choice(1,2)",
                     "--study", "refused", "--trials", "2", "--seed", "3", "--batch", "2",
                     "--scheduler", f"tcp://127.0.0.1:{port}", "--timeout", "60",
                     env={"PYTHONPATH": str(REPO)}, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = finished(result.stdout)
    assert outcomes["refused-1"].startswith("error: params.yaml: sgd.folds = 1 is not allowed"), (
        result.stdout)
    assert outcomes["refused-0"] in ("no stage", "summary", "sgd_cv, summary"), result.stdout
    assert f"refused-1: {outcomes['refused-1']}" in result.stdout
    assert pushed(searcher, "refused") == ["refused-0"]  # nothing of the refused trial
