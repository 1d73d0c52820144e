"""Experiments queued and run two at a time: each in its own copy, none writing outside it.

`dvc exp run --run-all -j 2` runs queued experiments in temporary copies of the repository
(.dvc/tmp/exps) at the same time. They share nothing but DVC's cache: the stages give Keras and
Matplotlib config directories in the workspace (.dvc/tmp/stage-home), so no ~/.keras,
~/.cache/matplotlib or ~/.config/matplotlib is read or written. Training is deterministic, so
two runs interfering (sharing threads, files or seeds) would show as histories that disagree.
"""

from scripts.toolkit import APPLIED_EPOCHS, EXPERIMENT_EPOCHS, SMALL_RUN_PARAMS, ran_stages


def test_queued_experiments_run_in_parallel_without_interfering(queued_experiments):
    queue = queued_experiments
    assert queue.queued.count("Queued experiment") == len(EXPERIMENT_EPOCHS), queue.queued
    assert queue.two_at_once  # two workers, each running one experiment in its own copy

    runs = queue.runs
    assert sorted(runs) == list(EXPERIMENT_EPOCHS)
    base = queue.histories["base"]
    assert len(base) == SMALL_RUN_PARAMS["epochs"]
    longest = queue.histories[max(EXPERIMENT_EPOCHS)]
    for epochs, run in runs.items():
        assert run["state"] == "success"
        summary = run["metrics"]
        assert 0.6 < summary["keras_test_accuracy"] <= 1
        # Each run trained for its own epochs, and as it would have alone: training is
        # deterministic, so the histories agree on the epochs they share.
        history = queue.histories[epochs]
        assert len(history) == epochs
        shared = min(epochs, len(base))
        assert history == longest[:epochs] and history[:shared] == base[:shared]
    # Only what depends on `epochs` ran (the data came from the cache, SGD was not redone).
    log = runs[APPLIED_EPOCHS]["log"]
    assert ran_stages(log) == ["train", "evaluate", "summary"], log
    assert len({run["metrics"]["sgd_cv_accuracy"] for run in runs.values()}) == 1  # the same SGD result
    losses = {run["metrics"]["keras_val_loss"] for run in runs.values()}
    assert len(losses) == len(EXPERIMENT_EPOCHS)  # different results

    # Nothing was written outside the workspaces: no ~/.keras/keras.json, no Matplotlib font
    # cache or config, nothing left in $TMPDIR.
    assert sorted(str(p.relative_to(queue.home)) for p in queue.home.rglob("*")) == []
    assert sorted(str(p.relative_to(queue.tmpdir)) for p in queue.tmpdir.rglob("*")) == []
