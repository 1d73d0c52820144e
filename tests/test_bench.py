"""The benchmark runner, smoke-sized: both sides run end to end and the report holds together.

Timings are not checked (benchmarks measure, tests don't time); what is checked is what the
report claims besides them: which stages each run reran, and that the pipeline computes the
same accuracies as the plain script.
"""

import json
import os
import subprocess
import sys

from conftest import REPO

ALL_STAGES = {"download", "prepare", "split", "sgd_cv", "train", "evaluate", "summary"}


def test_the_benchmark_runner_on_a_small_sample(tmp_path, dataset):
    out, raw = tmp_path / "BENCHMARKS.md", tmp_path / "figures.json"
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp")}
    result = subprocess.run(
        # The smallest run the runner allows; the pipeline keeps params.yaml's epochs (5), so
        # --epochs stays 5 for the accuracies to compare; the experiment at 6 epochs.
        [sys.executable, "-m", "bench.run", "--runs", "1", "--max-samples", "500", "--exp-epochs", "6",
         "--out", str(out), "--json", str(raw)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    text = out.read_text()
    assert "a SMOKE sample (max_samples=500)" in text
    for heading in ("## Targets", "## Wall time (s)", "## Stages of cold `dvc repro`",
                    "## Where the time goes", "## Accuracy"):
        assert heading in text, heading
    assert "byte-identical across the 1 cold run(s): **yes**" in text

    figures = json.loads(raw.read_text())
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
