"""Faults of the shared S3 store and of a full disk: a clear error, nothing lost, the next run completes."""

import subprocess
import time
from pathlib import Path

import pytest

from conftest import VENV_BIN, git, ok, run, venv_env
from team.helpers import clone, digests, new_project, start_store

from .conftest import closed_port_url

FAULT_CLASS = "store: the shared S3 remote fails, or the disk fills"
USER_SEES = ("DVC's `ERROR: failed to push data to the cloud` / `failed to pull data from the cloud` "
             "naming the cause (403 signature, bucket does not exist, could not connect, "
             "No space left on device) within seconds, exit 1; no local file or dvc.lock changed; "
             "after the fault is gone the same command completes and a fresh clone pulls everything")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, dataset):
    """A store and a project whose `download` ran (data/raw: 53 MB in 5 objects)."""
    base = tmp_path_factory.mktemp("store_faults")
    store = start_store(base / "store")
    project = new_project(base / "a", dataset, origin=base / "origin.git")
    ok(run(project, "dvc", "repro", "download"))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "download")
    git(project, "push", "-q", "origin", "main")
    yield store, project, base / "origin.git"
    store.stop()


def failed(result: subprocess.CompletedProcess, *words: str) -> str:
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    assert any(w.lower() in text.lower() for w in words), text
    return text


def unchanged(project: Path, before: dict) -> None:
    assert git(project, "status", "--porcelain") == ""
    assert digests(project, ("data", "dvc.lock")) == before


def test_wrong_secret_is_refused(shared):
    store, project, _ = shared
    before = digests(project, ("data", "dvc.lock"))
    env = {**store.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    failed(run(project, "dvc", "push", env=env), "403", "SignatureDoesNotMatch", "Forbidden", "denied")
    unchanged(project, before)


def test_missing_bucket_is_named(shared):
    store, project, _ = shared
    before = digests(project, ("data", "dvc.lock"))
    ok(run(project, "dvc", "remote", "add", "--local", "nobucket", "s3://no-such-bucket/cache"))
    try:
        failed(run(project, "dvc", "push", "-r", "nobucket", env=store.env()),
               "NoSuchBucket", "does not exist")
    finally:
        ok(run(project, "dvc", "remote", "remove", "--local", "nobucket"))
    unchanged(project, before)


def test_store_not_running_fails_within_seconds(shared):
    store, project, _ = shared
    before = digests(project, ("data", "dvc.lock"))
    env = {**store.env(), "AWS_ENDPOINT_URL_S3": closed_port_url().rstrip("/")}
    start = time.monotonic()
    failed(run(project, "dvc", "push", env=env, timeout=120), "connect", "Connection refused")
    assert time.monotonic() - start < 30
    unchanged(project, before)


def test_store_stopped_during_a_push_then_the_push_completes(shared, tmp_path):
    store, project, origin = shared
    objects = store.data / "fashion-mnist"
    # Slowed to 200 MB/s, the push lasts about 0.3 s: long enough to stop the store in its middle.
    store.stop()
    store.start(extra_args=("--bwlimit", "200M"))
    # One attempt per request (botocore's AWS_MAX_ATTEMPTS): how long DVC retries a store that is
    # gone is the previous test's subject, with the defaults (about 10 s); here it is what an
    # interrupted transfer leaves behind.
    push = subprocess.Popen(
        [str(VENV_BIN / "dvc"), "push"], cwd=project,
        env=venv_env(keep_pythonpath=True, **{**store.env(), "AWS_MAX_ATTEMPTS": "1"}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while not any(p.is_file() for p in objects.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    store.stop()  # in the middle: the first object is there, the 47 MB images are not
    output = push.communicate(timeout=120)[0]
    assert push.returncode != 0, output
    assert "Traceback" not in output, output

    store.start()
    ok(run(project, "dvc", "push", env=store.env()))
    b = clone(origin, tmp_path / "b")
    ok(run(b, "dvc", "pull", "download", env=store.env()))
    assert digests(b, ("data/raw",)) == digests(project, ("data/raw",))
    assert "up to date" in ok(run(b, "dvc", "status", "download"))


@pytest.fixture
def small_disk(tmp_path):
    """A 30 MB tmpfs: less than data/raw (53 MB); grown with `mount -o remount,size=...`."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def grow(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=400m", str(disk)], check=True)


def test_full_disk_while_pulling(shared, small_disk):
    store, project, origin = shared
    ok(run(project, "dvc", "push", env=store.env()))
    b = clone(origin, small_disk / "b")
    failed(run(b, "dvc", "pull", "download", env=store.env()), "No space left", "ENOSPC")
    assert git(b, "status", "--porcelain") == ""  # dvc.lock untouched
    grow(small_disk)
    ok(run(b, "dvc", "pull", "download", env=store.env()))
    assert digests(b, ("data/raw",)) == digests(project, ("data/raw",))


def test_full_disk_while_a_stage_writes(shared, small_disk):
    _, project, origin = shared
    b = clone(origin, small_disk / "b")
    lock = (b / "dvc.lock").read_bytes()
    failed(run(b, "dvc", "repro", "-f", "download"), "No space left", "ENOSPC")
    assert (b / "dvc.lock").read_bytes() == lock  # nothing half-written recorded
    grow(small_disk)
    ok(run(b, "dvc", "repro", "download"))
    assert digests(b, ("data/raw",)) == digests(project, ("data/raw",))
    assert git(b, "status", "--porcelain") == ""
