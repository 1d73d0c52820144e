"""Team scale, end to end against a real S3 store on 127.0.0.1: push, pull, run-cache, experiments."""

import json
import os
import subprocess

from conftest import git

from .helpers import REPO, STAGES, VENV_BIN, clone, digests, ok, run


def test_fresh_clone_pulls_every_output_and_reruns_nothing(team, tmp_path):
    b = clone(team.origin, tmp_path / "b")
    assert not (b / ".dvc/cache").exists()
    ok(run(b, "dvc", "pull", env=team.env))
    assert digests(b) == team.a_outputs
    out = ok(run(b, "dvc", "repro", env=team.env))
    assert "Running stage" not in out and "Data and pipelines are up to date." in out
    assert git(b, "status", "--porcelain") == ""


def test_every_stage_is_restored_from_the_run_cache(team, tmp_path):
    # A clone whose dvc.lock does not describe its params (here: none at all) can only skip a
    # stage through the run-cache: the store's record of A's run with the same code and params.
    c = clone(team.origin, tmp_path / "c")
    (c / "dvc.lock").unlink()
    out = ok(run(c, "dvc", "repro", "--pull", "--allow-missing", env=team.env))
    for name in STAGES:
        assert f"Stage '{name}' is cached - skipping run" in out, out
    assert "Running stage" not in out, out
    assert digests(c) == team.a_outputs
    assert git(c, "status", "--porcelain") == ""  # the same dvc.lock as A's, byte for byte


def test_experiments_travel_between_machines(team, tmp_path):
    experiments = {"w1": ["-S", "epochs=2"], "w2": ["-S", "model.learning_rate=0.01"]}
    workers = {}
    for name in experiments:
        workers[name] = clone(team.origin, tmp_path / name)
        ok(run(workers[name], "dvc", "pull", env=team.env))
    # Both workers run their experiment at the same time against the same store.
    env = {**os.environ, **team.env, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    running = {name: subprocess.Popen([str(VENV_BIN / "dvc"), "exp", "run", "-n", name, *args],
                                      cwd=workers[name], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for name, args in experiments.items()}
    for name, process in running.items():
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output
        ok(run(workers[name], "dvc", "exp", "push", "origin", name, env=team.env))
        ok(run(workers[name], "python", str(REPO / "scripts/share_runs.py"), env=team.env))

    lead = clone(team.origin, tmp_path / "lead")
    for name in experiments:
        ok(run(lead, "dvc", "exp", "pull", "origin", name, env=team.env))
    shown = json.loads(ok(run(lead, "dvc", "exp", "show", "--json", env=team.env)).strip())
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            metrics = rev["data"]["metrics"]["metrics/summary.json"]["data"]
            found[exp["name"]] = metrics["keras_val_accuracy"]
    assert set(found) == set(experiments), shown
    for name, worker in workers.items():
        worker_metrics = json.loads((worker / "metrics/summary.json").read_text())
        assert found[name] == worker_metrics["keras_val_accuracy"]

    # Applying w2 and pulling brings w2's model, byte for byte.
    ok(run(lead, "dvc", "exp", "apply", "w2", env=team.env))
    ok(run(lead, "dvc", "pull", env=team.env))
    assert (lead / "data/model.keras").read_bytes() == (workers["w2"] / "data/model.keras").read_bytes()
    assert digests(lead, ("metrics", "plots")) == digests(workers["w2"], ("metrics", "plots"))


def test_ci_reruns_only_what_a_change_touches(team, tmp_path):
    # The pull-request job: a change to an sgd param, the rest restored from the store.
    pr = clone(team.origin, tmp_path / "pr")
    ok(run(pr, "dvc", "params", "diff"))  # a clean clone
    params = (pr / "params.yaml").read_text().replace("max_iter: 3", "max_iter: 4")
    (pr / "params.yaml").write_text(params)
    out = ok(run(pr, str(REPO / "scripts/ci_cache.sh"), "repro", env=team.env))
    ran = {name for name in STAGES if f"Running stage '{name}'" in out}
    assert ran == {"sgd_cv", "summary"}, out
    assert digests(pr, ("data/model.keras",)) == {"data/model.keras": team.a_outputs["data/model.keras"]}
    # Without the store's keys (no repository secrets) the push step does nothing and succeeds.
    no_keys = run(pr, str(REPO / "scripts/ci_cache.sh"), "push", env={"AWS_ACCESS_KEY_ID": ""})
    assert no_keys.returncode == 0 and "no store credentials" in no_keys.stderr
