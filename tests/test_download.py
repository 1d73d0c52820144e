"""The download stage's happy paths (its faults are tests/reliability/test_download_faults.py)."""

import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
import threading

import pytest
import yaml
from tqdm import tqdm

from stages import download as stage
from stages.cli import run
from stages.data import FILES
from tests.mirrors import files_of, new_authority, serving, tls, verified


@pytest.fixture
def debian():
    if not (stage.DEBIAN / f"{next(iter(FILES))}.gz").is_file():
        pytest.fail(f"{stage.DEBIAN} is missing: apt-get install dataset-fashion-mnist")
    return stage.DEBIAN


def test_the_stage_writes_the_same_data_whichever_source_serves_it(tmp_path, debian, monkeypatch,
                                                                    capsys):
    """Debian's .gz files and a mirror's differ in their gzip headers; data/raw/ does not."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"download": {"sources": [str(debian)], "retries": 1, "timeout": 10}}))
    monkeypatch.chdir(tmp_path)
    previous = signal.getsignal(signal.SIGTERM)  # run() installs its own
    try:
        run(stage.main)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().out == f"data/raw: 4 files verified by sha256, from {debian}\n"
    assert verified(tmp_path / "data" / "raw")
    with serving(files_of(debian)) as mirror:
        assert stage.download(["/nonexistent", mirror.url], tmp_path / "http", retries=1) == mirror.url
    assert verified(tmp_path / "http")
    assert sorted(os.listdir(tmp_path)) == ["data", "http", "params.yaml"]
    assert os.listdir(tmp_path / "data") == ["raw"]  # no temporary left
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "data" / "raw").iterdir()} == {0o644}


@contextlib.contextmanager
def terminal_stderr(monkeypatch):
    """Make sys.stderr a terminal of 100 columns (a pty); yield what it shows, complete on exit."""
    master, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    shown = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO: the other end is closed
            while chunk := os.read(master, 1 << 16):
                shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with open(follower, "w", encoding="utf-8") as terminal, monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", terminal)
        yield shown
    reader.join(10)
    os.close(master)


def test_an_https_mirror_that_moved_its_files_serves_them_with_a_progress_bar(tmp_path, debian,
                                                                               monkeypatch):
    """Verified against the test authority (REQUESTS_CA_BUNDLE), a relative redirect followed,
    and pooch's progress bar drawn for each file, since stderr is a terminal."""
    authority, bundle = new_authority(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    files = files_of(debian)

    def moved(h, path):
        files(h, path.removeprefix("files/")) if path.startswith("files/") \
            else h.send(302, Location=f"/files/{path}")

    with serving(moved, tls(authority)) as mirror, terminal_stderr(monkeypatch) as shown:
        assert stage.download([mirror.url], tmp_path / "raw", retries=1, timeout=10) == mirror.url
    assert verified(tmp_path / "raw") and os.listdir(tmp_path) == ["ca.pem", "raw"]
    assert mirror.requests == [path for name in FILES for path in (f"{name}.gz", f"files/{name}.gz")]
    bar = shown.decode(errors="replace")
    for name in FILES:
        size = tqdm.format_sizeof((debian / f"{name}.gz").stat().st_size)
        assert "100%|" in bar and f"| {size}/{size} [" in bar, (size, bar[-1000:])
