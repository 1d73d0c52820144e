"""Fixtures of the reliability suite: faulty loopback servers, stage runs, snapshots of a tree.

Every test in this folder gets the `reliability` marker: `pytest -m reliability` or
`pytest tests/reliability` runs the suite alone; `python tests/reliability/count_cases.py`
prints the README's table of fault classes and cases.
"""

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: a fault-injection case of tests/reliability (runs alone with -m)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.reliability)


# ---------------------------------------------------------------- faulty HTTP servers


@dataclass
class FaultServer:
    """A loopback HTTP server whose `behaviour(handler, name)` answers each GET of `/name`."""

    url: str
    requests: list[str] = field(default_factory=list)

    def count(self, name: str | None = None) -> int:
        return sum(1 for r in self.requests if name is None or r == name)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour: Callable  # set per server
    record: list
    closing: threading.Event

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.lstrip("/")
        self.record.append(name)
        try:
            type(self).behaviour(self, name)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    # Helpers for behaviours.
    def send(self, status: int, body: bytes = b"", length: int | None = None,
             headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def pause(self, seconds: float) -> bool:
        """Sleep, but return True at once when the server is shutting down."""
        return self.closing.wait(seconds)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up mid-body is what these servers are for


@pytest.fixture
def fault_server() -> Iterator[Callable[[Callable], FaultServer]]:
    """fault_server(behaviour) → a started FaultServer on 127.0.0.1; stopped after the test."""
    started = []

    def start(behaviour: Callable) -> FaultServer:
        record: list[str] = []
        closing = threading.Event()
        handler = type("Handler", (_Handler,), {
            "behaviour": staticmethod(behaviour), "record": record, "closing": closing,
        })
        server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((server, closing))
        return FaultServer(f"http://127.0.0.1:{server.server_port}/", record)

    yield start
    for server, closing in started:
        closing.set()
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------- running stages


def stage(project: Path, name: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m stages.<name>` in `project`, as DVC runs it."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [PYTHON, "-m", f"stages.{name}"], cwd=project, env=env,
        capture_output=True, text=True, timeout=timeout,
    )


def snapshot(root: Path, ignore: tuple[str, ...] = (".git", "__pycache__")) -> dict[str, tuple]:
    """Every file and directory under `root`: (kind, size, mtime_ns, sha256) by relative path."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ignore]
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = ("dir",)
        for name in filenames:
            path = Path(dirpath, name)
            stat = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            found[str(path.relative_to(root))] = ("file", stat.st_size, stat.st_mtime_ns, digest)
    return found


# ---------------------------------------------------------------- whole-pipeline runs

# The second run from scratch is the reference's twin: the same params, so the same bytes.
from conftest import PIPELINE_PARAMS, Repro, temporaries, wait_for  # noqa: E402, F401 (also for other modules)

SUMMARY = "metrics/summary.json"


def summary_bytes(project: Path) -> bytes:
    """The bytes of the one metrics file: equal bytes, equal results."""
    return (project / SUMMARY).read_bytes()


@dataclass
class Attempt:
    result: subprocess.CompletedProcess
    seconds: float
    first_still_running: bool


@dataclass
class ConcurrentRun:
    project: Path
    first: "Repro"
    first_code: int
    attempts: dict[str, Attempt]  # by the stage the first run was in


CONCURRENT_DURING = ("sgd_cv", "train")


@pytest.fixture(scope="session")
def concurrent_run(tmp_path_factory, dataset) -> ConcurrentRun:
    """A second run from scratch; while it runs sgd_cv, then train, `dvc repro` is tried again."""
    from conftest import dvc, make_project

    project = make_project(tmp_path_factory.mktemp("concurrent") / "project", **PIPELINE_PARAMS,
                           **{"download.sources": [str(dataset)]})
    first = Repro(project)
    attempts = {}
    try:
        for name in CONCURRENT_DURING:
            assert wait_for(lambda: first.stage_process(name), timeout=240), first.output
            start = time.monotonic()
            result = dvc(project, "repro", check=False)
            attempts[name] = Attempt(result, time.monotonic() - start, first.process.poll() is None)
        code = first.wait(300)
    finally:
        if first.process.poll() is None:
            first.kill()
    return ConcurrentRun(project, first, code, attempts)
