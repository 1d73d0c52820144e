"""The download stage against loopback HTTP(S) mirrors (tests/mirrors.py): its faults, and as controls its
happy paths. A test authority's certificates, trusted through REQUESTS_CA_BUNDLE as behind a private
authority: nothing turns verification off."""

import contextlib
import datetime
import fcntl
import gzip
import hashlib
import multiprocessing
import os
import signal
import ssl
import struct
import subprocess
import sys
import termios
import time

import pytest
import trustme
import yaml
from tqdm import tqdm

from scripts.toolkit import REPO, closed_port_url, snapshot, wait_for
from stages import download as stage
from stages.data import FILES
from stages.exits import INTERRUPTED
from stages.exits import run as run_stage
from tests.mirrors import serving

FAULT_CLASS = "download: a faulty source"
USER_SEES = ("a line `source URL: what failed; trying the next one` (an HTTP status, a dropped or silent "
             "connection, a bad gzip or sha256, a refused certificate or redirect), then the next source; if "
             "none verifies, `error: no source could provide Fashion-MNIST. Tried: ...` naming each source "
             "and its fault and the fix that fits, exit 1, data/raw as it was")
FIRST = next(iter(FILES))  # train-images-idx3-ubyte: the first file asked of every source
GZ = (stage.DEBIAN / f"{FIRST}.gz").read_bytes()
EXPIRED = {"not_after": datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)}


@pytest.fixture
def mirror():
    with contextlib.ExitStack() as stack:
        yield lambda behaviour, tls=None: stack.enter_context(serving(behaviour, tls))


@pytest.fixture
def authority(tmp_path, monkeypatch) -> trustme.CA:
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    return authority


def tls(authority: trustme.CA, host: str = "127.0.0.1", **validity: object) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(host, **validity).configure_cert(context)
    return context


def debian_files(h, name):
    h.send(200, (stage.DEBIAN / name).read_bytes()) if (stage.DEBIAN / name).is_file() else h.send(404)


def stalled(h, name):  # headers and some data, then silence
    h.send(200, GZ[:100_000], length=len(GZ))
    h.server.closing.wait(30)


def verified(directory) -> bool:  # the four payloads, each with its sha256, and nothing else
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()} == FILES


NOT_GZIP = "{url}" + FIRST + ".gz is not a valid gzip file "
SHA256 = ("SHA256 hash of downloaded file ({}) does not match the known hash: expected sha256:{} but got {}. "
          "Deleted download for safety. The downloaded file may have been corrupted or the known hash may be "
          "outdated")
# name: (behaviour (None: nothing listens), certificate, retries, requests of FIRST it costs, the message)
CASES = {
    "http-error-status": (lambda h, n: h.send(500, b"oops"), None, 2, 2,
                          "500 Server Error: Internal Server Error for url: {url}" + f"{FIRST}.gz"),
    "connection-refused": (None, None, 1, 0,
                           "Failed to establish a new connection: [Errno 111] Connection refused"),
    # a body cut short of its Content-Length: the connection closes after it
    "connection-dropped": (lambda h, n: h.send(200, GZ[: 1 << 16], length=len(GZ)), None, 1, 1,
                           f"Connection broken: IncompleteRead(65536 bytes read, {len(GZ) - 65536} more "
                           "expected)"),
    "stalled-transfer": (stalled, None, 1, 1, "Read timed out"),
    # a valid gzip of the wrong file (a mirror that swapped names): only the sha256 can tell
    "wrong-sha256": (lambda h, n: debian_files(h, "train-labels-idx1-ubyte.gz"), None, 1, 1,
                     SHA256.format(FIRST, FILES[FIRST], FILES["train-labels-idx1-ubyte"])),
    "not-gzip": (lambda h, n: h.send(200, b"<html>Please log in</html>"), None, 1, 1,
                 NOT_GZIP + "(Not a gzipped file (b'<h'))"),
    "truncated-gzip": (lambda h, n: h.send(200, GZ[: 1 << 16]), None, 1, 1,
                       NOT_GZIP + "(Compressed file ended before the end-of-stream marker was reached)"),
    "redirect-loop": (lambda h, n: h.send(302, Location=f"/{n}"), None, 1, 31, "Exceeded 30 redirects"),
    "redirect-to-ftp": (lambda h, n: h.send(301, Location=f"ftp://127.0.0.1/{n}"), None, 1, 1,
                        f"No connection adapters were found for 'ftp://127.0.0.1/{FIRST}.gz'"),
    # refused before any request, on the one connection: not retried
    "untrusted-authority": (debian_files, lambda ca: tls(trustme.CA()), 3, 0,
                            "certificate verify failed: unable to get local issuer certificate"),
    "expired-certificate": (debian_files, lambda ca: tls(ca, **EXPIRED), 3, 0,
                            "certificate verify failed: certificate has expired"),
    "certificate-of-another-host": (debian_files, lambda ca: tls(ca, "mirror.example.org"), 3, 0,
                                    "certificate verify failed: IP address mismatch, certificate is not "
                                    "valid for '127.0.0.1'"),
}


def faulty_source(case: str, mirror, authority) -> tuple:
    """CASES[case]'s source: its mirror (None: a closed port), its URL and the fault it is reported with."""
    behaviour, certificate, *_, message = CASES[case]
    server = mirror(behaviour, certificate and certificate(authority)) if behaviour else None
    url = server.url if server else closed_port_url()
    return server, url, message.replace("{url}", url)


@pytest.mark.parametrize("case", CASES)
def test_a_faulty_mirror_falls_through_to_the_next_source(case, tmp_path, dataset, mirror, authority, capsys):
    """One line names the fault; data/raw comes whole from Debian's files, within the timeout."""
    server, url, message = faulty_source(case, mirror, authority)
    _, _, retries, requests, _ = CASES[case]
    out = tmp_path / "data" / "raw"
    start = time.monotonic()
    assert stage.download([url, str(dataset)], out, retries=retries, timeout=0.5) == str(dataset)
    assert time.monotonic() - start < 15  # far below the stalled mirror's 30 s
    assert verified(out) and os.listdir(tmp_path / "data") == ["raw"]  # no partial file, no temporary
    if server:
        assert (server.connections, server.requests) == (max(requests, 1), [f"{FIRST}.gz"] * requests)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("source ")]
    assert lines == [f"source {url}: {message}; trying the next one"]


def test_a_flaky_mirror_succeeds_on_the_next_attempt(tmp_path, mirror):
    server = mirror(lambda h, name: h.send(500) if len(h.server.requests) == 1 else debian_files(h, name))
    assert stage.download([server.url], tmp_path / "raw", retries=2, timeout=10) == server.url
    assert verified(tmp_path / "raw") and os.listdir(tmp_path) == ["raw"]
    assert server.requests == [f"{FIRST}.gz"] + [f"{name}.gz" for name in FILES]


@pytest.mark.parametrize("damaged", [False, True], ids=["mirrors-and-a-missing-directory", "damaged-package"])
def test_when_every_source_fails_one_error_names_each_and_the_fix(damaged, tmp_path, dataset, mirror,
                                                                   authority, monkeypatch, entry_point):
    """Exit 1: a line per source but the last, then one error naming each source, its fault and the fix
    that fits: install dataset-fashion-mnist, or reinstall it when its own files fail. The previous run's
    data/raw stays as it was."""
    if damaged:
        monkeypatch.setattr(stage, "DEBIAN", tmp_path / "fashion-mnist")
        stage.DEBIAN.mkdir()
        for name in FILES:
            (stage.DEBIAN / f"{name}.gz").write_bytes(gzip.compress(b"damaged"))
        got = hashlib.sha256(b"damaged").hexdigest()
        faults = {str(stage.DEBIAN): SHA256.format(FIRST, FILES[FIRST], got)}
        fix = (f"the files of dataset-fashion-mnist in {stage.DEBIAN} are damaged: "
               "`apt-get install --reinstall dataset-fashion-mnist`")
    else:
        faults = dict(faulty_source(case, mirror, authority)[1:] for case in
                      ("http-error-status", "not-gzip", "expired-certificate", "connection-refused"))
        faults[str(tmp_path / "nowhere")] = f"{tmp_path / 'nowhere' / FIRST}.gz does not exist"
        fix = (f"`apt-get install dataset-fashion-mnist` (puts the files in {stage.DEBIAN}), "
               "or list a reachable mirror under download.sources in params.yaml")
    project = tmp_path / "project"
    stage.download([str(dataset)], project / "data/raw")  # the previous run's
    params = {"download": {"sources": list(faults), "retries": 1, "timeout": 5}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    tried = [f"{source}: {fault}" for source, fault in faults.items()]
    lines = [f"source {line}; trying the next one" for line in tried[:-1]]
    error = f"error: no source could provide Fashion-MNIST. Tried: {'; '.join(tried)}. Fix: {fix}"
    before = snapshot(project)
    assert entry_point(stage.main, project) == (1, [*lines, error])
    assert snapshot(project) == before and verified(project / "data/raw")


@pytest.mark.parametrize("sent, code, left", [
    (signal.SIGINT, 130, ["raw"]), (signal.SIGTERM, 130, ["raw"]), (signal.SIGKILL, -9, [".raw-tmp-", "raw"]),
], ids=["ctrl-c", "sigterm", "sigkill"])
def test_a_download_stopped_midway_leaves_the_previous_data_as_it_was(sent, code, left, tmp_path, dataset,
                                                                       mirror, capfd):
    """The stage, forked, stopped while a file streams in over the previous run's data/raw: Ctrl-C or
    SIGTERM (`kill`) ends with one line and exit 130, data/raw as it was; SIGKILL (the OOM killer) cannot
    clean up its hidden temporary (git-ignored). The next download completes."""
    out = tmp_path / "data" / "raw"
    stage.download([str(dataset)], out)
    before = snapshot(out)
    child = multiprocessing.get_context("fork").Process(
        target=run_stage, args=(lambda: stage.download([mirror(stalled).url], out, 1, 60),))
    child.start()
    try:
        assert wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob("data/.raw-tmp-*/*.gz")), 30)
        os.kill(child.pid, sent)
        child.join(30)
    finally:
        child.kill()
    assert child.exitcode == code and sorted(p.name[:9] for p in (tmp_path / "data").iterdir()) == left
    assert snapshot(out) == before
    if code == 130:
        assert capfd.readouterr().err.splitlines()[-1] == INTERRUPTED
    assert stage.download([str(dataset)], out) == str(dataset) and verified(out)


@pytest.mark.control
def test_an_https_mirror_that_moved_its_files_serves_them_with_a_progress_bar(tmp_path, mirror, authority):
    """`python -m stages.download` in a terminal (a pty of 100 columns), a missing directory first: the
    mirror verified by the test authority, its redirect followed, a progress bar for each file, its line."""
    server = mirror(lambda h, path: debian_files(h, path.removeprefix("files/")) if path.startswith("files/")
                    else h.send(302, Location=f"/files/{path}"), tls(authority))
    params = {"download": {"sources": ["/nonexistent", server.url], "retries": 1, "timeout": 10}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    master, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen([sys.executable, "-m", "stages.download"], cwd=tmp_path, stderr=terminal,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(terminal)
    shown = bytearray()
    with contextlib.suppress(OSError):  # EIO: the child has exited, the terminal is closed
        while chunk := os.read(master, 1 << 16):
            shown.extend(chunk)
    os.close(master)
    bar = shown.decode(errors="replace")
    out, _ = child.communicate(timeout=60)
    assert (child.returncode, out) == (0, f"data/raw: 4 files verified by sha256, from {server.url}\n"), bar
    assert verified(tmp_path / "data/raw") and os.listdir(tmp_path / "data") == ["raw"]  # no temporary
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "data/raw").iterdir()} == {0o644}
    assert server.requests == [path for name in FILES for path in (f"{name}.gz", f"files/{name}.gz")]
    for name in FILES:
        size = tqdm.format_sizeof((stage.DEBIAN / f"{name}.gz").stat().st_size)
        assert "100%|" in bar and f"| {size}/{size} [" in bar, (size, bar[-1000:])
