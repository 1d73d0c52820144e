"""The download stage against loopback HTTP(S) mirrors (tests/mirrors.py): faults and controls."""

# HTTPS mirrors use a test authority's certificates, trusted through REQUESTS_CA_BUNDLE as behind a
# private authority: nothing turns verification off.
import contextlib
import datetime
import fcntl
import gzip
import hashlib
import multiprocessing
import os
import re
import signal
import ssl
import struct
import subprocess
import sys
import termios

import pytest
import trustme
import yaml
from tqdm import tqdm

from scripts.toolkit import REPO, snapshot, wait_for
from stages import download as stage
from stages.data import FILES
from stages.exits import INTERRUPTED
from stages.exits import run as run_stage
from tests.mirrors import serving

FAULT_CLASS = "download: a faulty source"
USER_SEES = ("a line `source URL: what failed; trying the next one` (an HTTP status, a dropped "
             "or silent connection, a bad gzip or sha256, a refused certificate or redirect), then "
             "the next source; if none verifies, `error: no source could provide Fashion-MNIST. "
             "Tried: ...` naming each source and its fault and the fix that fits, exit 1, data/raw "
             "as it was")
FIRST = next(iter(FILES))  # train-images-idx3-ubyte: the first file asked of every source
GZ = (stage.DEBIAN / f"{FIRST}.gz").read_bytes()
EXPIRED = {"not_after": datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)}
TIMEOUT = 30  # seconds without data before an attempt fails: far above any wait on loopback
STALL = 600  # seconds a stalled mirror stays silent, unless the test ends first
# What the library's reason may not keep: urllib3's wrapping and OpenSSL's codes (stage.one_line).
WRAPPING = re.compile(r"Caused by|Pool\(|_ssl\.c|\[SSL: ")


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
    path = stage.DEBIAN / name
    h.send(200, path.read_bytes()) if path.is_file() else h.send(404)


def stalled(h, name):  # headers and some data, then silence until the mirror closes
    h.send(200, GZ[:100_000], length=len(GZ))
    h.server.closing.wait(STALL)


def verified(directory) -> bool:  # the four payloads, each with its sha256, and nothing else
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}
    return hashes == FILES


NOT_GZIP = "{url}" + FIRST + ".gz is not a valid gzip file ("  # the stage's words, then gzip's
# name: (behaviour (None: nothing listens), certificate, retries, requests of FIRST it costs, the
# facts its reason names: the cause, not the library's sentence)
CASES = {
    "http-error-status": (lambda h, n: h.send(500, b"oops"), None, 2, 2,
                          ("500", "{url}" + f"{FIRST}.gz")),
    "connection-refused": (None, None, 1, 0, ("Connection refused",)),  # the OS's ECONNREFUSED
    # a body cut short of its Content-Length (the bytes read, the bytes missing), then closed
    "connection-dropped": (lambda h, n: h.send(200, GZ[: 1 << 16], length=len(GZ)), None, 1, 1,
                           (str(1 << 16), str(len(GZ) - (1 << 16)))),
    "stalled-transfer": (stalled, None, 1, 1, ("timed out",)),
    # a valid gzip of the wrong file (a mirror that swapped names): only the sha256 can tell
    "wrong-sha256": (lambda h, n: debian_files(h, "train-labels-idx1-ubyte.gz"), None, 1, 1,
                     (FILES[FIRST], FILES["train-labels-idx1-ubyte"])),
    "not-gzip": (lambda h, n: h.send(200, b"<html>Please log in</html>"), None, 1, 1, (NOT_GZIP,)),
    "truncated-gzip": (lambda h, n: h.send(200, GZ[: 1 << 16]), None, 1, 1, (NOT_GZIP,)),
    "redirect-loop": (lambda h, n: h.send(302, Location=f"/{n}"), None, 1, 31, ("redirects",)),
    "redirect-to-ftp": (lambda h, n: h.send(301, Location=f"ftp://127.0.0.1/{n}"), None, 1, 1,
                        (f"ftp://127.0.0.1/{FIRST}.gz",)),
    # refused before any request, on the one connection: not retried
    "untrusted-authority": (debian_files, lambda ca: tls(trustme.CA()), 3, 0,
                            ("certificate verify failed", "issuer")),
    "expired-certificate": (debian_files, lambda ca: tls(ca, **EXPIRED), 3, 0,
                            ("certificate verify failed", "expired")),
    "certificate-of-another-host": (debian_files, lambda ca: tls(ca, "mirror.example.org"), 3, 0,
                                    ("certificate verify failed", "mismatch")),
}
# The stalled mirror's fault is the timeout: a short one, which any delay only brings forward.
TIMEOUTS = {"stalled-transfer": 2}


def faulty_source(case: str, mirror, authority, closed: str) -> tuple:
    """CASES[case]'s mirror (None: the `closed` port), its URL and the facts of its fault."""
    behaviour, certificate, *_, facts = CASES[case]
    server = mirror(behaviour, certificate and certificate(authority)) if behaviour else None
    url = server.url if server else f"http://{closed}/"
    return server, url, tuple(fact.replace("{url}", url) for fact in facts)


def fault_of(line: str, source: str) -> str:
    """The reason in the stage's line `source SOURCE: REASON; trying the next one`."""
    said = re.fullmatch(rf"source {re.escape(source)}: (.+); trying the next one", line)
    assert said, (source, line)
    return said[1]


def names(reason: str, facts: tuple[str, ...]) -> bool:
    """Whether `reason` is one line naming each fact, without the library's wrapping."""
    return (all(fact.lower() in reason.lower() for fact in facts) and "\n" not in reason
            and not WRAPPING.search(reason))


@pytest.mark.parametrize("case", CASES)
def test_a_faulty_mirror_falls_through_to_the_next_source(case, tmp_path, dataset, mirror,
                                                          authority, closed_address, capsys):
    """One line names the fault; data/raw comes whole from Debian's files."""
    server, url, facts = faulty_source(case, mirror, authority, closed_address)
    _, _, retries, requests, _ = CASES[case]
    out = tmp_path / "data" / "raw"
    timeout = TIMEOUTS.get(case, TIMEOUT)
    assert stage.download([url, str(dataset)], out, retries, timeout) == str(dataset)
    assert verified(out) and os.listdir(tmp_path / "data") == ["raw"]  # no partial file
    if server:
        assert server.connections == max(requests, 1)
        assert server.requests == [f"{FIRST}.gz"] * requests
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("source ")]
    assert len(lines) == 1, lines
    assert names(fault_of(lines[0], url), facts), (facts, lines[0])


def test_a_flaky_mirror_succeeds_on_the_next_attempt(tmp_path, mirror):
    server = mirror(lambda h, name: h.send(500) if len(h.server.requests) == 1
                    else debian_files(h, name))
    assert stage.download([server.url], tmp_path / "raw", 2, TIMEOUT) == server.url
    assert verified(tmp_path / "raw") and os.listdir(tmp_path) == ["raw"]
    assert server.requests == [f"{FIRST}.gz"] + [f"{name}.gz" for name in FILES]


@pytest.mark.parametrize("damaged", [False, True],
                         ids=["mirrors-and-a-missing-directory", "damaged-package"])
def test_when_every_source_fails_one_error_names_each_and_the_fix(damaged, tmp_path, dataset,
                                                                   mirror, authority, monkeypatch,
                                                                   entry_point, closed_address):
    """Exit 1: a line per source but the last, one error naming each fault and the fix that fits."""
    if damaged:  # the fix: reinstall the package whose own files fail
        monkeypatch.setattr(stage, "DEBIAN", tmp_path / "fashion-mnist")
        stage.DEBIAN.mkdir()
        for name in FILES:
            (stage.DEBIAN / f"{name}.gz").write_bytes(gzip.compress(b"damaged"))
        faults = {str(stage.DEBIAN): (FILES[FIRST], hashlib.sha256(b"damaged").hexdigest())}
        fix = (f"the files of dataset-fashion-mnist in {stage.DEBIAN} are damaged: "
               "`apt-get install --reinstall dataset-fashion-mnist`")
    else:  # the fix: install the package
        cases = ("http-error-status", "not-gzip", "expired-certificate", "connection-refused")
        faults = dict(faulty_source(case, mirror, authority, closed_address)[1:]
                      for case in cases)
        faults[str(tmp_path / "nowhere")] = (f"{tmp_path / 'nowhere' / FIRST}.gz does not exist",)
        fix = (f"`apt-get install dataset-fashion-mnist` (puts the files in {stage.DEBIAN}), "
               "or list a reachable mirror under download.sources in params.yaml")
    project = tmp_path / "project"
    stage.download([str(dataset)], project / "data/raw")  # the previous run's
    params = {"download": {"sources": list(faults), "retries": 1, "timeout": TIMEOUT}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    before = snapshot(project)
    code, lines = entry_point(stage.main, project)
    sources = list(faults)
    assert code == 1 and len(lines) == len(sources), (code, lines)
    said = [fault_of(line, source) for line, source in zip(lines, sources[:-1], strict=False)]
    head, tail = "error: no source could provide Fashion-MNIST. Tried: ", f". Fix: {fix}"
    error = lines[-1]
    assert error.startswith(head) and error.endswith(tail), error
    tried = re.fullmatch("; ".join(f"{re.escape(source)}: (.+?)" for source in sources),
                         error[len(head):-len(tail)])
    assert tried and list(tried.groups())[:-1] == said, error  # each told once, the same way
    for source, reason in zip(sources, tried.groups(), strict=True):
        assert names(reason, faults[source]), (source, reason)
    assert snapshot(project) == before and verified(project / "data/raw")


@pytest.mark.parametrize("sent, code, left", [
    (signal.SIGINT, 130, ["raw"]), (signal.SIGTERM, 130, ["raw"]),
    (signal.SIGKILL, -9, [".raw-tmp-", "raw"]),
], ids=["ctrl-c", "sigterm", "sigkill"])
def test_a_download_stopped_midway_leaves_the_previous_data_as_it_was(sent, code, left, tmp_path,
                                                                       dataset, mirror, capfd):
    """Stopped while a file streams in over the last data/raw: it stays; the next download works."""
    # Ctrl-C or SIGTERM (`kill`) end with one line and exit 130; SIGKILL (the OOM killer) cannot
    # clean up its hidden temporary (git-ignored).
    out = tmp_path / "data" / "raw"
    stage.download([str(dataset)], out)
    before = snapshot(out)
    child = multiprocessing.get_context("fork").Process(
        target=run_stage, args=(lambda: stage.download([mirror(stalled).url], out, 1, STALL),))
    child.start()
    try:
        streaming = "data/.raw-tmp-*/*.gz"
        assert wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob(streaming)), STALL)
        os.kill(child.pid, sent)
        child.join(STALL)
    finally:
        child.kill()
    assert child.exitcode == code
    assert sorted(p.name[:9] for p in (tmp_path / "data").iterdir()) == left
    assert snapshot(out) == before
    if code == 130:
        assert capfd.readouterr().err.splitlines()[-1] == INTERRUPTED
    assert stage.download([str(dataset)], out) == str(dataset) and verified(out)


@pytest.mark.control
def test_an_https_mirror_that_moved_its_files_serves_them_with_a_progress_bar(tmp_path, mirror,
                                                                              authority):
    """`python -m stages.download` in a terminal, over HTTPS and a redirect: a bar for each file."""
    # A pty of 100 columns; a missing directory first, then the mirror the test authority signed.
    def moved(h, path: str) -> None:
        if path.startswith("files/"):
            debian_files(h, path.removeprefix("files/"))
        else:
            h.send(302, Location=f"/files/{path}")

    server = mirror(moved, tls(authority))
    params = {"download": {"sources": ["/nonexistent", server.url], "retries": 1,
                           "timeout": TIMEOUT}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    master, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen([sys.executable, "-m", "stages.download"], cwd=tmp_path,
                             stderr=terminal, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(terminal)
    shown = bytearray()
    with contextlib.suppress(OSError):  # EIO: the child has exited, the terminal is closed
        while chunk := os.read(master, 1 << 16):
            shown.extend(chunk)
    os.close(master)
    bar = shown.decode(errors="replace")
    out, _ = child.communicate(timeout=STALL)
    said = f"data/raw: 4 files verified by sha256, from {server.url}\n"
    assert (child.returncode, out) == (0, said), bar
    assert verified(tmp_path / "data/raw")
    assert os.listdir(tmp_path / "data") == ["raw"]  # no temporary
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "data/raw").iterdir()} == {0o644}
    asked = [path for name in FILES for path in (f"{name}.gz", f"files/{name}.gz")]
    assert server.requests == asked
    for name in FILES:
        size = tqdm.format_sizeof((stage.DEBIAN / f"{name}.gz").stat().st_size)
        assert "100%|" in bar and f"| {size}/{size} [" in bar, (size, bar[-1000:])
