"""Importing the stages changes nothing global and writes nothing: a stage sets up when it runs."""

import json
import subprocess
import sys

from scripts.toolkit import REPO

IMPORT_ALL = """
import faulthandler, importlib, json, os, signal, sys, threading
import sklearn  # sets KMP_* variables on import: scikit-learn's doing, not the stages'

def state():
    return {
        "hooks": list(map(repr, (sys.excepthook, threading.excepthook, sys.unraisablehook,
                                 sys.displayhook))),
        "signals": {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                    if isinstance(s, signal.Signals) and s not in (signal.SIGKILL, signal.SIGSTOP)},
        "os.environ": dict(os.environ),
        "sys.modules set to None": sorted(name for name, m in sys.modules.items() if m is None),
        "streams": [repr(sys.stdin), repr(sys.stdout), repr(sys.stderr)],
        "cwd": os.getcwd(), "faulthandler": faulthandler.is_enabled(),
    }

before = state()
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
after = state()
print(json.dumps({key: [before[key], after[key]] for key in before if before[key] != after[key]}))
"""


def test_importing_the_stages_changes_nothing_global(tmp_path):
    """A fresh interpreter (only there is an import the first), in an empty directory."""
    stages = sorted(f"stages.{p.stem}".removesuffix(".__init__")
                    for p in (REPO / "stages").glob("*.py"))
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL, json.dumps(stages)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {}
    assert list(tmp_path.iterdir()) == []  # and nothing written
