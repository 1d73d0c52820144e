"""Importing the stages changes nothing global: no hook, signal handler, environment variable,
stream or working directory of the importing program, and no file written.

A stage is imported by the tests, by `python -m stages.<name>` and by whoever reuses its functions;
what it sets up it sets up in its entry point (stages.cli.run), not at import.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE_FILES = sorted((REPO / "stages").glob("*.py"))
PROJECT = "stages"


IMPORT_ALL = """
import faulthandler, json, os, signal, sys, threading

def state():
    return {
        "sys.excepthook": repr(sys.excepthook), "threading.excepthook": repr(threading.excepthook),
        "sys.unraisablehook": repr(sys.unraisablehook), "sys.displayhook": repr(sys.displayhook),
        "signals": {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                    if isinstance(s, signal.Signals) and s not in (signal.SIGKILL, signal.SIGSTOP)},
        "os.environ": dict(os.environ),
        "sys.modules set to None": sorted(name for name, m in sys.modules.items() if m is None),
        "streams": [repr(sys.stdin), repr(sys.stdout), repr(sys.stderr)],
        "cwd": os.getcwd(), "faulthandler": faulthandler.is_enabled(),
    }

import importlib
libraries, stages = json.loads(sys.argv[1])
for name in libraries:  # what the libraries do on import (scikit-learn sets KMP_* variables) is theirs
    importlib.import_module(name)
before = state()
for name in stages:
    importlib.import_module(name)
after = state()
print(json.dumps({key: [before[key], after[key]] for key in before if before[key] != after[key]}))
"""


def module_level_imports(path: Path) -> set[str]:
    """The modules other than the project's that `path` imports when it is imported."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] != PROJECT}


def test_importing_the_stages_changes_nothing_global(tmp_path):
    """A fresh interpreter (only there is an import the first), in an empty directory."""
    libraries = sorted(set().union(*(module_level_imports(path) for path in STAGE_FILES)))
    modules = ["stages", *(f"stages.{path.stem}" for path in STAGE_FILES if path.stem != "__init__")]
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps([libraries, modules])], cwd=tmp_path,
        capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {}
    assert list(tmp_path.iterdir()) == []  # and nothing written
