"""Download faults, served for real by loopback servers: each source falls through to the next.

Every case puts a faulty mirror first and Debian's files second: the download must end with
data/raw/ verified from the second source, the fault named on stderr, no partial file anywhere,
and no more attempts and seconds than the retries and timeout allow.
"""

import gzip
import hashlib
import os
import subprocess
import time

import pytest
import yaml
from conftest import make_project

from stages.dataset import FILES
from stages.download import download

from .conftest import closed_port_url, stage, temporaries

FAULT_CLASS = "download: a faulty source"
USER_SEES = (
    "a line `source URL: what failed; trying the next one`, then the next source is used; "
    "if none verifies, `error: no source could provide Fashion-MNIST. Tried: ...` naming each "
    "source and its fault, exit 1, nothing in data/raw"
)

FIRST = next(iter(FILES))  # train-images-idx3-ubyte: the first file asked of every source
RETRIES, TIMEOUT = 2, 1.0
# Waits between attempts (0.5 s), the attempts themselves, Debian's copy: generous, but far
# below what an unbounded attempt would take.
TIME_LIMIT = 12.0


def real_gz(dataset, name=FIRST) -> bytes:
    return (dataset / f"{name}.gz").read_bytes()


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
        h.wfile.write(body[: len(body) // 3])
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
    # A byte every 0.2 s: each wait for data is shorter than the timeout, so only a deadline
    # on the whole attempt ends it (200 bytes would otherwise take 40 s).
    body = real_gz(dataset)[:200]

    def behaviour(h, name):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for byte in body:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            if h.pause(0.2):
                return

    return behaviour


def wrong_hash(dataset):
    # A valid gzip of the right size, but not the right bytes.
    body = gzip.compress(b"\0" * FILES[FIRST].size, compresslevel=1)
    return lambda h, name: h.send(200, body)


def wrong_file(dataset):
    # A mirror that swapped names: the labels file under the images' name.
    body = real_gz(dataset, "train-labels-idx1-ubyte")
    return lambda h, name: h.send(200, body)


def truncated_gzip(dataset):
    body = real_gz(dataset)
    body = body[: len(body) // 2]  # a complete HTTP answer of half a gzip file
    return lambda h, name: h.send(200, body)


def corrupted_gzip(dataset):
    body = bytearray(real_gz(dataset))
    body[len(body) // 2] ^= 0xFF  # one flipped byte in the deflate stream
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
    assert mirror.count(f"{FIRST}.gz") == attempts == len(mirror.requests)
    assert elapsed < TIME_LIMIT, f"{case} took {elapsed:.1f} s"
    reported = [line for line in capsys.readouterr().err.splitlines() if line.startswith("source ")]
    assert len(reported) == 1 and reported[0].startswith(f"source {mirror.url}"), reported
    assert words in reported[0] and "trying the next one" in reported[0]
    if attempts > 1:
        assert f"after {RETRIES} attempts" in reported[0]


@pytest.mark.parametrize("fault", ["http-500-once", "connection-dropped-once"])
def test_a_flaky_source_succeeds_on_the_next_attempt(fault, tmp_path, dataset, fault_server):
    fail = server_error(dataset) if fault == "http-500-once" else connection_dropped(dataset)
    asked = set()

    def behaviour(h, name):
        if name not in asked:
            asked.add(name)
            return fail(h, name)
        h.send(200, (dataset / name).read_bytes())

    mirror = fault_server(behaviour)
    out = tmp_path / "raw"
    assert download([mirror.url], out, retries=2, timeout=TIMEOUT) == mirror.url
    assert verified(out)
    assert len(mirror.requests) == 2 * len(FILES)  # one failure and one success per file
    assert sorted(os.listdir(tmp_path)) == ["raw"]


def test_a_refused_connection_falls_through(tmp_path, dataset):
    refused = closed_port_url()
    start = time.monotonic()
    assert download([refused, str(dataset)], tmp_path / "raw", retries=2, timeout=1) == str(dataset)
    assert time.monotonic() - start < TIME_LIMIT
    assert sorted(os.listdir(tmp_path)) == ["raw"]


def test_retries_are_bounded_in_count_and_time(tmp_path, fault_server, dataset):
    """4 attempts of a server stalling after its headers: 4 timeouts plus 0.5 + 1 + 2 s of waits."""
    mirror = fault_server(stalled(dataset))
    start = time.monotonic()
    with pytest.raises(Exception, match="no source could provide"):
        download([mirror.url], tmp_path / "raw", retries=4, timeout=0.5)
    elapsed = time.monotonic() - start
    assert len(mirror.requests) == 4
    assert 4 * 0.5 + 3.5 <= elapsed < 4 * 0.5 + 3.5 + 4, elapsed
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


def test_when_every_source_fails_the_stage_names_each_one(tmp_path, dataset, fault_server):
    """The stage itself: exit 1, a last line naming each source and its fault, nothing written."""
    mirrors = {
        "HTTP 404": fault_server(not_found(dataset)).url,
        "HTTP 500": fault_server(server_error(dataset)).url,
        "connection dropped": fault_server(connection_dropped(dataset)).url,
        "no data for 1 s": fault_server(stalled(dataset)).url,
        "not a valid gzip file": fault_server(not_gzip(dataset)).url,
        "sha256": fault_server(wrong_hash(dataset)).url,
        "connection failed": closed_port_url(),
        "does not exist": str(tmp_path / "no-such-directory"),
    }
    project = make_project(tmp_path / "project", **{
        "download.sources": list(mirrors.values()), "download.retries": 2, "download.timeout": 1,
    })
    start = time.monotonic()
    result = stage(project, "download")
    elapsed = time.monotonic() - start
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no source could provide Fashion-MNIST. Tried: ")
    for words, source in mirrors.items():
        assert f"{source}: " in last and words in last, (words, last)
    assert "apt-get install dataset-fashion-mnist" in last
    assert not (project / "data").exists() or os.listdir(project / "data") == []
    assert temporaries(project) == []
    assert elapsed < 8 * TIME_LIMIT


@pytest.mark.parametrize("source", ["ftp://127.0.0.1/fashion", "file:///usr/share/datasets",
                                    "s3://bucket/fashion-mnist"])
def test_a_source_that_is_neither_a_url_nor_a_path_is_rejected(source, tmp_path, dataset):
    # params.yaml refuses it (see test_params_faults); download() refuses it too if called directly.
    out = tmp_path / "raw"
    with pytest.raises(Exception, match="no source could provide") as caught:
        download([source], out)
    assert "not an http(s) URL or a local directory" in str(caught.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_download_killed_midway_leaves_no_partial_file(sig, tmp_path, dataset, fault_server):
    """Stopped while a file streams in: nothing under data/raw; a SIGKILL's leftovers go next run."""
    import signal

    from .conftest import PYTHON, VENV_BIN, wait_for

    mirror = fault_server(stalled(dataset))
    project = make_project(tmp_path / "project", **{"download.sources": [mirror.url],
                                                     "download.timeout": 60})
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen([PYTHON, "-m", "stages.download"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: mirror.requests and temporaries(project), timeout=30)
        time.sleep(0.3)  # the first 100 kB are in the temporary file
        process.send_signal(getattr(signal, sig))
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert not (project / "data/raw").exists()
    if sig == "SIGKILL":
        assert temporaries(project), "a SIGKILL leaves its temporary (the next run removes it)"
        project.joinpath("params.yaml").write_text(yaml.safe_dump({
            **yaml.safe_load(project.joinpath("params.yaml").read_text()),
            "download": {"sources": [str(dataset)], "retries": 1, "timeout": 5},
        }))
        assert stage(project, "download").returncode == 0
        assert verified(project / "data/raw")
    else:
        assert process.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "interrupted: nothing was written"
        assert "Traceback" not in stderr
    assert temporaries(project) == []
