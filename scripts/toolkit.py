"""The developer toolkit of tests/, bench/ and scripts/: project copies, dvc, git, the S3 store."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil
import yaml

from stages.data import DEBIAN
from stages.data import OUTPUTS as STAGE_OUTPUTS
from stages.params import PARAMS_FILE, read
from sweep import CLONES_VARIABLE, Shown, shown_rows

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STAGES = tuple(STAGE_OUTPUTS)  # the pipeline's stages, in order
# What a fresh copy of the pipeline needs to run and plot.
PROJECT_FILES = ("dvc.yaml", "params.yaml", "stages", ".dvc/config", ".dvc/plots", ".dvcignore",
                 ".gitignore")
# The tests' shared runs (tests/conftest.py): small, and every stage still does its real work.
SMALL = 2000  # max_samples: 1,600 train, 400 validation, 2,000 test
SMALL_RUN_PARAMS = {"max_samples": SMALL, "epochs": 2, "sgd.folds": 2,
                    "download.sources": [str(DEBIAN)]}
# The shared queue's experiments, one `-S` each: a longer training (the small run trains 2 epochs),
# applied and committed by the queue's fixture, and another SGD (no network to train).
QUEUED = {"epochs": 3, "sgd.folds": 3}
APPLIED_EPOCHS = QUEUED["epochs"]
# The reference run's stages during which `dvc repro` is tried again (test_concurrency.py).
CONCURRENT_DURING = ("sgd_cv", "train")
BUCKET = "fashion-mnist"  # the bucket of the default remote `storage` (s3://fashion-mnist/cache)
REMOTE = "storage"
# Every output of the pipeline (metrics/summary.json is in Git, the rest in DVC's cache).
OUTPUTS = tuple(str(path) for paths in STAGE_OUTPUTS.values() for path in paths)


class CommandFailed(AssertionError):
    """A command run by run(check=True), dvc() or git() failed; the message holds its output."""


def default_params() -> dict:
    """The committed params.yaml, a fresh copy each call."""
    return read(REPO / PARAMS_FILE)


def venv_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ with the venv first on PATH, PYTHONPATH unset, TensorFlow quiet; `env` on top.

    Without PYTHONPATH a stage imports the project it runs in."""
    merged = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
              "TF_CPP_MIN_LOG_LEVEL": "3"}
    merged.pop("PYTHONPATH", None)
    return {**merged, **(env or {})}


def run(cwd: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = False,
        timeout: float | None = 600) -> subprocess.CompletedProcess:
    """Run a program of the venv (dvc, python, ...) or of PATH in `cwd`; output captured as text."""
    program = str(VENV_BIN / args[0]) if (VENV_BIN / args[0]).exists() else args[0]
    result = subprocess.run([program, *args[1:]], cwd=cwd, env=venv_env(env), capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if check and result.returncode != 0:
        raise CommandFailed(f"{' '.join(args)} failed in {cwd} (exit {result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc(cwd: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True,
        timeout: float | None = 600) -> subprocess.CompletedProcess:
    """The venv's `dvc ARGS` in `cwd`; raises with its output on failure unless `check=False`."""
    return run(cwd, "dvc", *args, env=env, check=check, timeout=timeout)


def module_output(project: Path, module: str, *args: str, env: Mapping[str, str],
                  timeout: float = 6 * 3600) -> str:
    """The stdout of `python -m MODULE ARGS` in `project`; if it fails, exit with its last line."""
    result = run(project, "python", "-m", module, *args, env=env, timeout=timeout)
    if result.returncode != 0:  # its `error:` line, or a traceback's last
        why = (result.stderr.strip() or "no output on stderr").splitlines()[-1]
        raise SystemExit(f"error: `python -m {module}` in {project} exited with "
                         f"{result.returncode}: {why.removeprefix('error: ')}")
    return result.stdout


def git(cwd: Path, *args: str) -> str:
    """`git ARGS` in `cwd` with a fixed identity; raises on failure; returns its stdout."""
    identity = ["-c", "user.name=toolkit", "-c", "user.email=toolkit@localhost"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise CommandFailed(f"git {' '.join(args)} failed in {cwd}:\n{result.stderr}")
    return result.stdout


def set_params(project: Path, values: Mapping[str, Any]) -> None:
    """Set params.yaml's values by dotted key (`{"sgd.folds": 2}`), as `dvc exp run -S` does."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in values.items():
        *sections, name = key.split(".")
        target = params
        for section in sections:
            target = target[section]
        target[name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(root: Path, params: Mapping[str, Any] | None = None, origin: Path | None = None,
                 rev: str | None = None) -> Path:
    """The pipeline (the work tree's, or commit `rev`'s) as a new Git repository, `params` set."""
    root.mkdir(parents=True, exist_ok=True)
    if rev is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", rev, *PROJECT_FILES], cwd=REPO,
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            raise CommandFailed(f"git archive {rev} failed in {REPO}: "
                                f"{archive.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(root, filter="data")
    for name in PROJECT_FILES if rev is None else ():
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    if params:
        set_params(root, params)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")
    if origin is not None:
        git(root, "init", "-q", "--bare", "-b", "main", str(origin))
        git(root, "remote", "add", "origin", str(origin))
        git(root, "push", "-q", "origin", "main")
    return root


def clone(origin: Path, target: Path) -> Path:
    """A Git clone of `origin`'s main, as a teammate makes one: no DVC cache, no outputs."""
    git(target.parent, "clone", "-q", "-b", "main", str(origin), str(target))
    return target


def digests(root: Path, paths: tuple[str, ...] = OUTPUTS) -> dict[str, str]:
    """sha256 of every file under `paths` of `root` but .gitignore files, by relative path."""
    found = {}
    for name in paths:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if path.name != ".gitignore":
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def temporaries(root: Path) -> list[str]:
    """What a killed stage leaves beside an output (`.<name>-tmp-*`), anywhere under `root`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*-tmp-*") if ".git" not in p.parts)


def error_line(code: int, lines: list[str]) -> str:
    """The single `error: ...` line of an exit 1 (the project's rule for bad input), checked."""
    if code != 1 or len(lines) != 1 or not lines[0].startswith("error: "):
        raise AssertionError(f"expected exit 1 and one `error:` line, got exit {code}: "
                             f"{lines[-20:]}")
    return lines[0]


def replace_block(text: str, name: str, block: str) -> str:
    """`text` with `block` between its `<!-- name:start -->` and `<!-- name:end -->` lines."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"error: the document needs one {start} line and one {end} line")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{block.rstrip()}\n{end}{rest.split(end, 1)[1]}"


def write_block(path: Path, name: str, block: str) -> None:
    """Rewrite the `name` block of the Markdown file `path` (replace_block), the rest as it was."""
    text = path.read_text() if path.exists() else f"<!-- {name}:start -->\n<!-- {name}:end -->\n"
    path.write_text(replace_block(text, name, block))


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll `condition` until it is truthy (return it) or `timeout` s pass (return None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, in order, by its "Running stage" lines."""
    return re.findall(r"Running stage '(\w+)'", output)


def exp_show(project: Path, *args: str, env: Mapping[str, str] | None = None) -> list[Shown]:
    """`dvc exp show --json ARGS`: the commits and their experiments, the workspace left out."""
    listing = json.loads(dvc(project, "exp", "show", "--json", *args, env=env).stdout)
    return [row for row in shown_rows(listing) if row.baseline != "workspace"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """`127.0.0.1:PORT`, bound and never listening: refused, and no other process can take it."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{closed.getsockname()[1]}"


def stages_command(*names: str, prelude: str = "") -> list[str]:
    """One process that runs `prelude`, then each stage as `python -m stages.<name>` does, in turn.

    One fresh process: TensorFlow is imported once and nothing of the caller's state inherited."""
    return [str(VENV_BIN / "python"), "-c", prelude + "import runpy; " + "; ".join(
        f"runpy.run_module('stages.{name}', run_name='__main__')" for name in names)]


def processes_in(root: Path, argument: str | None = None) -> list[psutil.Process]:
    """Other processes working under `root` (with `argument` on their command line, if given)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cwd, cmdline = process.info["cwd"] or "", process.info["cmdline"] or []
        if (Path(cwd).is_relative_to(root) and process.pid != os.getpid()
                and (argument is None or argument in cmdline)):
            found.append(process)
    return found


def kill_processes_in(root: Path) -> None:
    """End every process still running under `root` (an orphaned dvc of a stopped worker)."""
    for process in processes_in(root):
        with contextlib.suppress(psutil.Error):
            process.kill()


def snapshot(root: Path, ignore: tuple[str, ...] = (".git", "__pycache__")) -> dict[str, tuple]:
    """Every file and directory under `root`: (kind, size, mtime_ns, sha256) by relative path."""
    found: dict[str, tuple] = {}
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


@dataclass
class Store:
    """An S3 server on 127.0.0.1 (`rclone serve s3`), the directories of `root` its buckets."""

    root: Path
    port: int = 0  # 0: a free one
    key: str = field(default_factory=lambda: "dvc" + secrets.token_hex(8))
    # Hex, not token_urlsafe: a leading "-" would read as an option to `dvc remote modify`.
    secret: str = field(default_factory=lambda: secrets.token_hex(24), repr=False)
    extra_args: tuple[str, ...] = ()  # e.g. ("--bwlimit", "10M")
    process: subprocess.Popen | None = field(default=None, repr=False)

    @classmethod
    def of_project(cls, project: Path, root: Path) -> Store:
        """The store `project`'s .dvc/config.local names (endpoint, keys), else a new one."""
        listed = dvc(project, "config", "--local", "--list").stdout.splitlines()
        local = dict(line.split("=", 1) for line in listed if "=" in line)
        endpoint, key, secret = (local.get(f"remote.{REMOTE}.{option}", "") for option in
                                 ("endpointurl", "access_key_id", "secret_access_key"))
        if not (endpoint and key and secret):
            return cls(root)
        return cls(root, port=int(endpoint.rsplit(":", 1)[1]), key=key, secret=secret)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables with which DVC (boto) talks to this store and to nothing else."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
        }

    def sweep_env(self, clones: Path) -> dict[str, str]:
        """env(), the sweep's modules from this repo, and `clones` as the workers' clones' home."""
        return {**self.env(), "PYTHONPATH": str(REPO), CLONES_VARIABLE: str(clones)}

    def remote_settings(self) -> list[tuple[str, str]]:
        return [("endpointurl", self.endpoint), ("access_key_id", self.key),
                ("secret_access_key", self.secret)]

    def teammate_commands(self) -> str:
        """What a teammate runs in their clone to use this store: DVC's own commands, one a line."""
        return "".join(f"dvc remote modify --local {REMOTE} {option} {value}\n"
                       for option, value in self.remote_settings())

    def configure(self, project: Path) -> None:
        """Point `project`'s remote at this store in its git-ignored .dvc/config.local."""
        for option, value in self.remote_settings():
            dvc(project, "remote", "modify", "--local", REMOTE, option, value)
        (project / ".dvc/config.local").chmod(0o600)  # it holds the secret: for its owner only

    def answers(self) -> bool:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # to loopback
        try:
            no_proxy.open(self.endpoint + "/", timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 to an unsigned request: the server is up
        except OSError:
            return False
        return True

    def start(self, timeout: float = 20) -> Store:
        """Start the server with BUCKET in it and wait until it answers; raises RuntimeError."""
        self.port = self.port or free_port()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # the team's data: owner only
        (self.root / BUCKET).mkdir(exist_ok=True)  # a directory of root is a bucket
        with tempfile.TemporaryFile() as log:  # the server's messages, read if it fails to start
            # --etag-hash MD5: S3 clients compare a part's ETag with its MD5.
            self.process = subprocess.Popen(
                [str(VENV_BIN / "rclone"), "--config", "/dev/null", "serve", "s3",
                 "--addr", f"127.0.0.1:{self.port}", "--etag-hash", "MD5", *self.extra_args,
                 str(self.root)],
                # The keys go through the environment: every local user can read a command line.
                # A list flag read from the environment is CSV: the pair is quoted to stay one item.
                env={**os.environ, "RCLONE_AUTH_KEY": f"\"{self.key},{self.secret}\""},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )
            deadline = time.monotonic() + timeout
            while not self.answers():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log.seek(0)
                    message = log.read().decode(errors="replace").strip().splitlines()
                    raise RuntimeError(f"the store did not start on {self.endpoint}: "
                                       f"{message[-1] if message else f'no answer in {timeout} s'}")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server (its data stays in `root`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
