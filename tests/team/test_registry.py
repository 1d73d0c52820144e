"""The model registry end to end (docs/registry.md): a version registered and promoted with GTO, its
tags pushed to a bare Git origin, its model in the local S3 store; then, from an empty directory
with only the Git URL and the store's keys, `dvc artifacts get` and `python -m predict`."""

import csv
import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image

import predict
from scripts.toolkit import DATASET, Store, git, run

NAME = "fashion-mnist-classifier"
VERSION = "v0.1.0"


@dataclass
class Release:
    origin: Path  # the bare Git repository: all a model's user has, with the store's keys
    env: dict[str, str]  # the store's endpoint and keys, as DVC reads them from the environment
    model_md5: str  # data/model.keras's hash in the registered commit's dvc.lock
    predicted: list[str]  # evaluate's predicted class of each test row (plots/confusion.csv)
    registered: str  # what `gto register` and `gto assign` printed
    assigned: str


def user_env(env: dict[str, str], home: Path) -> dict[str, str]:
    """A user's environment: an empty home (no Git or DVC config), `env` the store's variables."""
    home.mkdir(exist_ok=True)
    # DVC asks DVC Studio first when a Studio token is configured: never from a test.
    return {**env, "HOME": str(home), "DVC_STUDIO_OFFLINE": "true"}


@pytest.fixture(scope="module")
def release(team, reference, tmp_path_factory) -> Release:
    """The reference run's commit, whose outputs the team fixture pushed to the store, released:
    its own bare origin, then `gto register` and `gto assign --stage prod`, tags pushed."""
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
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    (model,) = [out for out in lock["stages"]["train"]["outs"] if out["path"] == "data/model.keras"]
    with open(project / "plots/confusion.csv", newline="") as file:
        predicted = [row["predicted"] for row in csv.DictReader(file)]
    return Release(origin, team.env, model["md5"], predicted, registered.stdout, assigned.stdout)


@pytest.fixture(scope="module")
def downloaded(release, tmp_path_factory) -> tuple[Path, str]:
    """`dvc artifacts get <origin> fashion-mnist-classifier --stage prod` in an empty directory."""
    user = tmp_path_factory.mktemp("user")
    result = run(user, "dvc", "artifacts", "get", str(release.origin), NAME, "--stage", "prod",
                 env=user_env(release.env, user / "home"), check=True)
    return user / "model.keras", result.stdout


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()  # DVC's object id


def test_register_and_assign_push_gto_tags_to_origin(release, tmp_path):
    assert f"Created git tag '{NAME}@{VERSION}' that registers version" in release.registered
    assert f"Created git tag '{NAME}#prod#1' that assigns stage to version" in release.assigned
    tags = git(release.origin, "for-each-ref", "--format=%(refname:short)", "refs/tags").split()
    assert sorted(tags) == [f"{NAME}#prod#1", f"{NAME}@{VERSION}"]
    # Anyone with the URL reads the registry without a clone.
    shown = json.loads(run(tmp_path, "gto", "show", "--json", "-r", str(release.origin), check=True).stdout)
    assert shown[NAME]["version"] == VERSION and shown[NAME]["stage"] == {"prod": VERSION}


def test_dvc_artifacts_get_by_stage_downloads_the_registered_model(release, downloaded):
    model, printed = downloaded
    assert printed.strip() == "Downloaded 1 file(s) to 'model.keras'"
    assert md5(model) == release.model_md5


def test_dvc_artifacts_get_by_version(release, tmp_path):
    run(tmp_path, "dvc", "artifacts", "get", str(release.origin), NAME, "--rev", VERSION, "-o", "v.keras",
        env=user_env(release.env, tmp_path / "home"), check=True)
    assert md5(tmp_path / "v.keras") == release.model_md5


def test_predict_with_the_downloaded_model_prints_evaluates_classes(release, downloaded, tmp_path, capsys):
    images = predict.parse_idx(gzip.decompress((DATASET / "t10k-images-idx3-ubyte.gz").read_bytes()),
                               predict.IMAGES_MAGIC)
    pngs = [tmp_path / f"test-{i}.png" for i in range(10)]
    for path, image in zip(pngs, images, strict=False):
        Image.fromarray(image).save(path)
    # Keras writes its config where KERAS_HOME says on first import: not in the user's home.
    os.environ.setdefault("KERAS_HOME", str(tmp_path / "keras-home"))
    capsys.readouterr()
    predict.main(["--model", str(downloaded[0]), *map(str, pngs)])  # as `python -m predict` runs it
    lines = capsys.readouterr().out.splitlines()
    assert [line.rpartition(": ")[0] for line in lines] == list(map(str, pngs))
    assert [line.rpartition(": ")[2].rsplit(" ", 1)[0] for line in lines] == release.predicted[:10]


def dvc_get_errors(release: Release, env: dict[str, str], cwd: Path, *args: str) -> list[str]:
    """The stderr lines of a failing `dvc artifacts get ARGS`, after checking it wrote nothing."""
    result = run(cwd, "dvc", "artifacts", "get", str(release.origin), *args, env=user_env(env, cwd / "home"))
    assert result.returncode == 1 and result.stdout == ""
    assert [p.name for p in cwd.iterdir()] == ["home"]
    return result.stderr.splitlines()


def studio(name: str) -> str:
    # DVC tries DVC Studio first and, when the Git route fails too, reports both.
    return f"ERROR: Failed to download artifact '{name}' via Studio - No studio config"


def test_an_unregistered_name_or_unknown_version(release, tmp_path):
    (tmp_path / "a").mkdir()
    assert dvc_get_errors(release, release.env, tmp_path / "a", "no-such-model") == [
        studio("no-such-model"),
        (f"ERROR: failed to get 'no-such-model' from '{release.origin}' - Failed to download artifact "
         "'no-such-model' via DVC remote: Unable to find artifact 'no-such-model'")]
    (tmp_path / "b").mkdir()
    assert dvc_get_errors(release, release.env, tmp_path / "b", NAME, "--rev", "v9.9.9") == [
        studio(NAME),
        (f"ERROR: failed to get '{NAME}' from '{release.origin}' - Failed to download artifact "
         f"'{NAME}' via DVC remote: Unable to find artifact '{NAME} @ v9.9.9'")]


def test_a_store_without_the_model(release, tmp_path):
    # The registered commit's outputs were never pushed to this store (an empty one).
    (tmp_path / "user").mkdir()
    with Store(tmp_path / "empty-store") as empty:
        assert dvc_get_errors(release, empty.env(), tmp_path / "user", NAME, "--stage", "prod") == [
            studio(NAME),
            (f"ERROR: failed to get '{NAME}' from '{release.origin}' - Failed to download artifact "
             f"'{NAME}' via DVC remote: [Errno 2] No storage files available: 'data/model.keras'")]
