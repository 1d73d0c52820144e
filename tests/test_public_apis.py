"""The stages use libraries through their public APIs only, and importing them changes nothing.

A private name (`_stochastic_gradient`, `atexit._run_exitfuncs`, `keras.src`) or a patched
library function breaks on a library upgrade without a word; process tricks (`os._exit`, file
descriptor redirection, /proc, pidfd, `sys.modules[...]`) make a stage behave unlike the Python
program it looks like. The scan reads the code with `ast`, so an alias does not hide a name.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGE_FILES = sorted((REPO / "stages").glob("*.py"))
PROJECT = "stages"
# Modules whose private names are off limits: these libraries, and all of CPython's own.
LIBRARIES = {"sklearn", "tensorflow", "keras", "dvc", "numpy"} | set(sys.stdlib_module_names)
BANNED_MODULES = {"ctypes", "cffi"}  # a way around every rule below
BANNED_ATTRIBUTES = {"dup", "dup2", "memfd_create", "pidfd_open", "pidfd_send_signal", "prctl"}
BANNED_TEXT = ("/proc", "/dev/fd", "memfd", "pidfd")


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def dotted(node: ast.AST) -> list[str] | None:
    """['os', 'path', 'join'] for `os.path.join`; None if the chain does not start at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def problems(source: str) -> list[str]:
    """Every use of a private internal or a process trick in `source`, as 'line N: what'."""
    tree = ast.parse(source)
    found = []
    imported: dict[str, str] = {}  # local name → the library module or object it is bound to

    def report(node: ast.AST, what: str) -> None:
        found.append(f"line {node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = f"{module}.{alias.name}" if module else alias.name
                top = full.split(".")[0]
                if top == PROJECT or node.__class__ is ast.ImportFrom and node.level:
                    continue
                if "keras.src" in full or full.startswith("keras.src"):
                    report(node, f"imports {full} (Keras's private implementation)")
                if top in BANNED_MODULES:
                    report(node, f"imports {top}")
                if top in LIBRARIES and any(private(part) for part in full.split(".")):
                    report(node, f"imports the private {full}")
                if alias.name in BANNED_ATTRIBUTES:
                    report(node, f"imports {full}")
                local = alias.asname or (alias.name if module else alias.name.split(".")[0])
                imported[local] = full if module or alias.asname else top

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (chain := dotted(node)) and chain[0] in imported:
            full = imported[chain[0]].split(".") + chain[1:]
            if full[0] in LIBRARIES and any(private(part) for part in chain[1:]):
                report(node, f"uses the private {'.'.join(full)}")
            if chain[-1] in BANNED_ATTRIBUTES:
                report(node, f"uses {'.'.join(full)}")
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and (chain := dotted(target)) and chain[0] in imported:
                report(node, f"patches {'.'.join(chain)} (an attribute of an imported module)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and isinstance(node.args[0], (ast.Name, ast.Attribute)):
                chain = dotted(node.args[0])
                if chain and chain[0] in imported:
                    report(node, f"{node.func.id} on {'.'.join(chain)} (patches an imported module)")
        if isinstance(node, (ast.Subscript, ast.Attribute)):
            value = node.value
            if dotted(value) == ["sys", "modules"] and "sys" in imported:
                what = "sys.modules[...]" if isinstance(node, ast.Subscript) else f"sys.modules.{node.attr}"
                report(node, what)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for text in BANNED_TEXT:
                if text in node.value:
                    report(node, f"the text {text!r}")
    return sorted(set(found), key=lambda line: int(line.split(":")[0].split()[1]))


@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: p.name)
def test_a_stage_uses_no_private_internals_or_process_tricks(path):
    assert problems(path.read_text()) == []


@pytest.mark.parametrize("source, expected", [
    ("from sklearn.linear_model import _stochastic_gradient",
     "imports the private sklearn.linear_model._stochastic_gradient"),
    ("from sklearn.linear_model._base import LinearClassifierMixin",
     "imports the private sklearn.linear_model._base.LinearClassifierMixin"),
    ("import keras.src.saving as s", "imports keras.src.saving (Keras's private implementation)"),
    ("from keras.src.saving import saving_lib", "imports keras.src.saving.saving_lib (Keras's private implementation)"),
    ("import atexit\natexit._run_exitfuncs()", "uses the private atexit._run_exitfuncs"),
    ("import os\nos._exit(0)", "uses the private os._exit"),
    ("import numpy as np\nnp._core.multiarray", "uses the private numpy._core"),
    ("import tensorflow as tf\ntf.compat.v1._x", "uses the private tensorflow.compat.v1._x"),
    ("import os\nos.dup2(3, 2)", "uses os.dup2"),
    ("from os import memfd_create", "imports os.memfd_create"),
    ("import os\nfd = os.memfd_create('x')", "uses os.memfd_create"),
    ("import os\nos.pidfd_open(1)", "uses os.pidfd_open"),
    ("open('/proc/self/status')", "the text '/proc'"),
    ("import sys\nsys.modules['tensorflow'] = None", "sys.modules[...]"),
    ("import sys\nsys.modules.pop('keras')", "sys.modules.pop"),
    ("import sklearn.base\nsklearn.base.clone = lambda m: m", "patches sklearn.base.clone"),
    ("from sklearn.linear_model import SGDClassifier\nSGDClassifier.fit = None", "patches SGDClassifier.fit"),
    ("import sys\nsys.excepthook = print", "patches sys.excepthook"),
    ("import joblib\nsetattr(joblib, 'Parallel', None)", "setattr on joblib"),
    ("import ctypes", "imports ctypes"),
])
def test_the_scan_finds_each_kind_of_problem(source, expected):
    assert any(expected in problem for problem in problems(source)), problems(source)


def test_the_scan_accepts_public_uses():
    source = """
import os, sys, signal
from sklearn.model_selection import cross_validate
from stages.files import _private_helper_of_the_project
os.environ["KERAS_HOME"] = "x"
if "keras" not in sys.modules:
    pass
signal.signal(signal.SIGTERM, print)
print(sys.__name__, os.path.join("a", "b"))
"""
    assert problems(source) == []


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
