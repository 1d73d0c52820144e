"""How a stage's process ends: stages.cli.run wraps every stage's entry point."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STAGE = """
import atexit, sys
from stages.cli import UserError, run

atexit.register(lambda: open(sys.argv[1], "w").write("exit handlers ran"))

def main():
    for i in range(20000):  # more than a pipe holds, and not flushed
        print(f"line {i}")
    print("last words", file=sys.stderr)
    if sys.argv[2] == "fail":
        raise UserError("epochs = 0 is not allowed")

run(main)
"""


def run_stage(tmp_path: Path, outcome: str) -> subprocess.CompletedProcess:
    """Run STAGE in a child process with its output piped, as DVC runs a stage."""
    return subprocess.run(
        [sys.executable, "-c", STAGE, str(tmp_path / "handlers"), outcome],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )


def test_a_finished_stage_exits_0_with_all_its_output_and_exit_handlers_run(tmp_path):
    result = run_stage(tmp_path, "succeed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"line {i}" for i in range(20000)]
    assert result.stderr == "last words\n"
    assert (tmp_path / "handlers").read_text() == "exit handlers ran"


def test_a_user_error_is_one_line_and_exit_1(tmp_path):
    result = run_stage(tmp_path, "fail")
    assert result.returncode == 1
    assert result.stderr == "last words\nerror: epochs = 0 is not allowed\n"
    assert (tmp_path / "handlers").read_text() == "exit handlers ran"
