"""The benchmark runner, smoke-sized (`-m bench`): what its report claims besides timings."""

import json
import os
import subprocess
import sys

import pytest

from scripts.toolkit import REPO, STAGES
from stages.summary import HEADLINE

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


@pytest.mark.bench
def test_the_benchmark_runner_on_a_small_sample(tmp_path, dataset):
    out, raw = tmp_path / "BENCHMARKS.md", tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--runs", "2", "--max-samples", "500", "--epochs", "1",
         "--exp-epochs", "2", "--out", str(out), "--json", str(raw)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # The figures went between the template's markers; its hand-written sections around them stayed.
    template = (REPO / "bench/BENCHMARKS.md").read_text()
    head, rest = out.read_text().split(START)
    figures, tail = rest.split(END)
    assert (head, tail) == (template.split(START)[0], template.split(END)[1])
    for line in ("on a smoke sample (max_samples=500)", "## Targets", "## Wall time (s)",
                 "## Accuracy", "## Stages of cold `dvc repro -f`",
                 "## Stages of `dvc exp run -S epochs=2`",
                 "byte-identical across the 2 cold run(s): **yes**",
                 "| accuracies equal to the baseline's | 6 of 6 equal in every round | met |"):
        assert line in figures, line

    figures = json.loads(raw.read_text())
    assert len(figures["cold"]) == len(figures["exp"]) == 2
    rounds = zip(figures["cold"], figures["exp"], figures["baseline"], figures["baseline_exp"],
                 strict=True)
    for cold, exp, baseline, baseline_exp in rounds:
        assert [s["stage"] for s in cold["stages"]] == list(STAGES)
        assert [s["stage"] for s in exp["stages"]] == ["train", "evaluate", "summary"]
        # A Python interpreter holds more than 10 MiB; the target is at most 1 GiB a stage.
        rss = {s["stage"]: s["maxrss"] / 2**20 for s in cold["stages"] + exp["stages"]}
        assert all(10 < mib <= 1024 for mib in rss.values()), rss
        assert 0 < sum(s["wall"] for s in cold["stages"]) <= cold["wall"]  # stages run inside dvc
        # Same models, protocol and seeds: the plain script's numbers, to the pipeline's 6 decimals.
        for key in HEADLINE:
            assert cold[key] == round(baseline[key], 6), key
            assert exp[key] == round(baseline_exp[key], 6), key
    assert [n["stages"] for n in figures["noop"]] == [[]] * 4
