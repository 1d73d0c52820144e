"""The model registry end to end (docs/registry.md): a version registered and promoted with GTO, tags
pushed to a bare Git origin, the model in the local S3 store; then, from an empty directory with only
the Git URL and the store's keys, `dvc artifacts get` and `python -m predict`."""

import contextlib
import csv
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import yaml

import predict
from scripts.toolkit import Store, git, run

NAME = "fashion-mnist-classifier"
VERSION = "v0.1.0"


def user_env(env: dict[str, str], tmp_path) -> dict[str, str]:
    """A user's environment: an empty home in `tmp_path` (no Git or DVC config), `env` the store's."""
    (tmp_path / "home").mkdir()
    # DVC asks DVC Studio first when a Studio token is configured: never from a test.
    return {**env, "HOME": str(tmp_path / "home"), "DVC_STUDIO_OFFLINE": "true"}


@pytest.fixture(scope="module")
def release(team, reference, tmp_path_factory):
    """(origin, what `gto register` and `gto assign` printed): the reference run's commit, whose outputs
    the team fixture pushed to the store, on its own bare origin, registered and assigned `prod`."""
    root = tmp_path_factory.mktemp("registry")
    project = shutil.copytree(reference, root / "project", symlinks=True)
    origin = root / "origin.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(project, "remote", "set-url", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    for key, value in (("user.name", "release"), ("user.email", "release@localhost")):
        git(project, "config", key, value)  # gto's tags are annotated: they need an author
    registered = run(project, "gto", "register", NAME, "--version", VERSION, "--push", check=True)
    assigned = run(project, "gto", "assign", NAME, "--version", VERSION, "--stage", "prod", "--push",
                   check=True)
    return origin, registered.stdout + assigned.stdout


def test_register_and_assign_push_gto_tags_to_origin(release, tmp_path):
    origin, printed = release
    assert f"Created git tag '{NAME}@{VERSION}' that registers version" in printed
    assert f"Created git tag '{NAME}#prod#1' that assigns stage to version" in printed
    tags = git(origin, "for-each-ref", "--format=%(refname:short)", "refs/tags").split()
    assert sorted(tags) == [f"{NAME}#prod#1", f"{NAME}@{VERSION}"]
    # Anyone with the URL reads the registry without a clone.
    shown = json.loads(run(tmp_path, "gto", "show", "--json", "-r", str(origin), check=True).stdout)
    assert shown[NAME]["version"] == VERSION and shown[NAME]["stage"] == {"prod": VERSION}


@pytest.mark.parametrize("select", [["--stage", "prod"], ["--rev", VERSION, "-o", "v.keras"]],
                         ids=["by-stage", "by-version"])
def test_artifacts_get_downloads_the_registered_model_that_predicts_evaluates_classes(
        select, release, team, reference, tmp_path, capsys):
    user = tmp_path / "user"  # an empty directory
    user.mkdir()
    result = run(user, "dvc", "artifacts", "get", str(release[0]), NAME, *select,
                 env=user_env(team.env, tmp_path), check=True)
    name = select[-1] if "-o" in select else "model.keras"
    assert result.stdout.strip() == f"Downloaded 1 file(s) to '{name}'"
    lock = yaml.safe_load((reference / "dvc.lock").read_text())
    (model,) = [out for out in lock["stages"]["train"]["outs"] if out["path"] == "data/model.keras"]
    assert hashlib.md5((user / name).read_bytes(), usedforsecurity=False).hexdigest() == model["md5"]

    # The downloaded model predicts evaluate's classes (plots/confusion.csv) of the first test rows.
    np.save(tmp_path / "x.npy", np.load(reference / "data/prepared/x_test.npy")[:10])
    # Keras writes its config where KERAS_HOME says on first import: not in the user's home.
    os.environ.setdefault("KERAS_HOME", str(tmp_path / "keras-home"))
    capsys.readouterr()
    predict.main(["--model", str(user / name), str(tmp_path / "x.npy")])  # as `python -m predict` runs it
    printed = [line.rpartition(": ")[2].rsplit(" ", 1)[0] for line in capsys.readouterr().out.splitlines()]
    with open(reference / "plots/confusion.csv", newline="") as file:
        assert printed == [row["predicted"] for row in csv.DictReader(file)][:10]


@pytest.mark.parametrize(("args", "empty_store", "reason"), [
    (["no-such-model"], False, "Unable to find artifact 'no-such-model'"),
    ([NAME, "--rev", "v9.9.9"], False, f"Unable to find artifact '{NAME} @ v9.9.9'"),
    # The registered commit's outputs were never pushed to this store.
    ([NAME, "--stage", "prod"], True, "[Errno 2] No storage files available: 'data/model.keras'"),
], ids=["unregistered-name", "unknown-version", "store-without-the-model"])
def test_a_failed_get_prints_dvcs_lines_writes_nothing(args, empty_store, reason, release, team, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    with Store(tmp_path / "empty-store") if empty_store else contextlib.nullcontext() as empty:
        env = empty.env() if empty_store else team.env
        result = run(user, "dvc", "artifacts", "get", str(release[0]), *args, env=user_env(env, tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert list(user.iterdir()) == []
    # DVC tries DVC Studio first and, when the Git route fails too, reports both.
    assert result.stderr.splitlines() == [
        f"ERROR: Failed to download artifact '{args[0]}' via Studio - No studio config",
        f"ERROR: failed to get '{args[0]}' from '{release[0]}' - Failed to download artifact '{args[0]}' "
        f"via DVC remote: {reason}"]
