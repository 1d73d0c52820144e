"""Team scale, end to end against a real S3 store on 127.0.0.1: push, pull, run-cache, experiments.

Only DVC's own commands move data: `dvc push --run-cache`, `dvc exp push`, `dvc pull --run-cache`,
`dvc exp pull`, `dvc repro --pull`. The summary stage's only output, metrics/summary.json, is not
cached (it is committed to Git), so no command uploads it with the stage's run record: in another
clone summary reruns (0.1 s of arithmetic) where every other stage is restored.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import git

from .helpers import REPO, STAGES, clone, digests, ok, ran, restored, run

RESULTS = ("data/model.keras", "metrics", "plots")  # what an experiment changes


def test_fresh_clone_pulls_every_output_and_reruns_nothing(team, tmp_path):
    b = clone(team.origin, tmp_path / "b")
    assert not (b / ".dvc/cache").exists()
    ok(run(b, "dvc", "pull", env=team.env))
    assert digests(b) == team.a_outputs
    out = ok(run(b, "dvc", "repro", env=team.env))
    assert "Running stage" not in out and "Data and pipelines are up to date." in out
    assert git(b, "status", "--porcelain") == ""


def test_every_stage_but_summary_is_restored_from_the_run_cache(team, tmp_path):
    # A clone whose dvc.lock does not describe its params (here: none at all) can only skip a
    # stage through the run-cache: the store's record of A's run with the same code and params.
    c = clone(team.origin, tmp_path / "c")
    (c / "dvc.lock").unlink()
    out = ok(run(c, "dvc", "repro", "--pull", "--allow-missing", env=team.env))
    assert restored(out) == set(STAGES) - {"summary"}, out
    assert ran(out) == {"summary"}, out  # its record names an object no push uploads
    assert digests(c) == team.a_outputs  # summary.json included: the same inputs, the same bytes
    assert git(c, "status", "--porcelain") == ""  # the same dvc.lock as A's, byte for byte


def worker(root: Path, name: str, args: list[str], env: dict[str, str]) -> str:
    """One machine of a sweep: its experiment, then the Git ref, outputs and run records shared."""
    out = ok(run(root, "dvc", "exp", "run", "--pull", "-n", name, *args, env=env))
    ok(run(root, "dvc", "exp", "push", "--run-cache", "origin", name, env=env))
    return out


def test_experiments_travel_between_machines(team, tmp_path):
    # w1 trains another model; w2 changes only the SGD baseline (no TensorFlow run: the test
    # needs one new model, not two).
    experiments = {"w1": ["-S", "epochs=2"], "w2": ["-S", "sgd.max_iter=5"]}
    workers = {name: clone(team.origin, tmp_path / name) for name in experiments}
    # Both workers run their experiment at the same time against the same store.
    with ThreadPoolExecutor(len(workers)) as pool:
        outputs = dict(zip(workers, pool.map(worker, workers.values(), workers,
                                             experiments.values(), [team.env] * len(workers))))
    assert ran(outputs["w1"]) == {"train", "evaluate", "summary"}, outputs["w1"]
    assert ran(outputs["w2"]) == {"sgd_cv", "summary"}, outputs["w2"]

    # A third machine, empty cache, runs w1's params again: the store has that run of train and
    # evaluate, so they are restored; summary reruns (its output is not cached).
    again = clone(team.origin, tmp_path / "again")
    out = ok(run(again, "dvc", "exp", "run", "--pull", "-S", "epochs=2", env=team.env))
    assert restored(out) == {"train", "evaluate"}, out
    assert ran(out) == {"summary"}, out
    assert digests(again, RESULTS) == digests(workers["w1"], RESULTS)

    # The lead pulls both and sees the whole sweep in one table.
    lead = clone(team.origin, tmp_path / "lead")
    ok(run(lead, "dvc", "exp", "pull", "origin", *experiments, env=team.env))
    shown = json.loads(ok(run(lead, "dvc", "exp", "show", "--json", env=team.env)).strip())
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            found[exp["name"]] = rev["data"]["metrics"]["metrics/summary.json"]["data"]
    assert set(found) == set(experiments), shown
    for name, root in workers.items():
        assert found[name] == json.loads((root / "metrics/summary.json").read_text())

    # Applying w1 and pulling brings w1's model, byte for byte (not A's).
    ok(run(lead, "dvc", "exp", "apply", "w1", env=team.env))
    ok(run(lead, "dvc", "pull", env=team.env))
    assert digests(lead, RESULTS) == digests(workers["w1"], RESULTS)
    assert digests(lead, ("data/model.keras",)) != {"data/model.keras": team.a_outputs["data/model.keras"]}


def test_ci_reruns_only_what_a_change_touches(team, tmp_path):
    # The pull-request job: a change to an sgd param, the rest restored from the store.
    pr = clone(team.origin, tmp_path / "pr")
    params = (pr / "params.yaml").read_text().replace("max_iter: 3", "max_iter: 4")
    (pr / "params.yaml").write_text(params)
    out = ok(run(pr, str(REPO / "scripts/ci_cache.sh"), "repro", env=team.env))
    assert ran(out) == {"sgd_cv", "summary"}, out
    assert digests(pr, ("data/model.keras",)) == {"data/model.keras": team.a_outputs["data/model.keras"]}
    # Without the store's keys (no repository secrets) the push step does nothing and succeeds.
    no_keys = run(pr, str(REPO / "scripts/ci_cache.sh"), "push", env={"AWS_ACCESS_KEY_ID": ""})
    assert no_keys.returncode == 0 and "no store credentials" in no_keys.stderr
