"""`python -m sweep`: experiments on Dask workers, pushed to origin and the store, in exp show."""

# The store holds the reference run, so the grid's first experiment is restored from it. One sweep
# runs by default; the faults and TLS form the tier `sweep_faults` (`pytest -m sweep_faults
# tests/team/test_sweep.py`).
import contextlib
import hashlib
import http.client
import http.server
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
    kill_processes_in,
    venv_env,
)
from stages.summary import HEADLINE
from sweep import experiment_names, grid
from tests.team.conftest import MAX_ITER, TeamProject, dask_processes

# The reference's SGD (in the store), and another.
GRID = ("-S", f"sgd.max_iter={MAX_ITER},{MAX_ITER + 1}")
# GRID and a value the params refuse: that experiment fails in seconds, at sgd_cv's params.
REFUSED = 0
GRID_AND_REFUSED = ("-S", f"sgd.max_iter={MAX_ITER},{MAX_ITER + 1},{REFUSED}")
UNSTORED = MAX_ITER + 7  # an SGD no test pushes: its output and run record are new to the store
faults = pytest.mark.sweep_faults


def table_names(output: str) -> list[str]:
    """The experiments of the sweep's table (its first column)."""
    table = output.split("experiment ", 1)[-1]
    return re.findall(r"^(\S+-[0-9a-f]{6}-[^\s:]+)\s+\S", table, re.MULTILINE)


class WritesRefused(http.server.BaseHTTPRequestHandler):
    """Reads forwarded to the store as they came; a write read, then answered 403 AccessDenied."""

    # As S3 answers keys that a bucket policy lets read but not write (s3:PutObject denied). The
    # request goes on unchanged, Host included, so its signature holds for the store behind.
    protocol_version = "HTTP/1.1"
    server: "ReadOnlyStore"

    def do_GET(self) -> None:
        store = http.client.HTTPConnection("127.0.0.1", self.server.store.port, timeout=600)
        try:
            store.request(self.command, self.path, headers=dict(self.headers.items()))
            answer = store.getresponse()
            body = answer.read()
        finally:
            store.close()
        self.send_response_only(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(key, value)
        length = answer.getheader("Content-Length", "0") if self.command == "HEAD" else len(body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):  # read it all, then answer
            while size := int(self.rfile.readline().split(b";")[0], 16):
                self.rfile.read(size + 2)
            while self.rfile.readline().strip():  # trailers
                pass
        else:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.refused.append(f"{self.command} {self.path}")
        body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b"<Message>Access Denied</Message></Error>")
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_DELETE = do_PUT

    def log_message(self, *args: object) -> None:
        pass


class ReadOnlyStore(http.server.ThreadingHTTPServer):
    """`store` on another port of 127.0.0.1, read-only; `refused` lists the writes it refused."""

    daemon_threads = True

    def __init__(self, store: Store) -> None:
        super().__init__(("127.0.0.1", 0), WritesRefused)
        self.store, self.refused = store, []
        self.endpoint = f"http://127.0.0.1:{self.server_port}"


@contextlib.contextmanager
def read_only(store: Store) -> Iterator[ReadOnlyStore]:
    gate = ReadOnlyStore(store)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    try:
        yield gate
    finally:
        gate.shutdown()
        gate.server_close()


def test_grid_is_parsed_as_dvc_exp_run_parses_it():
    assert grid(["epochs=3,5", "model.hidden=[],[100]", "model.optimizer=adam"]) == [
        {"epochs": "3", "model.hidden": "[]", "model.optimizer": "adam"},
        {"epochs": "3", "model.hidden": "[100]", "model.optimizer": "adam"},
        {"epochs": "5", "model.hidden": "[]", "model.optimizer": "adam"},
        {"epochs": "5", "model.hidden": "[100]", "model.optimizer": "adam"},
    ]
    first = experiment_names("s", grid(["model.hidden=[64,32],[]"]))
    second = experiment_names("s", grid(["x=1"]))
    assert re.fullmatch(r"s-[0-9a-f]{6}-hidden-64\.32", first[0])
    assert first[1].endswith("-hidden-empty")
    assert first[0].split("-")[1] != second[0].split("-")[1]  # each sweep its own run id


def test_sweep_on_two_local_workers_lands_in_one_exp_show(sweeper: TeamProject, tmp_path: Path):
    """GRID lands in `dvc exp show`; a refused value fails alone, and the sweep exits 1."""
    env = sweeper.env(tmp_path / "clones")
    result = sweeper.run(*GRID_AND_REFUSED, "--workers", "2", env=env)
    out, names = result.stdout, table_names(result.stdout)
    assert result.returncode == 1, out + result.stderr
    assert re.search(r"dashboard http://127\.0\.0\.1:\d+/status", out)
    (refused,) = [name for name in names if name.endswith(f"-max_iter-{REFUSED}")]
    landed = [name for name in names if name != refused]
    # Its stage's line, as it fails and below the table; the sweep's own error last.
    said = f"error: params.yaml: sgd.max_iter = {REFUSED} is not allowed"
    assert f"] {refused} failed: {said}" in out and f"\n{refused}: {said}" in out, out
    assert result.stderr.strip().splitlines()[-1] == f"error: 1 of 3 experiments failed: {refused}"
    assert "[2 done, 0 running, 1 failed of 3]" in out and "pulled" not in out
    # The reference's SGD comes from the store; the other reuses its data and network stages.
    assert "(ran summary; 6 restored)" in out and "(ran sgd_cv, summary; 5 restored)" in out, out
    header = next(line for line in out.splitlines() if line.startswith("experiment "))
    assert header.split()[:4] == ["experiment", *HEADLINE]
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines() if line.split()}
    assert len(names) == 3 and rows[refused] == ["failed"] * 3
    assert sorted(sweeper.pushed()) == sorted(landed)  # nothing of the failed one
    # The experiments' commits hold the project's files; the data stays in the store.
    in_git = {path for ref in sweeper.refs() if ref.rsplit("/", 1)[1] in landed
              for path in git(sweeper.origin, "ls-tree", "-r", "--name-only", ref).split()}
    assert "dvc.lock" in in_git and not [p for p in in_git if p.startswith("data/")], in_git
    shown = {e.name: e for e in exp_show(sweeper.project) if e.name}
    assert set(shown) == set(landed)
    assert sorted(shown[n].params["sgd.max_iter"] for n in landed) == [MAX_ITER, MAX_ITER + 1]
    for name in landed:  # the table's accuracies are the ones `dvc exp show` lists
        metrics = shown[name].metrics
        assert [float(x) for x in rows[name]] == [round(metrics[k], 4) for k in HEADLINE]
    # A teammate takes one into a fresh clone (`dvc exp pull`, `dvc exp apply`, `dvc pull`): the
    # model is the one the experiment's dvc.lock names (the base commit has none).
    lead, env = clone(sweeper.origin, tmp_path / "lead"), sweeper.store.env()
    for command in (("exp", "pull", "origin", landed[0]), ("exp", "apply", landed[0]), ("pull",)):
        dvc(lead, *command, env=env)
    outs = yaml.safe_load((lead / "dvc.lock").read_text())["stages"]["train"]["outs"]
    model = hashlib.md5((lead / "data/model.keras").read_bytes(), usedforsecurity=False).hexdigest()
    assert model == next(out["md5"] for out in outs if out["path"] == "data/model.keras")
    assert dvc(lead, "status", "--json", env=env).stdout.strip() == "{}"


@faults
def test_a_killed_worker_reruns_its_experiment_elsewhere(sweeper: TeamProject, tmp_path: Path):
    # epochs=3: none in the store, every experiment trains
    code, out, err = sweeper.run_killing_a_worker("-S", "epochs=3", *GRID, "--workers", "2",
                                                  root=tmp_path)
    assert code == 0, out + err
    names = table_names(out)
    # One experiment started, lost with its worker, started again; each pushed once.
    starts = [len(re.findall(rf"\] {n} started$", out, re.MULTILINE)) for n in names]
    assert sorted(starts) == [1, 2], out
    assert len(names) == 2 and all(sweeper.pushed().count(n) == 1 for n in names)
    shown = {e.name: e for e in exp_show(sweeper.project) if e.name in names}
    assert set(shown) == set(names)
    assert all(e.metrics.get("keras_test_accuracy") for e in shown.values())


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.stdout == "", result.stdout + result.stderr
    return error_line(result.returncode, result.stderr.strip().splitlines())


@faults
def test_unreachable_scheduler_origin_or_store_is_one_line(sweeper: TeamProject, tmp_path: Path,
                                                           closed_address: str):
    """Each checked before any task starts: one line naming what failed, exit 1, nothing pushed."""
    clones, before, closed = tmp_path / "clones", sweeper.pushed(), closed_address
    env = sweeper.env(clones)
    store_refused = "error: the DVC remote 'storage' is unreachable or refuses the keys"
    cases = {  # the sweep's arguments, its environment, the origin; its line's start, the cause
        "scheduler": (("--scheduler", f"tcp://{closed}", "--timeout", "3"), env, None,
                      f"error: cannot use the Dask scheduler at tcp://{closed}: ", ""),
        "store down": (("--workers", "1"), {**env, "AWS_ENDPOINT_URL_S3": f"http://{closed}"},
                       None, store_refused, closed),
        "wrong secret": (("--workers", "1"), {**env, "AWS_SECRET_ACCESS_KEY": "wrong"}, None,
                         store_refused, "403"),
        "origin": (("--workers", "1"), env, tmp_path / "gone.git",
                   "error: the Git origin is unreachable (git fetch origin): ",
                   str(tmp_path / "gone.git")),
    }
    for case, (args, case_env, origin, start, cause) in cases.items():
        git(sweeper.project, "remote", "set-url", "origin", str(origin or sweeper.origin))
        try:
            started = time.monotonic()
            line = one_line_error(sweeper.run("-S", "epochs=1,2", *args, env=case_env))
            # "In a few seconds" (docs/team.md): a guard a machine ten times slower passes.
            assert time.monotonic() - started < 120, case
        finally:
            git(sweeper.project, "remote", "set-url", "origin", str(sweeper.origin))
        assert line.startswith(start) and cause in line, (case, line)
        assert sweeper.store.secret not in line, case
        assert not clones.exists(), case  # no task started: no worker made a clone
    assert sweeper.pushed() == before  # nothing pushed


@faults
def test_two_sweeps_at_once_lose_no_experiment_and_a_refused_value_fails_alone(sweeper: TeamProject,
                                                                               tmp_path: Path):
    """Into one origin at once: GRID, and a sweep of which the params refuse one value."""
    processes = [sweeper.start(*grid, "--workers", "1", clones=tmp_path / f"clones{i}")
                 for i, grid in enumerate((GRID, ("-S", "epochs=0,1")))]
    outputs = [process.communicate(timeout=600) for process in processes]
    (out, _), (mixed, mixed_err) = outputs
    assert [p.returncode for p in processes] == [0, 1], outputs
    bad = re.search(r"^(\S+-epochs-0): (.*)$", mixed, re.MULTILINE)
    assert bad and bad.group(2).startswith("error: params.yaml: epochs = 0 is not allowed"), mixed
    assert mixed_err.strip().splitlines()[-1] == f"error: 1 of 2 experiments failed: {bad.group(1)}"
    names = [name for name in table_names(out) + table_names(mixed) if name != bad.group(1)]
    assert len(set(names)) == 3 and all(sweeper.pushed().count(name) == 1 for name in names)
    assert bad.group(1) not in sweeper.pushed()
    assert {e.name for e in exp_show(sweeper.project)} >= set(names)


@faults
def test_a_store_refusing_uploads_fails_the_experiment_and_no_ref_reaches_origin(
        sweeper: TeamProject, tmp_path: Path):
    """Data first, ref last: the workers' `dvc push` refused (403), so no `dvc exp push` either."""
    origin = tmp_path / "origin.git"  # its own origin: no ref of another test's sweep
    project = copy_project(tmp_path / "user", SMALL_RUN_PARAMS, origin=origin)
    with read_only(sweeper.store) as store:
        user = TeamProject("sweep", project, origin, sweeper.store)
        env = {**user.env(tmp_path / "clones"), "AWS_ENDPOINT_URL_S3": store.endpoint}
        try:
            result = user.run("-S", f"sgd.max_iter={UNSTORED}", "--workers", "1", env=env)
        finally:
            kill_processes_in(tmp_path)
    (name,) = table_names(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: 1 of 1 experiments failed: {name}"
    failure = re.search(rf"^{re.escape(name)}: (.*)$", result.stdout, re.MULTILINE)
    assert failure and "AccessDenied" in failure[1], result.stdout  # the store's S3 error code
    assert store.refused, "the sweep never asked the store to take its data: no test"
    assert git(project, "ls-remote", "origin", "refs/exps/*") == ""


@faults
def test_tls_cluster_from_the_command_line(sweeper: TeamProject, tmp_path: Path):
    """`dask scheduler` and two `dask worker`s, as on separate machines, TLS with certificates."""
    # Each worker has its own directory and HOME, so its own clones.
    import trustme

    ca, port = trustme.CA(), free_port()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    address = f"tls://127.0.0.1:{port}"

    def tls(who: str, signer: trustme.CA = ca) -> list[str]:
        """The TLS options of `who`, with a certificate of its own that `signer` issued."""
        pem = str(tmp_path / f"{who}.pem")
        certificate = signer.issue_cert("127.0.0.1", "localhost")
        certificate.private_key_and_cert_chain_pem.write_to_path(pem)
        return ["--tls-ca-file", str(tmp_path / "ca.pem"), "--tls-cert", pem, "--tls-key", pem]

    with dask_processes(tmp_path) as dask:
        dask("scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", "127.0.0.1:0", *tls("scheduler"), cwd=tmp_path)
        for home in (tmp_path / "worker1", tmp_path / "worker2"):
            home.mkdir()
            env = venv_env({**sweeper.store.env(), "HOME": str(home),
                            "SWEEP_GIT_ORIGIN": str(sweeper.origin)})
            env.pop("SWEEP_CLONES", None)
            dask("worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                 *tls(home.name), cwd=home, env=env)
        client_env = {"PYTHONPATH": str(REPO)}  # the collecting machine needs Git, no store keys
        # --timeout: a generous wait for the scheduler and a first worker to come up.
        result = sweeper.run(*GRID, "--scheduler", address, "--timeout", "120", *tls("client"),
                             env=client_env)
        assert result.returncode == 0, result.stdout + result.stderr
        names = table_names(result.stdout)
        assert len(names) == 2 and {e.name for e in exp_show(sweeper.project)} >= set(names)
        assert any((tmp_path / f"worker{i}/.cache/dvc-sweep").is_dir() for i in (1, 2))
        # A client without a certificate is refused in the TLS handshake, before any Dask message
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with (pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"),
              socket.create_connection(("127.0.0.1", port), timeout=60) as raw,
              context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket):
            tls_socket.recv(1)  # TLS 1.3: the server's refusal comes after the client's Finished
        # and so is one whose certificate another CA signed: the sweep says so in one line.
        refused = sweeper.run(*GRID, "--scheduler", address, "--timeout", "3",
                              *tls("other", trustme.CA()), env=client_env)
        said = f"error: cannot use the Dask scheduler at {address}: "
        assert one_line_error(refused).startswith(said)
