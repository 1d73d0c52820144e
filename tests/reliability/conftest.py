"""Fixtures of the reliability suite: faulty loopback HTTP(S) servers and their certificates,
snapshots of a tree, a second pipeline run from scratch.

Every test in this folder gets the `reliability` marker: `pytest -m reliability` or
`pytest tests/reliability` runs the suite alone; `python -m tests.reliability.count_cases`
writes the fault table of tests/reliability/README.md.
"""

import datetime
import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

# Helpers other modules of this folder import from here until the merge; they live in the toolkit.
from scripts.toolkit import SMALL_RUN_PARAMS, VENV_BIN, closed_port_url, copy_project, dvc, snapshot, venv_env  # noqa: F401

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.reliability)


# ---------------------------------------------------------------- faulty HTTP servers


@dataclass
class FaultServer:
    """A loopback HTTP(S) server whose `behaviour(handler, name)` answers each GET of `/name`."""

    url: str
    requests: list[str] = field(default_factory=list)
    connections: list[tuple] = field(default_factory=list)  # every TCP connection, TLS or not


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
    tls: ssl.SSLContext | None = None
    connections: list

    def get_request(self) -> tuple:
        connection, address = super().get_request()
        self.connections.append(address)
        if self.tls:  # the handshake happens in the request's thread (finish_request)
            connection = self.tls.wrap_socket(connection, server_side=True,
                                              do_handshake_on_connect=False)
        return connection, address

    def finish_request(self, request: socket.socket, client_address: object) -> None:
        if self.tls:
            try:
                request.do_handshake()
            except OSError:
                return  # the client refused the certificate: what some servers are for
        super().finish_request(request, client_address)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up mid-body is what these servers are for


def start_server(behaviour: Callable, tls: ssl.SSLContext | None = None
                 ) -> tuple[FaultServer, Callable[[], None]]:
    """Start a FaultServer on 127.0.0.1 (HTTPS with `tls`); return it and its stop function."""
    record: list[str] = []
    closing = threading.Event()
    handler = type("Handler", (_Handler,), {
        "behaviour": staticmethod(behaviour), "record": record, "closing": closing,
    })
    server = _Server(("127.0.0.1", 0), handler)
    server.tls, server.connections = tls, []
    # Polling for shutdown every 0.5 s (the default) would cost up to that much per test.
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()

    def stop() -> None:
        closing.set()
        server.shutdown()
        server.server_close()

    scheme = "https" if tls else "http"
    return FaultServer(f"{scheme}://127.0.0.1:{server.server_port}/", record,
                       server.connections), stop


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    """fault_server(behaviour, tls=None) → a started FaultServer on 127.0.0.1; stopped after the test."""
    stops = []

    def start(behaviour: Callable, tls: ssl.SSLContext | None = None) -> FaultServer:
        server, stop = start_server(behaviour, tls)
        stops.append(stop)
        return server

    yield start
    for stop in stops:
        stop()


# ---------------------------------------------------------------- HTTPS: a test certificate authority


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    """The authority the download tests trust (via REQUESTS_CA_BUNDLE), and no one else does."""
    return trustme.CA()


@pytest.fixture(scope="session")
def test_ca_bundle(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("test-ca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(bundle))
    return bundle


@pytest.fixture
def trust_test_ca(test_ca_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make requests trust test_ca (only) for this test, as a user behind a private CA would."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(test_ca_bundle))
    return test_ca_bundle


def server_tls(ca: trustme.CA, *identities: str, **validity: datetime.datetime) -> ssl.SSLContext:
    """A server's TLS context with a certificate from `ca` for `identities` (not_before/not_after)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities, **validity).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def server_certificates(test_ca: trustme.CA) -> dict[str, ssl.SSLContext]:
    """TLS contexts for 127.0.0.1: a good certificate, and one of each kind a client must refuse."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "trusted": server_tls(test_ca, "127.0.0.1"),
        "untrusted-authority": server_tls(trustme.CA(), "127.0.0.1"),
        "expired": server_tls(test_ca, "127.0.0.1", not_before=now - datetime.timedelta(days=30),
                              not_after=now - datetime.timedelta(days=1)),
        "another-host": server_tls(test_ca, "mirror.example.org"),
    }


def serve_files(directory: Path) -> Callable:
    """A mirror's behaviour: GET /<name> answers the file `directory/<name>`, or 404."""

    def behaviour(h: _Handler, name: str) -> None:
        path = directory / name
        if path.is_file():
            h.send(200, path.read_bytes())
        else:
            h.send(404, b"not found")

    return behaviour


@pytest.fixture(scope="session")
def https_mirrors(dataset: Path, server_certificates: dict[str, ssl.SSLContext]
                  ) -> Iterator[dict[str, FaultServer]]:
    """One HTTPS mirror of the real files per certificate of server_certificates, shared."""
    started = {kind: start_server(serve_files(dataset), tls)
               for kind, tls in server_certificates.items()}
    yield {kind: server for kind, (server, _) in started.items()}
    for _, stop in started.values():
        stop()




def summary_bytes(project: Path) -> bytes:
    """The bytes of the one metrics file: equal bytes, equal results (kept until the merge)."""
    return (project / "metrics/summary.json").read_bytes()


# ---------------------------------------------------------------- a second run from scratch


@dataclass
class Attempt:
    result: subprocess.CompletedProcess
    seconds: float
    first_still_running: bool


@dataclass
class ConcurrentRun:
    project: Path
    first_output: str
    first_code: int
    attempts: dict[str, Attempt]  # by the stage the first run was in


CONCURRENT_DURING = ("sgd_cv", "train")


# The second run from scratch is the reference's twin: the same params, so the same bytes.
@pytest.fixture(scope="session")
def concurrent_run(tmp_path_factory, dataset) -> ConcurrentRun:
    """A second run from scratch; once it prints that it runs sgd_cv, then train, `dvc repro` is
    tried again in the same project."""
    project = copy_project(tmp_path_factory.mktemp("concurrent") / "project", SMALL_RUN_PARAMS)
    # DVC runs each cmd with `$SHELL -c`; /bin/sh (dash) forks, leaving a shell between DVC and
    # the stage, as in CI and under cron where SHELL is unset.
    first = subprocess.Popen([str(VENV_BIN / "dvc"), "repro"], cwd=project, text=True,
                             env=venv_env({"PYTHONUNBUFFERED": "1", "SHELL": "/bin/sh"}),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, attempts = [], {}
    try:
        for line in first.stdout:
            lines.append(line)
            during = next((name for name in CONCURRENT_DURING if f"Running stage '{name}'" in line), None)
            if during:
                start = time.monotonic()
                result = dvc(project, "repro", check=False)
                attempts[during] = Attempt(result, time.monotonic() - start, first.poll() is None)
        code = first.wait(600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    return ConcurrentRun(project, "".join(lines), code, attempts)
