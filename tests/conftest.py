"""Shared fixtures: the real dataset, a loopback HTTP server, throwaway copies of the project, and
the pipeline runs that several tests only read (session-scoped: each runs once per session)."""

import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from scripts.project_files import PROJECT_FILES

REPO = Path(__file__).resolve().parents[1]
DATASET = Path("/usr/share/datasets/fashion-mnist")
SMALL = 2000  # max_samples of the end-to-end runs: 1,600 train, 400 validation, 2,000 test
VENV_BIN = Path(sys.executable).parent
# The end-to-end runs: small, and every stage still does its real work.
PIPELINE_PARAMS = {"max_samples": SMALL, "epochs": 2, "sgd.folds": 2}
STAGES = ("download", "prepare", "split", "sgd_cv", "train", "evaluate", "summary")
# metrics/summary.json's keys, in order: the three accuracies the study compares first.
SUMMARY_KEYS = ["sgd_cv_accuracy", "keras_val_accuracy", "keras_test_accuracy", "sgd_cv_accuracy_std",
                "keras_train_accuracy", "keras_train_loss", "keras_val_loss", "keras_test_loss"]


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, in order, by its "Running stage" lines."""
    return re.findall(r"Running stage '(\w+)'", output)


def venv_env(keep_pythonpath: bool = False, **extra: str) -> dict[str, str]:
    """os.environ with the venv first on PATH, as `make` sets it, and PYTHONPATH removed (unless
    `keep_pythonpath`); `extra` adds or overrides variables."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    if not keep_pythonpath:
        env.pop("PYTHONPATH", None)
    return {**env, **extra}


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[QUEUE_WANTED] = any("queued_experiments" in getattr(item, "fixturenames", ())
                                             for item in session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    queue = session.config.stash.get(QUEUE, None)
    if queue is not None:  # no worker outlives the tests, whatever happened
        dvc(queue.project, "queue", "stop", "--kill", check=False, env=queue.env)


def pytest_configure(config: pytest.Config) -> None:
    # The tests press Ctrl-C (send SIGINT) on the processes they start, as a terminal does. A shell
    # that starts the suite in the background (`make test &`) passes SIGINT on ignored, and an
    # ignored signal stays ignored across exec: give the children the terminal's default back.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # A copy of the project names the default remote s3://fashion-mnist/cache, whose endpoint and
    # keys come from the environment. A dvc command that reaches for it unasked (say `dvc plots
    # diff` of a revision whose data is not in the cache) must find nothing but a closed port on
    # 127.0.0.1, never AWS or its metadata address; the team tests pass their own store's address.
    os.environ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    # Loopback (the test servers, the store) never goes through a proxy the environment names.
    for name in ("NO_PROXY", "no_proxy"):
        existing = os.environ.get(name)
        os.environ[name] = "127.0.0.1,localhost" + (f",{existing}" if existing else "")


@pytest.fixture(scope="session")
def dataset() -> Path:
    """The four original .gz files, from Debian's dataset-fashion-mnist."""
    if not (DATASET / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{DATASET} is missing: apt-get install dataset-fashion-mnist (or run `make test`)")
    return DATASET


@pytest.fixture(scope="session")
def small(dataset: Path):
    """(x, y): the first SMALL training images, prepared as the prepare stage does."""
    import gzip

    from stages.data import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
    from stages.prepare import scale_and_flatten

    images = parse_idx(gzip.decompress((dataset / "train-images-idx3-ubyte.gz").read_bytes()), IMAGES_MAGIC)
    labels = parse_idx(gzip.decompress((dataset / "train-labels-idx1-ubyte.gz").read_bytes()), LABELS_MAGIC)
    return scale_and_flatten(images[:SMALL]), labels[:SMALL]


def model_params(**changes: object):
    """params.Model with the study's defaults, `changes` applied."""
    from stages import params

    defaults = dict(hidden=[], activation="relu", optimizer="rmsprop", learning_rate=0.001, dropout=0.0)
    return params.Model(**{**defaults, **changes})


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


def dvc(root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run the venv's dvc in `root`, with the venv first on PATH as `make` sets it; `env` adds variables."""
    result = subprocess.run(
        [str(VENV_BIN / "dvc"), *args],
        cwd=root, env=venv_env(keep_pythonpath=True, **(env or {})), capture_output=True, text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def run(root: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command of the venv (dvc, python) in `root`, as DVC runs a stage's: the venv first on
    PATH, no PYTHONPATH, TensorFlow quiet; `env` adds variables (the store's, say)."""
    program = str(VENV_BIN / args[0]) if (VENV_BIN / args[0]).exists() else args[0]
    return subprocess.run([program, *args[1:]], cwd=root,
                          env=venv_env(**{"TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}),
                          capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def entry_point(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
                ) -> Iterator[Callable[..., tuple[int, list[str]]]]:
    """entry_point(main, cwd) → (exit code, stderr lines): a stage's `main` run in this process by
    stages.cli.run in the directory `cwd`, as `python -m stages.<name>` runs it there."""
    from stages.cli import run

    previous = signal.getsignal(signal.SIGTERM)  # run() installs its own: restored afterwards

    def call(main: Callable[[], None], cwd: Path) -> tuple[int, list[str]]:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            run(main)
            code = 0
        except SystemExit as exit:
            code = exit.code
        return code, capsys.readouterr().err.splitlines()

    yield call
    signal.signal(signal.SIGTERM, previous)


def error_line(code: int, lines: list[str]) -> str:
    """The single `error: ...` line of an exit 1, after checking nothing else was printed."""
    assert code == 1, (code, lines[-20:])
    assert len(lines) == 1 and lines[0].startswith("error: "), lines[-20:]
    return lines[0]


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a project with its Git history, DVC cache and outputs."""
    shutil.copytree(source, target, symlinks=True)
    return target


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Poll `condition` until it is truthy (return it) or `timeout` s pass (return None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def temporaries(root: Path) -> list[str]:
    """Files or directories named like atomic_path's temporaries, anywhere under `root`."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob(".*-tmp-*") if ".git" not in p.parts
    )


class Repro:
    """A `dvc repro` running in the background, in its own process group, its output collected."""

    def __init__(self, project: Path, env: dict[str, str] | None = None):
        # DVC runs each cmd with `$SHELL -c`; /bin/sh (dash) forks, leaving a shell between DVC
        # and the stage, as in CI and under cron where SHELL is unset.
        env = venv_env(keep_pythonpath=True, **{**(env or {}), "PYTHONUNBUFFERED": "1", "SHELL": "/bin/sh"})
        self.process = subprocess.Popen(
            [str(VENV_BIN / "dvc"), "repro"], cwd=project, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stage_process(self, name: str):
        """The running `python -m stages.<name>` started by this dvc (not its shell), or None."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        for child in children:
            try:
                if f"stages.{name}" in child.cmdline():  # an argument, not inside `sh -c '…'`
                    return child
            except psutil.Error:
                continue
        return None

    def wait(self, timeout: float = 300) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(10)
        return code

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


def cpu_seconds(process) -> float:
    """CPU seconds a psutil.Process has used; infinite once it has ended."""
    import psutil

    try:
        times = process.cpu_times()
    except psutil.Error:
        return float("inf")
    return times.user + times.system


TRAIN_OUTPUTS = ("data/model.keras", "metrics/train.json", "plots/train_history.csv")


@dataclass
class InterruptedRun:
    """A small project whose first `dvc repro` was killed (`kill <pid of dvc>`) during train, and
    which a second `dvc repro` then completed: what each step showed."""

    project: Path
    home: Path  # HOME and TMPDIR of both runs, empty directories at the start
    tmpdir: Path
    killed_output: str
    killed_code: int
    train_outputs_after_kill: list[str]  # train's outputs standing under their final names
    temporaries_after_kill: list[str]
    status_after_kill: dict  # `dvc status --json`
    resumed: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> InterruptedRun:
    import psutil

    root = tmp_path_factory.mktemp("reference")
    home, tmpdir = root / "home", root / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmpdir)}
    project = make_project(root / "project", **PIPELINE_PARAMS, **{"download.sources": [str(dataset)]})
    run = Repro(project, env=env)
    try:
        stage = wait_for(lambda: run.stage_process("train"), timeout=240)
        assert stage, f"train never started:\n{run.output[-3000:]}"
        # Past Python's start-up, into its imports (TensorFlow alone takes seconds).
        wait_for(lambda: cpu_seconds(stage) > 0.5, timeout=60)
        os.kill(run.process.pid, signal.SIGTERM)
        # DVC dies alone and its stage runs on (DVC's behaviour): stop the stage too.
        try:
            stage.terminate()
            stage.wait(60)
        except psutil.NoSuchProcess:
            pass
        code = run.wait(60)
    finally:
        if run.process.poll() is None:
            run.kill()
    after_kill = dict(
        train_outputs_after_kill=[p for p in TRAIN_OUTPUTS if (project / p).exists()],
        temporaries_after_kill=temporaries(project),
        status_after_kill=json.loads(dvc(project, "status", "--json").stdout),
    )
    resumed = dvc(project, "repro", env=env)
    return InterruptedRun(project, home, tmpdir, run.output, code, resumed=resumed, **after_kill)


@pytest.fixture(scope="session")
def reference(interrupted_run: InterruptedRun, pytestconfig: pytest.Config,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project, fully reproduced (only read: copy it to change it).

    If a selected test reads queued_experiments, its queue starts now, so that its experiments
    run while the tests before it run.
    """
    if pytestconfig.stash.get(QUEUE_WANTED, False) and QUEUE not in pytestconfig.stash:
        pytestconfig.stash[QUEUE] = StartedQueue.start(tmp_path_factory.mktemp("experiments"), interrupted_run.project)
    return interrupted_run.project


EXPERIMENT_EPOCHS = (1, 3)  # the reference trains 2 epochs
APPLIED_EPOCHS = 3


@dataclass
class QueuedExperiments:
    """The reference committed (branch `base`), two experiments queued and run by two workers,
    then the one at APPLIED_EPOCHS applied and committed: what each step showed."""

    project: Path
    home: Path  # HOME and TMPDIR of the queue, empty directories at the start
    tmpdir: Path
    queued: str  # what `dvc exp run --queue` printed
    most_at_once: int  # the most experiments seen running at once (wait_for_workers)
    runs: dict[int, dict]  # by epochs: name, rev, state, metrics (`dvc exp show --json`); the log
    # (`dvc queue logs`) of the one applied
    histories: dict[object, list[tuple]]  # (epoch, loss, val_loss) rows of `base` and by epochs


def start_workers(project: Path, jobs: int, env: dict[str, str]) -> None:
    """`dvc queue start -j jobs`. Not through dvc(): the workers would inherit its output pipes, and
    reading them to the end would wait for the workers to exit."""
    subprocess.run(
        [str(VENV_BIN / "dvc"), "queue", "start", "-j", str(jobs)], cwd=project, check=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=venv_env(keep_pythonpath=True, **env), timeout=60,
    )


def wait_for_workers(project: Path, timeout: float = 300) -> int:
    """Wait until the queue's workers (`dvc exp queue-worker`, run in `project`) have all exited.

    Return the most experiments seen running at once: stages running in distinct copies
    (.dvc/tmp/exps/…). Watched through the process table: polling `dvc queue status` instead
    would cost a second of CPU a time, taken from the experiments.
    """
    import psutil

    deadline = time.monotonic() + timeout
    most, seen_workers = 0, False
    while time.monotonic() < deadline:
        workers, copies = 0, set()
        for process in psutil.process_iter(["cmdline", "cwd"]):
            cmdline, cwd = process.info["cmdline"] or [], process.info["cwd"] or ""
            if not cwd.startswith(str(project)):
                continue
            if "queue-worker" in cmdline:
                workers += 1
            elif any(arg.startswith("stages.") for arg in cmdline) and "/.dvc/tmp/exps/" in cwd:
                copies.add(cwd)
        most = max(most, len(copies))
        if workers:
            seen_workers = True
        elif seen_workers:
            return most
        elif time.monotonic() > deadline - timeout + 30:
            raise AssertionError("no queue worker started in 30 s")
        time.sleep(0.2)
    raise AssertionError(f"the queue's workers did not finish in {timeout} s")


def shown_experiments(project: Path, env: dict[str, str]) -> dict[int, dict]:
    """The baseline's experiments from `dvc exp show --json`, by epochs: name, rev, state, metrics."""
    shown = json.loads(dvc(project, "exp", "show", "--json", env=env).stdout)
    baseline = next(commit for commit in shown if commit["rev"] != "workspace")
    found = {}
    for experiment in baseline.get("experiments") or []:
        rev = experiment["revs"][0]
        data = rev["data"]
        found[data["params"]["params.yaml"]["data"]["epochs"]] = {
            "name": experiment["name"],
            "rev": rev["rev"],
            "state": experiment["executor"]["state"],
            "metrics": {path: value["data"] for path, value in data["metrics"].items()},
        }
    return found


@dataclass
class StartedQueue:
    """A copy of the reference committed (branch `base`), its experiments queued and two workers started."""

    project: Path
    home: Path  # HOME and TMPDIR of the queue, empty directories at the start
    tmpdir: Path
    env: dict[str, str]
    queued: str  # what `dvc exp run --queue` printed
    watched: dict  # by the watcher: "most" at once, or the "error"
    watcher: threading.Thread  # watches the workers until they have all exited

    def wait(self, timeout: float = 300) -> int:
        """The most experiments seen running at once, once every worker has exited."""
        self.watcher.join(timeout)
        assert not self.watcher.is_alive(), f"the queue's workers did not finish in {timeout} s"
        if "error" in self.watched:
            raise self.watched["error"]
        return self.watched["most"]

    @classmethod
    def start(cls, root: Path, reference: Path) -> "StartedQueue":
        home, tmpdir = root / "home", root / "tmp"
        home.mkdir()
        tmpdir.mkdir()
        env = {"HOME": str(home), "TMPDIR": str(tmpdir)}
        for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "KERAS_HOME"):
            env[name] = ""  # unset for the stages: an empty value is ignored like a missing one
        project = copy_project(reference, root / "project")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "results")
        git(project, "branch", "base")
        queued = dvc(project, "exp", "run", "--queue", "-S",
                     "epochs=" + ",".join(map(str, EXPERIMENT_EPOCHS)), env=env).stdout
        watched: dict = {}

        def watch() -> None:
            try:
                watched["most"] = wait_for_workers(project)
            except AssertionError as error:
                watched["error"] = error

        watcher = threading.Thread(target=watch, daemon=True)
        start_workers(project, 2, env)
        watcher.start()
        return cls(project, home, tmpdir, env, queued, watched, watcher)


QUEUE_WANTED = pytest.StashKey[bool]()
QUEUE = pytest.StashKey[StartedQueue]()


@pytest.fixture(scope="session")
def queued_experiments(reference: Path, pytestconfig: pytest.Config) -> QueuedExperiments:
    started = pytestconfig.stash[QUEUE]  # started by the reference fixture
    project, env = started.project, started.env
    most = started.wait()
    runs = shown_experiments(project, env)
    if APPLIED_EPOCHS in runs:
        runs[APPLIED_EPOCHS]["log"] = dvc(project, "queue", "logs", runs[APPLIED_EPOCHS]["name"], env=env).stdout
        dvc(project, "exp", "apply", runs[APPLIED_EPOCHS]["name"], env=env)
        git(project, "add", "-A")
        git(project, "commit", "-qm", f"epochs={APPLIED_EPOCHS}")
    # The histories are DVC-cached plots, not in Git: `dvc plots diff` reads them at each revision.
    revs = {"base": "base", **{epochs: run["rev"] for epochs, run in runs.items()}}
    plots = json.loads(dvc(project, "plots", "diff", *revs.values(), "--json",
                           "--out", str(project.parent / "plots"), env=env).stdout)["data"]
    (loss,) = plots["Loss per epoch"]
    histories = {key: [(row["epoch"], row["loss"], row["val_loss"]) for row in loss["content"]["data"]["values"]
                       if row["rev"] == rev and row["field"] == "loss"] for key, rev in revs.items()}
    return QueuedExperiments(project, started.home, started.tmpdir, started.queued, most, runs, histories)
