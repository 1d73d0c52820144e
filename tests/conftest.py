"""The suite's fixtures: the dataset, a stage run in-process, shared pipeline runs and the store."""

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from scripts.toolkit import (
    APPLIED_EPOCHS,
    CONCURRENT_DURING,
    QUEUED,
    REPO,
    SMALL,
    SMALL_RUN_PARAMS,
    VENV_BIN,
    Store,
    closed_port,
    copy_project,
    dvc,
    exp_show,
    git,
    run,
    venv_env,
)
from stages.data import DEBIAN


def pytest_configure() -> None:
    # Tests send SIGINT to their children; a backgrounded `make test &` inherits it ignored, and an
    # ignored signal stays ignored across exec: restore the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The default remote's endpoint and keys come from the environment: a dvc command that reaches
    # for it unasked must find a closed port on 127.0.0.1, never AWS or its metadata address.
    os.environ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    # Loopback (the test servers, the store) never goes through a proxy.
    for name in ("NO_PROXY", "no_proxy"):
        existing = os.environ.get(name)
        os.environ[name] = "127.0.0.1,localhost" + (f",{existing}" if existing else "")


# An xdist group per test file, sent out in this order (`--no-loadscope-reorder`): the queued
# experiments (longest; their worker builds the reference run on the way), groups that don't need
# the reference run (for the other workers meanwhile), the store's (longest of the rest), the rest.
@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def group(item: pytest.Item) -> str:
        return "queued_experiments" if "queued_experiments" in item.fixturenames else item.path.name

    waiting = {group(item) for item in items if "reference_run" in item.fixturenames}
    team = {group(item) for item in items if "store" in item.fixturenames}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    items.sort(key=lambda item: (group(item) != "queued_experiments", group(item) in waiting,
                                 group(item) not in team))


@pytest.fixture(scope="session")
def closed_address() -> Iterator[str]:
    """`127.0.0.1:PORT` where every connection is refused, for the whole session."""
    with closed_port() as address:
        yield address


@pytest.fixture(scope="session")
def dataset() -> Path:
    """The four original .gz files, from Debian's dataset-fashion-mnist."""
    if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{DEBIAN} is missing: apt-get install dataset-fashion-mnist "
                    "(or run `make test`)")
    return DEBIAN


@pytest.fixture(scope="session")
def small(dataset: Path):
    """(x, y): the first SMALL training images, prepared as the prepare stage does."""
    import gzip

    from stages.data import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, scale_and_flatten

    images = parse_idx(gzip.decompress((dataset / "train-images-idx3-ubyte.gz").read_bytes()),
                       IMAGES_MAGIC)
    labels = parse_idx(gzip.decompress((dataset / "train-labels-idx1-ubyte.gz").read_bytes()),
                       LABELS_MAGIC)
    return scale_and_flatten(images[:SMALL]), labels[:SMALL]


@pytest.fixture
def entry_point(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
                ) -> Callable[..., tuple[int, list[str]]]:
    """entry_point(main, cwd) → (exit code, stderr lines) of `main` run as `python -m` runs it."""
    from stages.exits import run as run_stage

    def call(main: Callable[[], None], cwd: Path) -> tuple[int, list[str]]:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            run_stage(main)
            code = 0
        except SystemExit as exit:
            code = exit.code
        return code, capsys.readouterr().err.splitlines()

    return call


@dataclass
class ReferenceRun:
    """SMALL_RUN_PARAMS reproduced by one `dvc repro`, committed on main, pushed to `origin`."""

    project: Path
    origin: Path
    home: Path  # HOME and TMPDIR of the run: empty directories at its start
    tmpdir: Path
    stdout: str  # what `dvc repro` printed
    stderr: str
    # By stage of CONCURRENT_DURING, a second `dvc repro` started while it ran (for
    # tests/reliability/test_concurrency.py): exit code, output, whether the first still ran.
    attempts: dict[str, tuple[int, str, bool]]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str, dataset: Path
                  ) -> ReferenceRun:
    """Built once for all workers and only read: copy it to change it or to take DVC's lock."""
    # pytest-xdist's recipe: the first worker to ask builds it in the session's shared temporary
    # directory while the others wait on the lock.
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "reference"
    home, tmpdir, record = root / "home", root / "tmp", root / "repro.json"
    with FileLock(f"{root}.lock"):
        if not record.is_file():
            shutil.rmtree(root, ignore_errors=True)  # what a worker that failed left
            home.mkdir(parents=True)
            tmpdir.mkdir()
            project = copy_project(root / "project", SMALL_RUN_PARAMS, origin=root / "origin.git")
            env = {"HOME": str(home), "TMPDIR": str(tmpdir)}
            with (root / "stderr").open("w+") as stderr:  # a file: only stdout is read as it runs
                first = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                                         env=venv_env({**env, "PYTHONUNBUFFERED": "1"}),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=stderr)
                lines, attempts = [], {}
                for line in first.stdout:
                    lines.append(line)
                    for during in (name for name in CONCURRENT_DURING
                                   if f"Running stage '{name}'" in line):
                        second = dvc(project, "repro", env=env, check=False)
                        attempts[during] = (second.returncode, second.stdout + second.stderr,
                                            first.poll() is None)
                first.wait(600)
                stderr.seek(0)
                result = {"stdout": "".join(lines), "stderr": stderr.read(), "attempts": attempts}
            assert first.returncode == 0, result
            git(project, "add", "-A")
            git(project, "commit", "-qm", "results")
            git(project, "push", "-q", "origin", "main")
            record.write_text(json.dumps(result))
    return ReferenceRun(root / "project", root / "origin.git", home, tmpdir,
                        **json.loads(record.read_text()))


@pytest.fixture(scope="session")
def reference(reference_run: ReferenceRun) -> Path:
    """The reference run's project (only read: see reference_run)."""
    return reference_run.project


@pytest.fixture(scope="session")
def store(reference_run: ReferenceRun, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Store]:
    """One S3 store per worker, holding the reference run as store-push.yml pushes it on main."""
    root = tmp_path_factory.mktemp("store")
    # a copy: push takes DVC's lock
    project = shutil.copytree(reference_run.project, root / "project", symlinks=True)
    with Store(root / "store") as store:
        pushed = run(project, str(REPO / "scripts/ci_cache.sh"), "push", env=store.env(),
                     check=True)
        assert "pushed" in pushed.stdout + pushed.stderr
        yield store


@dataclass
class QueuedExperiments:
    """The reference (also branch `base`) after QUEUED ran; the APPLIED_EPOCHS one committed."""

    project: Path
    home: Path  # HOME and TMPDIR of the queue: empty directories at its start
    tmpdir: Path
    queued: str  # what `dvc exp run --queue` printed
    two_at_once: bool  # two experiment workspaces (.dvc/tmp/exps) seen at the same time
    runs: dict[str, dict]  # by QUEUED key: name, rev, state, metrics; "log" of the applied one
    histories: dict[str, list[tuple]]  # (epoch, loss, val_loss) rows of `base` and by QUEUED key


@pytest.fixture(scope="session")
def queued_experiments(reference: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[QueuedExperiments]:
    root = tmp_path_factory.mktemp("experiments")
    home, tmpdir = root / "home", root / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmpdir)}
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "KERAS_HOME"):
        env[name] = ""  # unset for the stages: an empty value is ignored like a missing one
    project = shutil.copytree(reference, root / "project", symlinks=True)
    git(project, "branch", "base")
    queued = "".join(dvc(project, "exp", "run", "--queue", "-S", f"{key}={value}", env=env).stdout
                     for key, value in QUEUED.items())
    # `--run-all` returns when every experiment has ended, but may wait on an idle worker long
    # after (treeverse/dvc#10398): once every experiment has its Git ref, it has 30 s to return.
    run_all = subprocess.Popen([str(VENV_BIN / "dvc"), "exp", "run", "--run-all", "-j", "2"],
                               cwd=project, env=venv_env(env), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    two_at_once, ended, next_look = False, None, 0.0
    exps = project / ".dvc/tmp/exps"
    deadline = time.monotonic() + 1800  # ~40 s on an idle 2-core machine
    while run_all.poll() is None:
        # Each running experiment has its own copy, .dvc/tmp/exps/tmp*/: two are two at once.
        two_at_once = two_at_once or len(list(exps.glob("tmp*/dvc.yaml"))) >= 2
        if ended is None and time.monotonic() > next_look:  # finished: refs/exps/<commit>/<name>
            next_look = time.monotonic() + 1
            refs = git(project, "for-each-ref", "--format=%(refname)", "refs/exps").split()
            finished = [ref for ref in refs
                        if not ref.startswith(("refs/exps/celery/", "refs/exps/exec/"))]
            ended = time.monotonic() if len(finished) == len(QUEUED) else None
        try:
            run_all.wait(0.05)
        except subprocess.TimeoutExpired:
            if time.monotonic() > min(deadline, (ended or deadline) + 30):
                run_all.kill()
    output = run_all.stdout.read()
    assert run_all.returncode == 0 or ended, output[-3000:]
    try:
        runs = {key: {"name": e.name, "rev": e.rev, "state": e.state, "metrics": e.metrics}
                for e in exp_show(project, env=env) if e.name
                for key, value in QUEUED.items() if e.params[key] == value}
        if "epochs" in runs:
            applied = runs["epochs"]["name"]
            runs["epochs"]["log"] = dvc(project, "queue", "logs", applied, env=env).stdout
            dvc(project, "exp", "apply", applied, env=env)
            git(project, "add", "-A")
            git(project, "commit", "-qm", f"epochs={APPLIED_EPOCHS}")
        # The histories are DVC-cached plots, not in Git: `dvc plots diff` reads each revision's.
        revs = {"base": "base", **{key: run["rev"] for key, run in runs.items()}}
        plots = json.loads(dvc(project, "plots", "diff", *revs.values(), "--json",
                               "--out", str(root / "plots"), env=env).stdout)["data"]
        (loss,) = plots["Loss per epoch"]
        rows = loss["content"]["data"]["values"]
        histories = {key: [(row["epoch"], row["loss"], row["val_loss"]) for row in rows
                           if row["rev"] == rev and row["field"] == "loss"]
                     for key, rev in revs.items()}
        yield QueuedExperiments(project, home, tmpdir, queued, two_at_once, runs, histories)
    finally:
        # no worker outlives the tests
        dvc(project, "queue", "stop", "--kill", check=False, env=env)
