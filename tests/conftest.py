"""Shared fixtures: the real dataset, a loopback HTTP server, and a throwaway copy of the project."""

import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from scripts.project_files import PROJECT_FILES

REPO = Path(__file__).resolve().parents[1]
DATASET = Path("/usr/share/datasets/fashion-mnist")
SMALL = 2000  # max_samples of the end-to-end runs: 1,600 train, 400 validation, 2,000 test


def pytest_configure(config: pytest.Config) -> None:
    # The tests press Ctrl-C (send SIGINT) on the processes they start, as a terminal does. A shell
    # that starts the suite in the background (`make test &`) passes SIGINT on ignored, and an
    # ignored signal stays ignored across exec: give the children the terminal's default back.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def dataset() -> Path:
    """The four original .gz files, from Debian's dataset-fashion-mnist."""
    if not (DATASET / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{DATASET} is missing: apt-get install dataset-fashion-mnist (or run `make test`)")
    return DATASET


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """serve(directory) → the URL of an HTTP server on 127.0.0.1 serving it, stopped after the test."""
    servers = []

    def start(directory: Path, handler: type = QuietHandler) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def make_project(root: Path, **params: object) -> Path:
    """Copy the project into `root`, a new git repository with one commit; override top-level params."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    values = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in params.items():
        section, _, field = key.partition(".")
        if field:
            values[section][field] = value
        else:
            values[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    return root


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the venv's dvc in `root`, with the venv first on PATH as `make` sets it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=root, env=env, capture_output=True, text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def small_project(tmp_path: Path, dataset: Path, serve: Callable[[Path], str]) -> Path:
    """A copy of the project whose only source is a loopback server of the real files, on SMALL samples."""
    url = serve(dataset)
    return make_project(tmp_path / "project", max_samples=SMALL, **{"download.sources": [url]})
