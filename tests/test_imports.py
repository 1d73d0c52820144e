"""Importing the stages changes nothing global: no hook, signal handler, environment variable, stream or
working directory of the importing program, and no file written. What a stage sets up, its entry point
(stages.cli.run) sets up: tests, `python -m stages.<name>` and whoever reuses its functions import it."""

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE_FILES = sorted((REPO / "stages").glob("*.py"))

IMPORT_ALL = """
import faulthandler, importlib, json, os, signal, sys, threading

def state():
    return {
        "hooks": [repr(hook) for hook in (sys.excepthook, threading.excepthook, sys.unraisablehook,
                                          sys.displayhook)],
        "signals": {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                    if isinstance(s, signal.Signals) and s not in (signal.SIGKILL, signal.SIGSTOP)},
        "os.environ": dict(os.environ),
        "sys.modules set to None": sorted(name for name, m in sys.modules.items() if m is None),
        "streams": [repr(sys.stdin), repr(sys.stdout), repr(sys.stderr)],
        "cwd": os.getcwd(), "faulthandler": faulthandler.is_enabled(),
    }

libraries, stages = json.loads(sys.argv[1])
for name in libraries:  # what the libraries do on import (scikit-learn sets KMP_* variables) is theirs
    importlib.import_module(name)
before = state()
for name in stages:
    importlib.import_module(name)
after = state()
print(json.dumps({key: [before[key], after[key]] for key in before if before[key] != after[key]}))
"""


def test_importing_the_stages_changes_nothing_global(tmp_path):
    """A fresh interpreter (only there is an import the first), in an empty directory."""
    libraries = set()
    for path in STAGE_FILES:  # the modules other than the project's that a stage imports at import
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                libraries |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                libraries.add(node.module)
    libraries = sorted(name for name in libraries if name.split(".")[0] != "stages")
    modules = ["stages", *(f"stages.{path.stem}" for path in STAGE_FILES if path.stem != "__init__")]
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps([libraries, modules])], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {}
    assert list(tmp_path.iterdir()) == []  # and nothing written
