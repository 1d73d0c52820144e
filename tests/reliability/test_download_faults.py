"""Download faults, served for real by loopback HTTP and HTTPS servers: each source falls through
to the next.

Every case puts a faulty mirror first and Debian's files second: the download must end with
data/raw/ verified from the second source, the fault named on stderr, no partial file anywhere,
and no more attempts and seconds than the retries and timeout allow. The HTTPS mirrors hold
certificates of a test authority that requests is told to trust through REQUESTS_CA_BUNDLE, as a
user behind a private authority would; nothing turns verification off.
"""

import fcntl
import functools
import gzip
import hashlib
import multiprocessing
import os
import signal
import struct
import sys
import termios
import threading
import time

import pytest
from conftest import make_project, run, temporaries, wait_for

from stages.dataset import FILES
from stages.download import MAX_REDIRECTS, download

from .conftest import closed_port_url, serve_files

FAULT_CLASS = "download: a faulty source"
USER_SEES = (
    "a line `source URL: what failed; trying the next one` (an HTTP status, no data for the "
    "timeout, a bad gzip or sha256, a refused certificate or redirect), then the next source is "
    "used; "
    "if none verifies, `error: no source could provide Fashion-MNIST. Tried: ...` naming each "
    "source and its fault, exit 1, nothing in data/raw"
)

FIRST = next(iter(FILES))  # train-images-idx3-ubyte: the first file asked of every source
RETRIES, TIMEOUT = 2, 0.5
# Waits between attempts (0.5 s), the attempts themselves, Debian's copy: generous, but far
# below what an unbounded attempt would take.
TIME_LIMIT = 8.0


def real_gz(dataset, name=FIRST) -> bytes:
    return (dataset / f"{name}.gz").read_bytes()


@functools.cache
def zeros_gz() -> bytes:
    """A valid gzip of the first file's size whose bytes are all wrong (built once: 47 MB)."""
    return gzip.compress(b"\0" * FILES[FIRST].size, compresslevel=1)


# ---------------------------------------------------------------- behaviours of a faulty mirror
# Each answers GET /<name>; `dataset` gives the real bytes where a fault needs them.


def not_found(dataset):
    return lambda h, name: h.send(404, b"<html>not found</html>")


def server_error(dataset):
    return lambda h, name: h.send(500, b"internal error")


def too_many_requests(dataset):
    return lambda h, name: h.send(429, b"slow down", headers={"Retry-After": "0"})


def connection_dropped(dataset):
    def behaviour(h, name):
        body = (dataset / name).read_bytes()
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: 1 << 16])
        h.wfile.flush()
        h.connection.shutdown(2)  # cut: the client sees a body shorter than its Content-Length

    return behaviour


def stalled(dataset):
    body = real_gz(dataset)

    def behaviour(h, name):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:100_000])
        h.wfile.flush()
        h.pause(30)  # silence, until the test ends

    return behaviour


def trickling(dataset):
    # A byte every 0.1 s: each wait for data is shorter than the timeout, so only a deadline
    # on the whole attempt ends it (200 bytes would otherwise take 20 s).
    body = real_gz(dataset)[:200]

    def behaviour(h, name):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for byte in body:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            if h.pause(0.1):
                return

    return behaviour


def wrong_hash(dataset):
    # A valid gzip of the right size, but not the right bytes: only the sha256 can tell.
    return lambda h, name: h.send(200, zeros_gz())


def wrong_file(dataset):
    # A mirror that swapped names: the labels file under the images' name.
    body = real_gz(dataset, "train-labels-idx1-ubyte")
    return lambda h, name: h.send(200, body)


def truncated_gzip(dataset):
    body = real_gz(dataset)[: 1 << 16]  # a complete HTTP answer of a cut gzip file
    return lambda h, name: h.send(200, body)


def corrupted_gzip(dataset):
    # One flipped byte in the deflate stream (of a small file: the error is the same).
    body = bytearray(real_gz(dataset, "train-labels-idx1-ubyte"))
    body[len(body) // 2] ^= 0xFF
    return lambda h, name: h.send(200, bytes(body))


def not_gzip(dataset):
    # A captive portal or a mirror's error page, with status 200.
    page = b"<!doctype html><html><body>Please log in to continue</body></html>"
    return lambda h, name: h.send(200, page, headers={"Content-Type": "text/html"})


def gzip_bomb(dataset):
    # 300 MB of zeros in 300 kB of gzip members: decompression must stop at the expected size.
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    body = member * 300
    return lambda h, name: h.send(200, body)


def endless(dataset):
    # No Content-Length, and a body that never ends: the download must stop at the expected size.
    def behaviour(h, name):
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        block = b"\0" * (1 << 16)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not h.closing.is_set():
            h.wfile.write(block)

    return behaviour


def oversized(dataset):
    # Announces more bytes than any Fashion-MNIST file can have: refused before reading.
    def behaviour(h, name):
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()
        h.pause(30)

    return behaviour


# behaviour, attempts it may cost (RETRIES if worth retrying), words the message must contain
CASES = {
    "http-404": (not_found, 1, "HTTP 404"),
    "http-500": (server_error, RETRIES, "HTTP 500"),
    "http-429": (too_many_requests, RETRIES, "HTTP 429"),
    "connection-dropped": (connection_dropped, RETRIES, "connection dropped"),
    "stalled-transfer": (stalled, RETRIES, f"no data for {TIMEOUT:g} s"),
    "trickling-transfer": (trickling, RETRIES, "not complete after"),
    "wrong-hash": (wrong_hash, 1, "sha256"),
    "wrong-file": (wrong_file, 1, "sha256"),
    "truncated-gzip": (truncated_gzip, 1, "not a valid gzip file"),
    "corrupted-gzip": (corrupted_gzip, 1, "not a valid gzip file"),
    "not-gzip": (not_gzip, 1, "not a valid gzip file"),
    "gzip-bomb": (gzip_bomb, 1, "decompresses to more than the expected"),
    "endless-body": (endless, 1, "sends more than the"),
    "oversized-content-length": (oversized, 1, "announces 1000000000000 bytes"),
}


def verified(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()} == {
        name: payload.sha256 for name, payload in FILES.items()
    }


def reported(capsys) -> list[str]:
    """The `source ...; trying the next one` lines download() printed."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("source ")]


@pytest.mark.parametrize("case", list(CASES))
def test_a_faulty_source_falls_through_to_the_next(case, tmp_path, dataset, fault_server, capsys):
    make_behaviour, attempts, words = CASES[case]
    mirror = fault_server(make_behaviour(dataset))
    out = tmp_path / "data" / "raw"

    start = time.monotonic()
    used = download([mirror.url, str(dataset)], out, retries=RETRIES, timeout=TIMEOUT)
    elapsed = time.monotonic() - start

    assert used == str(dataset)
    assert verified(out)
    assert sorted(os.listdir(tmp_path / "data")) == ["raw"]  # no partial file, no temporary
    assert mirror.requests.count(f"{FIRST}.gz") == attempts == len(mirror.requests)
    assert elapsed < TIME_LIMIT, f"{case} took {elapsed:.1f} s"
    lines = reported(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"source {mirror.url}"), lines
    assert words in lines[0] and "trying the next one" in lines[0]
    if attempts > 1:
        assert f"after {RETRIES} attempts" in lines[0]


# ---------------------------------------------------------------- HTTPS and redirects

# certificate of the mirror (tests/reliability/conftest.py), the reason the user must read
REFUSED_CERTIFICATES = {
    "untrusted-authority": "certificate verify failed: unable to get local issuer certificate "
                           "(behind a private certificate authority, set REQUESTS_CA_BUNDLE",
    "expired": "certificate verify failed: certificate has expired;",
    "another-host": "certificate verify failed: IP address mismatch, certificate is not valid "
                    "for '127.0.0.1';",
}


def test_a_trusted_https_mirror_serves_the_files_with_a_progress_bar(
        tmp_path, https_mirrors, trust_test_ca, monkeypatch):
    """The real files over HTTPS; tqdm draws its bar only on a terminal, so stderr is one (a pty)."""
    mirror = https_mirrors["trusted"]
    master, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: everything written was read, and the other end is closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    with open(follower, "w", encoding="utf-8") as terminal, monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", terminal)
        used = download([mirror.url], tmp_path / "raw", retries=1, timeout=10)
    reader.join(10)
    os.close(master)

    assert used == mirror.url and verified(tmp_path / "raw")
    assert sorted(os.listdir(tmp_path)) == ["raw"]
    bar = shown.decode(errors="replace")
    for name in FILES:
        assert f"{name}.gz: 100%|" in bar, bar[-2000:]


@pytest.mark.parametrize("certificate", list(REFUSED_CERTIFICATES))
def test_a_refused_certificate_falls_through_at_once(certificate, tmp_path, dataset, https_mirrors,
                                                     trust_test_ca, capsys):
    """One connection, no retry (the next would get the same certificate), one line saying why."""
    mirror = https_mirrors[certificate]
    connections = len(mirror.connections)
    out = tmp_path / "data" / "raw"
    assert download([mirror.url, str(dataset)], out, retries=RETRIES, timeout=TIMEOUT) == str(dataset)
    assert verified(out) and sorted(os.listdir(tmp_path / "data")) == ["raw"]
    assert len(mirror.connections) - connections == 1
    assert mirror.requests == []  # refused before a request was sent
    lines = reported(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"source {mirror.url}: {mirror.url}{FIRST}.gz: ")
    assert REFUSED_CERTIFICATES[certificate] in lines[0], lines[0]
    assert lines[0].endswith("; trying the next one")


def moved(dataset):
    # The mirror moved its files to /files/: a relative redirect, as real mirrors answer.
    files = serve_files(dataset)

    def behaviour(h, name):
        if name.startswith("files/"):
            return files(h, name.removeprefix("files/"))
        h.send(302, headers={"Location": f"/files/{name}"})

    return behaviour


def test_a_redirect_to_another_path_is_followed(tmp_path, dataset, fault_server, server_certificates,
                                                trust_test_ca):
    mirror = fault_server(moved(dataset), tls=server_certificates["trusted"])
    assert download([mirror.url], tmp_path / "raw", retries=1, timeout=10) == mirror.url
    assert verified(tmp_path / "raw") and sorted(os.listdir(tmp_path)) == ["raw"]
    assert mirror.requests == [path for name in FILES for path in (f"{name}.gz", f"files/{name}.gz")]


def redirect_loop(dataset):
    return lambda h, name: h.send(302, headers={"Location": f"/{name}"})


def redirect_to_ftp(dataset):
    return lambda h, name: h.send(301, headers={"Location": f"ftp://127.0.0.1/fashion/{name}"})


# behaviour, requests it may cost (no retry: the next attempt would be answered the same), words
REFUSED_REDIRECTS = {
    "redirect-loop": (redirect_loop, 1 + MAX_REDIRECTS, f": too many redirects ({MAX_REDIRECTS});"),
    "redirect-to-ftp": (redirect_to_ftp, 1, f": redirected to ftp://127.0.0.1/fashion/{FIRST}.gz: "
                                            "only http(s) is allowed;"),
}


@pytest.mark.parametrize("case", list(REFUSED_REDIRECTS))
def test_a_refused_redirect_falls_through_at_once(case, tmp_path, dataset, fault_server,
                                                  server_certificates, trust_test_ca, capsys):
    make_behaviour, requests, words = REFUSED_REDIRECTS[case]
    mirror = fault_server(make_behaviour(dataset), tls=server_certificates["trusted"])
    out = tmp_path / "data" / "raw"
    assert download([mirror.url, str(dataset)], out, retries=RETRIES, timeout=TIMEOUT) == str(dataset)
    assert verified(out) and sorted(os.listdir(tmp_path / "data")) == ["raw"]
    assert mirror.requests == [f"{FIRST}.gz"] * requests
    lines = reported(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"source {mirror.url}: {mirror.url}{FIRST}.gz"), lines
    assert words in lines[0], lines[0]


# ---------------------------------------------------------------- retries, leftovers, the stage


@pytest.mark.parametrize("fault", ["http-500-once", "connection-dropped-once"])
def test_a_flaky_source_succeeds_on_the_next_attempt(fault, tmp_path, dataset, fault_server):
    fail = server_error(dataset) if fault == "http-500-once" else connection_dropped(dataset)

    def behaviour(h, name):
        if len(h.record) == 1:  # the first request of all fails
            return fail(h, name)
        h.send(200, (dataset / name).read_bytes())

    mirror = fault_server(behaviour)
    out = tmp_path / "raw"
    assert download([mirror.url], out, retries=2, timeout=10) == mirror.url
    assert verified(out)
    assert mirror.requests == [f"{FIRST}.gz"] + [f"{name}.gz" for name in FILES]
    assert sorted(os.listdir(tmp_path)) == ["raw"]


def test_a_refused_connection_falls_through(tmp_path, dataset, capsys):
    refused = closed_port_url()
    start = time.monotonic()
    assert download([refused, str(dataset)], tmp_path / "raw", retries=2, timeout=1) == str(dataset)
    assert time.monotonic() - start < TIME_LIMIT
    assert sorted(os.listdir(tmp_path)) == ["raw"]
    assert reported(capsys) == [f"source {refused}: {refused}{FIRST}.gz: connection failed (refused, "
                                "reset or closed) (after 2 attempts); trying the next one"]


def test_retries_are_bounded_in_count_and_time(tmp_path, fault_server, dataset):
    """3 attempts of a server stalling after its headers: 3 timeouts plus 0.5 + 1 s of waits."""
    mirror = fault_server(stalled(dataset))
    start = time.monotonic()
    with pytest.raises(Exception, match="no source could provide"):
        download([mirror.url], tmp_path / "raw", retries=3, timeout=0.2)
    elapsed = time.monotonic() - start
    assert len(mirror.requests) == 3
    assert 3 * 0.2 + 1.5 <= elapsed < 3 * 0.2 + 1.5 + 3, elapsed
    assert os.listdir(tmp_path) == []


def test_a_failed_download_keeps_the_previous_data(tmp_path, dataset, fault_server):
    out = tmp_path / "raw"
    download([str(dataset)], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    mirror = fault_server(truncated_gzip(dataset))
    with pytest.raises(Exception, match="no source could provide"):
        download([mirror.url], out, retries=1, timeout=TIMEOUT)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert verified(out) and sorted(os.listdir(tmp_path)) == ["raw"]


def test_a_local_source_with_a_bad_file_falls_through(tmp_path, dataset):
    bad = tmp_path / "mirror"
    bad.mkdir()
    for name in FILES:
        (bad / f"{name}.gz").write_bytes(b"this is not gzip")
    out = tmp_path / "data" / "raw"
    assert download([str(bad), str(dataset)], out) == str(dataset)
    assert verified(out) and os.listdir(tmp_path / "data") == ["raw"]


def test_when_every_source_fails_the_stage_names_each_one(tmp_path, dataset, fault_server,
                                                          https_mirrors, trust_test_ca):
    """The stage itself (the one run of `python -m stages.download` here): exit 1, one last line
    naming each source and its fault, nothing written. Faults that cost no waiting: each one's
    message is checked above."""
    mirrors = {
        "HTTP 404": fault_server(not_found(dataset)).url,
        "HTTP 500 (after 1 attempt)": fault_server(server_error(dataset)).url,
        "connection dropped": fault_server(connection_dropped(dataset)).url,
        "not a valid gzip file": fault_server(not_gzip(dataset)).url,
        "sha256": fault_server(wrong_file(dataset)).url,
        "certificate has expired": https_mirrors["expired"].url,
        "connection failed": closed_port_url(),
        "does not exist": str(tmp_path / "no-such-directory"),
    }
    project = make_project(tmp_path / "project", **{
        "download.sources": list(mirrors.values()), "download.retries": 1, "download.timeout": 5,
    })
    # As DVC runs the stage; REQUESTS_CA_BUNDLE passes on, as from a user's shell.
    result = run(project, "python", "-m", "stages.download", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no source could provide Fashion-MNIST. Tried: ")
    for words, source in mirrors.items():
        assert f"{source}: " in last and words in last, (words, last)
    assert "apt-get install dataset-fashion-mnist" in last
    assert not (project / "data").exists() or os.listdir(project / "data") == []
    assert temporaries(project) == []


@pytest.mark.parametrize("source", ["ftp://127.0.0.1/fashion", "file:///usr/share/datasets",
                                    "s3://bucket/fashion-mnist"])
def test_a_source_that_is_neither_a_url_nor_a_path_is_rejected(source, tmp_path, dataset):
    # params.yaml refuses it (see test_params_faults); download() refuses it too if called directly.
    out = tmp_path / "raw"
    with pytest.raises(Exception, match="no source could provide") as caught:
        download([source], out)
    assert "not an http(s) URL or a local directory" in str(caught.value)
    assert os.listdir(tmp_path) == []


def streaming(root):
    """True once a file is arriving in a temporary of data/raw under `root`."""
    return any(path.stat().st_size for path in root.rglob(".*-tmp-*/*.gz"))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_download_interrupted_midway_leaves_no_partial_file(sig, tmp_path, dataset, fault_server,
                                                             entry_point):
    """Ctrl-C or `kill` while a file streams in: one line, exit 130, nothing under data/raw."""
    mirror = fault_server(stalled(dataset))
    out = tmp_path / "data" / "raw"

    def interrupt() -> None:
        if wait_for(lambda: streaming(tmp_path), timeout=30):
            os.kill(os.getpid(), getattr(signal, sig))

    def main() -> None:
        download([mirror.url], out, retries=1, timeout=60)
        raise AssertionError("the download was not interrupted")

    threading.Thread(target=interrupt, daemon=True).start()
    code, lines = entry_point(main, tmp_path)
    assert code == 130
    assert lines[-1] == "interrupted: nothing was written"
    assert not out.exists() and temporaries(tmp_path) == []


def test_a_download_killed_midway_leaves_nothing_under_the_final_name(tmp_path, dataset,
                                                                      fault_server):
    """SIGKILL (the OOM killer) cannot clean up: its hidden temporary stays (git-ignored), but
    nothing appears under data/raw, and the next download completes. The download runs in a
    forked process, killed for real."""
    mirror = fault_server(stalled(dataset))
    out = tmp_path / "data" / "raw"
    child = multiprocessing.get_context("fork").Process(
        target=download, args=([mirror.url], out), kwargs={"retries": 1, "timeout": 60})
    child.start()
    try:
        assert wait_for(lambda: streaming(tmp_path), timeout=30)
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    finally:
        child.kill()
    assert child.exitcode == -signal.SIGKILL
    assert not out.exists() and temporaries(tmp_path), "a SIGKILL leaves its temporary"
    assert download([str(dataset)], out) == str(dataset)
    assert verified(out)
