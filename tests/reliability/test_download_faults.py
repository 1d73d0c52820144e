"""Download faults, served for real by loopback HTTP(S) mirrors that the tests start.

A faulty mirror comes first and Debian's files second: data/raw/ must end up verified from the
second source, the fault named in one `source ...; trying the next one` line, nothing partial left,
and no more requests than the retries allow. HTTPS mirrors hold certificates of a test authority
that requests trusts through REQUESTS_CA_BUNDLE, as behind a private authority; nothing turns
verification off. Each case is a distinct fault; the happy paths are in tests/test_download.py.
"""

import contextlib
import datetime
import functools
import gzip
import hashlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme
import yaml

from stages import download as stage
from stages.cli import run
from stages.data import FILES
from tests.mirrors import closed_port_url, new_authority, serving, tls, verified

FAULT_CLASS = "download: a faulty source"
USER_SEES = (
    "a line `source URL: what failed; trying the next one` (an HTTP status, a dropped or silent "
    "connection, a bad gzip or sha256, a refused certificate or redirect), then the next source; "
    "if none verifies, `error: no source could provide Fashion-MNIST. Tried: ...` naming each "
    "source and its fault and the fix that fits, exit 1, nothing in data/raw"
)
REPO = Path(__file__).resolve().parents[2]
FIRST = next(iter(FILES))  # train-images-idx3-ubyte: the first file asked of every source
TIMEOUT = 0.5


@pytest.fixture
def mirror():
    with contextlib.ExitStack() as stack:
        yield lambda behaviour, tls=None: stack.enter_context(serving(behaviour, tls))


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> tuple[trustme.CA, Path]:
    return new_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def debian() -> Path:
    if not (stage.DEBIAN / f"{FIRST}.gz").is_file():
        pytest.fail(f"{stage.DEBIAN} is missing: apt-get install dataset-fashion-mnist")
    return stage.DEBIAN


@functools.cache
def gz(name: str = f"{FIRST}.gz") -> bytes:
    return (stage.DEBIAN / name).read_bytes()


def source_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("source ")]


# ---------------------------------------------------------------- a faulty mirror, then Debian's files


def dropped(h, name):  # a body cut short of its Content-Length
    h.send(200, gz()[: 1 << 16], length=len(gz()))
    h.connection.shutdown(socket.SHUT_RDWR)


def stalled(h, name):  # headers and some data, then silence
    h.send(200, gz()[:100_000], length=len(gz()))
    h.server.closing.wait(30)


# behaviour (None: nothing listens), retries, requests of FIRST it costs, words of the message
CASES = {
    "http-error-status": (lambda h, n: h.send(500, b"oops"), 2, 2, "500 Server Error"),
    "connection-refused": (None, 1, 0, "Connection refused"),
    "connection-dropped": (dropped, 1, 1, "Connection broken"),
    "stalled-transfer": (stalled, 1, 1, "Read timed out"),
    # a valid gzip of the wrong file (a mirror that swapped names): only the sha256 can tell
    "wrong-sha256": (lambda h, n: h.send(200, gz("train-labels-idx1-ubyte.gz")), 1, 1,
                     "SHA256 hash of downloaded file"),
    "not-gzip": (lambda h, n: h.send(200, b"<html>Please log in</html>"), 1, 1, "not a valid gzip file"),
    "truncated-gzip": (lambda h, n: h.send(200, gz()[: 1 << 16]), 1, 1, "not a valid gzip file"),
    "redirect-loop": (lambda h, n: h.send(302, Location=f"/{n}"), 1, 31, "Exceeded 30 redirects"),
    "redirect-to-ftp": (lambda h, n: h.send(301, Location=f"ftp://127.0.0.1/{n}"), 1, 1,
                        "No connection adapters were found for 'ftp://127.0.0.1/"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_faulty_mirror_falls_through_to_the_next_source(case, tmp_path, debian, mirror, capsys):
    behaviour, retries, requests, words = CASES[case]
    server = mirror(behaviour) if behaviour else None
    url = server.url if server else closed_port_url()
    out = tmp_path / "data" / "raw"
    start = time.monotonic()
    assert stage.download([url, str(debian)], out, retries=retries, timeout=TIMEOUT) == str(debian)
    assert time.monotonic() - start < 15  # far below the stalled mirror's 30 s: the timeout works
    assert verified(out) and os.listdir(tmp_path / "data") == ["raw"]  # no partial file, no temporary
    if server:
        assert server.requests == [f"{FIRST}.gz"] * requests
    [line] = source_lines(capsys)
    assert line.startswith(f"source {url}: ") and line.endswith("; trying the next one"), line
    assert words in line and "\n" not in line, line


@pytest.mark.parametrize("certificate", ["untrusted-authority", "expired", "another-host"])
def test_a_refused_certificate_is_one_line_and_no_retry(certificate, tmp_path, debian, mirror, ca,
                                                        monkeypatch, capsys):
    authority, bundle = ca
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    now = datetime.datetime.now(datetime.UTC)
    context, reason = {
        "untrusted-authority": (tls(trustme.CA()), "unable to get local issuer certificate"),
        "expired": (tls(authority, not_before=now - datetime.timedelta(days=30),
                        not_after=now - datetime.timedelta(days=1)), "certificate has expired"),
        "another-host": (tls(authority, "mirror.example.org"),
                         "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    }[certificate]
    server = mirror(lambda h, name: h.send(200, gz(name)), context)
    out = tmp_path / "raw"
    assert stage.download([server.url, str(debian)], out, retries=3, timeout=TIMEOUT) == str(debian)
    assert server.connections == 1 and server.requests == []  # refused before any request, once
    assert source_lines(capsys) == [
        f"source {server.url}: certificate verify failed: {reason}; trying the next one"]


def test_a_flaky_mirror_succeeds_on_the_next_attempt(tmp_path, debian, mirror):
    def fails_once(h, name):
        h.send(500) if len(h.server.requests) == 1 else h.send(200, gz(name))

    server = mirror(fails_once)
    assert stage.download([server.url], tmp_path / "raw", retries=2, timeout=10) == server.url
    assert verified(tmp_path / "raw") and os.listdir(tmp_path) == ["raw"]
    assert server.requests == [f"{FIRST}.gz"] + [f"{name}.gz" for name in FILES]


def test_a_failed_download_keeps_the_previous_data(tmp_path, debian, mirror):
    out = tmp_path / "raw"
    stage.download([str(debian)], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(stage.UserError, match="no source could provide"):
        stage.download([mirror(lambda h, n: h.send(404)).url], out, retries=1, timeout=TIMEOUT)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert verified(out) and os.listdir(tmp_path) == ["raw"]


def stage_run(main, capsys) -> tuple[int, list[str]]:
    """`main` run by stages.cli.run in this process: (exit code, stderr lines)."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        run(main)
        code = 0
    except SystemExit as exit:
        code = exit.code
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, capsys.readouterr().err.splitlines()


def test_damaged_package_files_say_reinstall(tmp_path, monkeypatch, capsys):
    """Debian's directory exists but its files fail: the fix is to reinstall the package."""
    package = tmp_path / "fashion-mnist"
    package.mkdir()
    for name in FILES:
        (package / f"{name}.gz").write_bytes(gzip.compress(b"damaged"))
    monkeypatch.setattr(stage, "DEBIAN", package)
    out = tmp_path / "data" / "raw"
    code, lines = stage_run(lambda: stage.download([str(package)], out), capsys)
    assert code == 1 and lines[-1].startswith(
        f"error: no source could provide Fashion-MNIST. Tried: {package}: SHA256 hash of downloaded "
        f"file ({FIRST}) does not match the known hash: expected sha256:{FILES[FIRST]} but got "
        f"{hashlib.sha256(b'damaged').hexdigest()}."), lines
    assert lines[-1].endswith(f". Fix: the files of dataset-fashion-mnist in {package} are damaged: "
                              "`apt-get install --reinstall dataset-fashion-mnist`"), lines[-1]
    assert [line for line in lines if line.startswith("source ")] == []  # said once, in the error
    assert os.listdir(tmp_path / "data") == []


def test_when_every_source_fails_the_stage_names_each_one(tmp_path, mirror, ca):
    """`python -m stages.download` (the one subprocess here): exit 1, a line per source but the
    last, then one error naming each source and its fault, the install fix, nothing written."""
    authority, bundle = ca
    expired = tls(authority, not_after=datetime.datetime.now(datetime.UTC)
                  - datetime.timedelta(days=1))
    faults = {
        mirror(lambda h, n: h.send(404)).url: "404 Client Error: Not Found for url: ",
        mirror(lambda h, n: h.send(200, b"<html/>")).url: "is not a valid gzip file",
        mirror(lambda h, n: h.send(200, gz(n)), expired).url: "certificate has expired",
        closed_port_url(): "Connection refused",
        str(tmp_path / "nowhere"): f"{tmp_path / 'nowhere' / FIRST}.gz does not exist",
    }
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"].update(sources=list(faults), retries=1, timeout=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO), "REQUESTS_CA_BUNDLE": str(bundle)}
    result = subprocess.run([sys.executable, "-m", "stages.download"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines if line.startswith("source ")] == [
        f"source {source}" for source in list(faults)[:-1]]
    assert all(line.endswith("; trying the next one") for line in lines if line.startswith("source "))
    error = lines[-1]
    assert error.startswith("error: no source could provide Fashion-MNIST. Tried: "), error
    for source, words in faults.items():
        assert f"{source}: " in error and words in error, (words, error)
    assert error.endswith(f"Fix: `apt-get install dataset-fashion-mnist` (puts the files in {stage.DEBIAN}), "
                          "or list a reachable mirror under download.sources in params.yaml")
    assert sorted(os.listdir(tmp_path)) == ["data", "params.yaml"] and os.listdir(tmp_path / "data") == []


def streaming(root: Path) -> bool:
    """True once a .gz is arriving in a temporary of data/raw under `root`."""
    return any(path.stat().st_size for path in root.glob("data/.raw-tmp-*/*.gz"))


def wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_ctrl_c_midway_leaves_nothing(tmp_path, mirror, capsys):
    """Ctrl-C while a file streams in: one line, exit 130, nothing under data/."""
    server = mirror(stalled)
    threading.Thread(target=lambda: wait_for(lambda: streaming(tmp_path))
                     and os.kill(os.getpid(), signal.SIGINT), daemon=True).start()
    code, lines = stage_run(lambda: stage.download([server.url], tmp_path / "data" / "raw",
                                                   retries=1, timeout=60), capsys)
    assert (code, lines[-1]) == (130, "interrupted: nothing was written")
    assert os.listdir(tmp_path / "data") == []


def test_a_download_killed_midway_leaves_nothing_under_the_final_name(tmp_path, debian, mirror):
    """SIGKILL (the OOM killer) cannot clean up: its hidden temporary stays (git-ignored), but
    nothing appears as data/raw, and the next download completes. A forked process, killed."""
    server = mirror(stalled)
    out = tmp_path / "data" / "raw"
    child = multiprocessing.get_context("fork").Process(
        target=stage.download, args=([server.url], out), kwargs={"retries": 1, "timeout": 60})
    child.start()
    try:
        assert wait_for(lambda: streaming(tmp_path))
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    finally:
        child.kill()
    assert child.exitcode == -signal.SIGKILL
    assert [p.name[:9] for p in (tmp_path / "data").iterdir()] == [".raw-tmp-"]
    assert stage.download([str(debian)], out) == str(debian) and verified(out)
