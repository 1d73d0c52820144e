"""The model registry (docs/registry.md): GTO's tags on origin, the model in the store."""

import contextlib
import hashlib
import json

import pytest
import yaml

from scripts.toolkit import REPO, Store, git, run

NAME = "fashion-mnist-classifier"
VERSION = "v0.1.0"
GUIDE = (REPO / "docs/registry.md").read_text()


@pytest.fixture(scope="module")
def release(store, reference_run, tmp_path_factory):
    """(origin, what gto printed): the reference's commit (outputs in the store) registered."""
    root = tmp_path_factory.mktemp("registry")
    origin, project = root / "origin.git", root / "project"
    git(root, "clone", "-q", "--bare", str(reference_run.origin), str(origin))
    author = ("-c", "user.name=release", "-c", "user.email=release@localhost")  # annotated tags
    git(root, "clone", "-q", *author, str(origin), str(project))
    registered = run(project, "gto", "register", NAME, "--version", VERSION, "--push",
                     check=True)
    assigned = run(project, "gto", "assign", NAME, "--version", VERSION, "--stage", "prod",
                   "--push", check=True)
    return origin, registered.stdout + assigned.stdout


def test_register_and_assign_push_gto_tags_to_origin(release, tmp_path):
    origin, printed = release
    tags = git(origin, "for-each-ref", "--format=%(refname:short)", "refs/tags").split()
    assert sorted(tags) == [f"{NAME}#prod#1", f"{NAME}@{VERSION}"]
    assert all(tag in printed for tag in tags), printed  # each named as it is made
    # Anyone with the URL reads the registry without a clone.
    shown = json.loads(run(tmp_path, "gto", "show", "--json", "-r", str(origin), check=True).stdout)
    assert shown[NAME]["version"] == VERSION and shown[NAME]["stage"] == {"prod": VERSION}


@pytest.mark.parametrize(("args", "empty_store", "reason"), [
    ([NAME, "--stage", "prod"], False, None),
    ([NAME, "--rev", VERSION, "-o", "v.keras"], False, None),
    (["no-such-model"], False, "Unable to find artifact 'no-such-model'"),
    ([NAME, "--rev", "v9.9.9"], False, f"Unable to find artifact '{NAME} @ v9.9.9'"),
    # The registered commit's outputs were never pushed to this store.
    ([NAME, "--stage", "prod"], True, "[Errno 2] No storage files available: 'data/model.keras'"),
], ids=["by-stage", "by-version", "unregistered-name", "unknown-version",
        "store-without-the-model"])
def test_artifacts_get_prints_what_the_guide_quotes(args, empty_store, reason, release, store,
                                                    reference, tmp_path):
    """The registered model (its md5 in dvc.lock), or DVC's lines as the guide quotes them."""
    # The one test that holds the guide's verbatim quotes of DVC against the installed DVC.
    user, home = tmp_path / "user", tmp_path / "home"  # no Git or DVC config in the user's home
    user.mkdir()
    home.mkdir()
    chosen = Store(tmp_path / "empty-store") if empty_store else contextlib.nullcontext(store)
    with chosen as serving:
        # DVC asks DVC Studio first when a Studio token is configured: never from a test.
        env = {**serving.env(), "HOME": str(home), "DVC_STUDIO_OFFLINE": "true"}
        result = run(user, "dvc", "artifacts", "get", str(release[0]), *args, env=env)
    if reason is None:
        name = args[-1] if "-o" in args else "model.keras"
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"Downloaded 1 file(s) to '{name}'"
        assert "`Downloaded 1 file(s) to 'model.keras'`" in GUIDE
        lock = yaml.safe_load((reference / "dvc.lock").read_text())
        (model,) = [out for out in lock["stages"]["train"]["outs"]
                    if out["path"] == "data/model.keras"]
        digest = hashlib.md5((user / name).read_bytes(), usedforsecurity=False).hexdigest()
        assert digest == model["md5"]
    else:
        assert result.returncode == 1 and result.stdout == "" and list(user.iterdir()) == []
        # DVC tries DVC Studio first and, when the Git route fails too, reports both.
        studio = f"ERROR: Failed to download artifact '{args[0]}' via Studio - No studio config"
        assert result.stderr.splitlines() == [
            studio, f"ERROR: failed to get '{args[0]}' from '{release[0]}' - Failed to download "
            f"artifact '{args[0]}' via DVC remote: {reason}"]
        assert f"`{studio.replace(args[0], 'NAME')}`" in GUIDE
        assert f"`… via DVC remote: {reason}`" in GUIDE
