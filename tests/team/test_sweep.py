"""`python -m sweep`: experiments on a Dask cluster, pushed to a bare Git origin and the team's S3 store
(which holds the reference run, so the grid's first experiment is restored from it), pulled into one
`dvc exp show`. One sweep runs by default; the faults and TLS form the tier `sweep_faults`
(`pytest -m sweep_faults tests/team/test_sweep.py`)."""

import contextlib
import hashlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from scripts.toolkit import (
    REPO,
    SMALL_RUN_PARAMS,
    Store,
    clone,
    copy_project,
    dvc,
    error_line,
    exp_show,
    free_port,
    git,
    processes_in,
    run,
    venv_env,
)
from sweep import HEADLINE, experiment_names, grid

MAX_ITER = yaml.safe_load((REPO / "params.yaml").read_text())["sgd"]["max_iter"]
GRID = ("-S", f"sgd.max_iter={MAX_ITER},{MAX_ITER + 1}")  # the reference's SGD (in the store), another
faults = pytest.mark.sweep_faults


@dataclass
class Sweeper:
    """The user's clone, its bare Git origin and the store: where the module's sweeps run."""

    project: Path
    origin: Path
    store: Store

    def env(self, clones: Path) -> dict[str, str]:
        """The store's keys and where the workers keep their clones; `python -m sweep` from the repo."""
        return {**self.store.env(), "PYTHONPATH": str(REPO), "SWEEP_CLONES": str(clones)}

    def sweep(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        return run(self.project, "python", "-m", "sweep", *args, env=env, timeout=600)

    def start(self, *args: str, clones: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "sweep", *args], cwd=self.project, text=True,
                                env=venv_env(self.env(clones)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def pushed(self) -> list[str]:
        """The experiments in the Git origin, one name per ref."""
        refs = git(self.origin, "for-each-ref", "--format=%(refname)", "refs/exps").split()
        return [ref.rsplit("/", 1)[1] for ref in refs if not ref.startswith("refs/exps/exec/")]


def table_names(output: str) -> list[str]:
    """The experiments of the sweep's table (its first column)."""
    return re.findall(r"^(\S+-[0-9a-f]{6}-[^\s:]+)\s+\S", output.split("experiment ", 1)[-1], re.MULTILINE)


def kill_leftovers(root: Path) -> None:
    """Processes still running in `root` (an orphaned dvc of a killed worker): end them."""
    for process in processes_in(root):
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.fixture(scope="module")
def sweeper(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Iterator[Sweeper]:
    root = tmp_path_factory.mktemp("sweep")
    try:
        yield Sweeper(copy_project(root / "user", SMALL_RUN_PARAMS, origin=root / "origin.git"),
                      root / "origin.git", store)
    finally:
        kill_leftovers(root)  # of any sweep run in the project


def test_grid_is_parsed_as_dvc_exp_run_parses_it():
    assert grid(["epochs=3,5", "model.hidden=[],[100]", "model.optimizer=adam"]) == [
        {"epochs": "3", "model.hidden": "[]", "model.optimizer": "adam"},
        {"epochs": "3", "model.hidden": "[100]", "model.optimizer": "adam"},
        {"epochs": "5", "model.hidden": "[]", "model.optimizer": "adam"},
        {"epochs": "5", "model.hidden": "[100]", "model.optimizer": "adam"},
    ]
    first = experiment_names("s", grid(["model.hidden=[64,32],[]"]))
    second = experiment_names("s", grid(["x=1"]))
    assert re.fullmatch(r"s-[0-9a-f]{6}-hidden-64\.32", first[0]) and first[1].endswith("-hidden-empty")
    assert first[0].split("-")[1] != second[0].split("-")[1]  # each sweep its own run id


def test_sweep_on_two_local_workers_lands_in_one_exp_show(sweeper: Sweeper, tmp_path: Path):
    result = sweeper.sweep(*GRID, "--workers", "2", env=sweeper.env(tmp_path / "clones"))
    out, names = result.stdout, table_names(result.stdout)
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"dashboard http://127\.0\.0\.1:\d+/status", out)
    assert "[2 done, 0 running, 0 failed of 2]" in out
    # The reference's SGD comes from the store; the other reuses its data and network stages.
    assert "(ran summary; 6 restored)" in out and "(ran sgd_cv, summary; 5 restored)" in out, out
    header = next(line for line in out.splitlines() if line.startswith("experiment "))
    assert header.split()[:4] == ["experiment", *HEADLINE]
    assert len(names) == 2 and sorted(sweeper.pushed()) == sorted(names)
    shown = {e.name: e for e in exp_show(sweeper.project) if e.name}
    assert set(shown) == set(names)
    assert sorted(shown[n].params["sgd.max_iter"] for n in names) == [MAX_ITER, MAX_ITER + 1]
    for line in out.splitlines():  # the table's accuracies are the ones `dvc exp show` lists
        if line.split()[0] in shown:
            metrics = shown[line.split()[0]].metrics
            assert [float(x) for x in line.split()[1:4]] == [round(metrics[k], 4) for k in HEADLINE]
    # A teammate takes one into a fresh clone (`dvc exp pull`, `dvc exp apply`, `dvc pull`): the model is
    # the one the experiment's dvc.lock names (the base commit has none).
    lead, env = clone(sweeper.origin, tmp_path / "lead"), sweeper.store.env()
    for command in (("exp", "pull", "origin", names[0]), ("exp", "apply", names[0]), ("pull",)):
        dvc(lead, *command, env=env)
    outs = yaml.safe_load((lead / "dvc.lock").read_text())["stages"]["train"]["outs"]
    model = hashlib.md5((lead / "data/model.keras").read_bytes(), usedforsecurity=False).hexdigest()
    assert model == next(out["md5"] for out in outs if out["path"] == "data/model.keras")
    assert dvc(lead, "status", "--json", env=env).stdout.strip() == "{}"


@faults
def test_a_killed_worker_reruns_its_experiment_elsewhere(sweeper: Sweeper, tmp_path: Path):
    clones = tmp_path / "clones"
    process = sweeper.start("-S", "epochs=3", *GRID, "--workers", "2", clones=clones)  # none in the store
    try:
        killed, deadline = False, time.monotonic() + 300
        while not killed and time.monotonic() < deadline and process.poll() is None:
            for train in processes_in(clones, "stages.train"):
                # The Dask worker that started train's `dvc exp run` (it may have ended meanwhile).
                with contextlib.suppress(psutil.Error, StopIteration):
                    dvc_run = next(p for p in train.parents() if p.cmdline()[2:4] == ["exp", "run"])
                    dvc_run.parent().send_signal(signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.2)
        assert killed, "no experiment reached train"
        out, err = process.communicate(timeout=600)
    finally:
        process.kill()
        kill_leftovers(tmp_path)
    assert process.returncode == 0, out + err
    names = table_names(out)
    # One experiment started, lost with its worker, started again; each pushed once.
    assert sorted(len(re.findall(rf"\] {n} started$", out, re.MULTILINE)) for n in names) == [1, 2], out
    assert len(names) == 2 and all(sweeper.pushed().count(n) == 1 for n in names)
    shown = {e.name: e for e in exp_show(sweeper.project) if e.name in names}
    assert set(shown) == set(names) and all(e.metrics.get("keras_test_accuracy") for e in shown.values())


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.stdout == "", result.stdout + result.stderr
    return error_line(result.returncode, result.stderr.strip().splitlines())


@faults
def test_unreachable_scheduler_origin_or_store_is_one_line(sweeper: Sweeper, tmp_path: Path):
    env, before, closed = sweeper.env(tmp_path / "clones"), sweeper.pushed(), f"127.0.0.1:{free_port()}"
    store_refused = "error: the DVC remote 'storage' is unreachable or refuses the keys"
    cases = {  # the sweep's arguments, its environment, the origin; how its line starts, what it names
        "scheduler": (("--scheduler", f"tcp://{closed}", "--timeout", "3"), env, None,
                      "error: cannot use the Dask scheduler at tcp://127.0.0.1:", ""),
        "store down": (("--workers", "1"), {**env, "AWS_ENDPOINT_URL_S3": f"http://{closed}"}, None,
                       store_refused, "Could not connect to the endpoint URL"),
        "wrong secret": (("--workers", "1"), {**env, "AWS_SECRET_ACCESS_KEY": "wrong"}, None,
                         store_refused, "Forbidden"),
        "origin": (("--workers", "1"), env, tmp_path / "gone.git",
                   "error: the Git origin is unreachable (git fetch origin): fatal:", ""),
    }
    for case, (args, case_env, origin, start, named) in cases.items():
        git(sweeper.project, "remote", "set-url", "origin", str(origin or sweeper.origin))
        try:
            started = time.monotonic()
            line = one_line_error(sweeper.sweep("-S", "epochs=1,2", *args, env=case_env))
            assert time.monotonic() - started < 30, case
        finally:
            git(sweeper.project, "remote", "set-url", "origin", str(sweeper.origin))
        assert line.startswith(start) and named in line and sweeper.store.secret not in line, (case, line)
    assert sweeper.pushed() == before  # nothing pushed


@faults
def test_two_sweeps_at_once_lose_no_experiment_and_a_refused_value_fails_alone(sweeper: Sweeper, tmp_path):
    """Into one origin at once: GRID, and a sweep of which the params refuse one value."""
    processes = [sweeper.start(*grid, "--workers", "1", clones=tmp_path / f"clones{i}")
                 for i, grid in enumerate((GRID, ("-S", "epochs=0,1")))]
    (out, _), (mixed, mixed_err) = outputs = [process.communicate(timeout=600) for process in processes]
    assert [p.returncode for p in processes] == [0, 1], outputs
    bad = re.search(r"^(\S+-epochs-0): (.*)$", mixed, re.MULTILINE)
    assert bad and bad.group(2).startswith("error: params.yaml: epochs = 0 is not allowed"), mixed
    assert mixed_err.strip().splitlines()[-1] == f"error: 1 of 2 experiments failed: {bad.group(1)}"
    names = [name for name in table_names(out) + table_names(mixed) if name != bad.group(1)]
    assert len(set(names)) == 3 and all(sweeper.pushed().count(name) == 1 for name in names)
    assert bad.group(1) not in sweeper.pushed() and {e.name for e in exp_show(sweeper.project)} >= set(names)


@faults
def test_tls_cluster_from_the_command_line(sweeper: Sweeper, tmp_path: Path):
    """`dask scheduler` and two `dask worker` processes, each worker with its own directory and
    HOME (so its own clones), as on separate machines; TLS with client certificates."""
    import trustme

    ca, port = trustme.CA(), free_port()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    address = f"tls://127.0.0.1:{port}"

    def tls(who: str, signer: trustme.CA = ca) -> list[str]:
        """The TLS options of `who`, with a certificate of its own that `signer` issued."""
        pem = str(tmp_path / f"{who}.pem")
        signer.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(pem)
        return ["--tls-ca-file", str(tmp_path / "ca.pem"), "--tls-cert", pem, "--tls-key", pem]

    dask = str(Path(sys.executable).parent / "dask")
    started = [subprocess.Popen([dask, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port",
                                 str(port), "--dashboard-address", "127.0.0.1:0", *tls("scheduler")],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for home in (tmp_path / "worker1", tmp_path / "worker2"):
        home.mkdir()
        env = venv_env({**sweeper.store.env(), "HOME": str(home), "SWEEP_GIT_ORIGIN": str(sweeper.origin)})
        env.pop("SWEEP_CLONES", None)
        started.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                                         "--host", "127.0.0.1", *tls(home.name)], cwd=home, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        client_env = {"PYTHONPATH": str(REPO)}  # the collecting machine needs Git only, no store keys
        result = sweeper.sweep(*GRID, "--scheduler", address, "--timeout", "60", *tls("client"),
                               env=client_env)
        assert result.returncode == 0, result.stdout + result.stderr
        names = table_names(result.stdout)
        assert len(names) == 2 and {e.name for e in exp_show(sweeper.project)} >= set(names)
        assert any((tmp_path / f"worker{i}/.cache/dvc-sweep").is_dir() for i in (1, 2))
        # A client without a certificate is refused in the TLS handshake, before any Dask message...
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with (pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"),
              socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
              context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket):
            tls_socket.recv(1)  # TLS 1.3: the server's refusal arrives after the client's Finished
        # ... and so is one whose certificate another CA signed: the sweep says so in one line.
        refused = sweeper.sweep(*GRID, "--scheduler", address, "--timeout", "3", *tls("other", trustme.CA()),
                                env=client_env)
        assert one_line_error(refused).startswith(f"error: cannot use the Dask scheduler at {address}: ")
    finally:
        for process in started:
            process.kill()
            process.wait()
        kill_leftovers(tmp_path)  # what the workers started
