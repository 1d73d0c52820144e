"""The benchmark runner, smoke-sized: both sides run end to end and the report holds together.

Timings are not checked (benchmarks measure, tests don't time); what is checked is what the
report claims besides them: which stages each run reran, and that the pipeline computes the
same accuracies as the plain script. The run itself starts in the background as soon as this
test is selected (tests/conftest.py, BenchRun), while the other tests run.
"""

import json

ALL_STAGES = {"download", "prepare", "split", "sgd_cv", "train", "evaluate", "summary"}


def test_the_benchmark_runner_on_a_small_sample(bench_run):
    code = bench_run.wait()
    assert code == 0, (bench_run.work / "output.log").read_text()[-6000:]

    text = (bench_run.work / "BENCHMARKS.md").read_text()
    assert "a SMOKE sample (max_samples=500)" in text
    for heading in ("## Targets", "## Wall time (s)", "## Stages of cold `dvc repro`",
                    "## Where the time goes", "## Accuracy"):
        assert heading in text, heading
    assert "byte-identical across the 1 cold run(s): **yes**" in text

    figures = json.loads((bench_run.work / "figures.json").read_text())
    (cold,), (exp,) = figures["cold"], figures["exp"]
    assert {s["stage"] for s in cold["stages"]} == ALL_STAGES
    assert [s["stage"] for s in exp["stages"]] == ["train", "evaluate", "summary"]
    assert [n["stages"] for n in figures["noop"]] == [[], []]
    assert all(s["maxrss"] > 0 and s["wall"] > 0 for s in cold["stages"])

    # Same models, same protocol, same seeds: the same numbers as the plain script.
    (baseline,), (baseline_exp,) = figures["baseline"], figures["baseline_exp"]
    assert cold["sgd_cv_accuracy"] == baseline["sgd_cv_accuracy"]
    assert cold["keras_val_accuracy"] == baseline["keras_val_accuracy"]
    assert exp["keras_val_accuracy"] == baseline_exp["keras_val_accuracy"]
