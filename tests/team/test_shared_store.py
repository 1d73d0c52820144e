"""The team's S3 store on 127.0.0.1, end to end: set-up, push and pull, CI, integrity, recovery."""

# Only DVC's own commands move data. The run-cache, which restores every stage but summary in
# another clone (summary's one output is in Git: it reruns), is tests/team/test_sweep.py's subject.

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from scripts.toolkit import (
    BUCKET,
    REPO,
    VENV_BIN,
    Store,
    clone,
    copy_project,
    digests,
    dvc,
    git,
    ran_stages,
    run,
    set_params,
    venv_env,
)

# DVC's line when an object pulled does not hash to its name (the remote's `verify`), quoted in
# docs/reliability.md: the corruption test below is the one that holds it against the installed DVC.
REFUSAL = "ERROR: failed to pull data from the cloud - Checkout failed for following targets:"


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def object_path(md5: str) -> Path:
    """Where a DVC cache, or the store under its remote's URL, keeps the object of `md5`."""
    return Path("files/md5", md5[:2], md5[2:])


def storage(project: Path, command: str, **popen: object) -> subprocess.Popen:
    """`python -m scripts.storage COMMAND` in `project`, as `make storage` runs it in a clone."""
    return subprocess.Popen([str(VENV_BIN / "python"), "-m", "scripts.storage", command],
                            cwd=project, env=venv_env({"PYTHONPATH": str(REPO)}), text=True,
                            **popen)


def test_a_second_clone_reaches_the_store_started_from_the_first(tmp_path):
    a = copy_project(tmp_path / "a", origin=tmp_path / "origin.git")
    b = clone(tmp_path / "origin.git", tmp_path / "b")
    # B keeps no store: it says so in one line, and how to get the keys, and starts nothing.
    share = storage(b, "share", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = share.communicate(timeout=60)
    assert share.returncode == 1 and out == "", (out, err)
    assert err.splitlines() == [("error: this clone keeps no store; run `make storage` in the "
                                 "clone that keeps it and run the `dvc remote modify --local` "
                                 "lines it prints here")]
    assert not (b / ".storage").exists() and not (b / ".dvc/config.local").exists()

    for restart in range(2):  # the keys stay the same across a restart of the store
        server = storage(a, "serve", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = [server.stdout.readline() for _ in range(5)]  # the store answers: what to run in B
        commands = [shlex.split(line) for line in lines
                    if line.startswith("dvc remote modify --local ")]
        options = ["endpointurl", "access_key_id", "secret_access_key"]
        assert [c[5] for c in commands] == options, lines
        secret = commands[2][6]
        local = dvc(a, "config", "--local", "remote.storage.secret_access_key").stdout
        assert local.strip() == secret
        assert (a / ".dvc/config.local").stat().st_mode & 0o077 == 0  # no one else reads the secret
        # The secret is in no process's arguments: `ps` shows the server's command line to all.
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True,
                                   check=True).stdout
        assert "serve s3" in processes and secret not in processes
        if restart == 0:
            (a / "note.txt").write_text("shared through the store\n")
            dvc(a, "add", "note.txt")
            git(a, "add", "-A")
            git(a, "commit", "-qm", "note")
            git(a, "push", "-q", "origin", "main")
            dvc(a, "push", "note.txt")
            first = commands
            for command in commands:  # the teammate pastes the lines into their clone
                dvc(b, *command[1:])
        assert commands == first
        git(b, "pull", "-q", "origin", "main")
        (b / "note.txt").unlink(missing_ok=True)
        dvc(b, "pull", "--force", "note.txt")
        assert (b / "note.txt").read_text() == "shared through the store\n"
        server.send_signal(signal.SIGINT)  # Ctrl-C
        assert server.wait(30) == 0, server.stderr.read()
    # Configured, B still keeps no store: it neither describes nor starts one.
    for command in ("share", "serve"):
        quiet = storage(b, command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert quiet.wait(60) == 1
    assert not (b / ".storage").exists()


def test_outside_a_clone_the_store_command_is_one_line(tmp_path, monkeypatch, capsys):
    from scripts import storage

    monkeypatch.chdir(tmp_path)
    assert storage.main(["share"]) == 1 and not list(tmp_path.iterdir())
    assert capsys.readouterr().err == (f"error: {tmp_path} is not the top of a clone of this "
                                       "project (no .dvc/): run `make storage` there\n")


def test_ci_reruns_only_what_a_change_touches(store, reference_run, tmp_path):
    # The pull-request job: a change to an sgd param, the rest restored from the store.
    pr = clone(reference_run.origin, tmp_path / "pr")
    set_params(pr, {"sgd.max_iter": 4})
    out = output(run(pr, str(REPO / "scripts/ci_cache.sh"), "repro", env=store.env(), check=True))
    assert ran_stages(out) == ["sgd_cv", "summary"], out
    model = ("data/model.keras",)
    assert digests(pr, model) == digests(reference_run.project, model)
    # Without the store's keys (no repository secrets) the push step does nothing and succeeds.
    no_keys = run(pr, str(REPO / "scripts/ci_cache.sh"), "push", env={"AWS_ACCESS_KEY_ID": ""})
    assert no_keys.returncode == 0 and "no store credentials" in no_keys.stderr


def test_a_corrupted_object_in_the_store_is_refused_and_never_cached(store, reference_run,
                                                                     tmp_path):
    """One byte flipped in the model's object: a fresh clone's `dvc pull` refuses it, exit 1."""
    model = (reference_run.project / "data/model.keras").read_bytes()
    md5 = hashlib.md5(model, usedforsecurity=False).hexdigest()  # DVC's name of the object
    # A second store over a hard-linked copy of the shared one, the model's object a new file in it.
    root = shutil.copytree(store.root, tmp_path / "store", copy_function=os.link)
    corrupted = root / BUCKET / "cache" / object_path(md5)
    corrupted.unlink()
    corrupted.write_bytes(model[:1000] + bytes([model[1000] ^ 0xFF]) + model[1001:])
    b = clone(reference_run.origin, tmp_path / "b")
    with Store(root) as bad_store:
        pulled = dvc(b, "pull", env=bad_store.env(), check=False)
    lines = pulled.stderr.splitlines()
    assert pulled.returncode == 1 and REFUSAL in lines and "data/model.keras" in lines, lines
    assert f"{REFUSAL}\ndata/model.keras\n" in (REPO / "docs/reliability.md").read_text()
    # Neither the workspace nor the cache holds the bad bytes; every other output arrived whole.
    assert not (b / "data/model.keras").exists()
    assert not (b / ".dvc/cache" / object_path(md5)).exists()
    expected = digests(reference_run.project)
    del expected["data/model.keras"]
    assert digests(b) == expected


def test_a_fresh_clone_pulls_every_output_and_undoes_a_failed_experiment(store, reference_run,
                                                                         tmp_path):
    """A failed experiment in a fresh clone, undone by `dvc exp apply HEAD` and `dvc pull`."""
    # `dvc exp apply HEAD` puts params.yaml back but has no cached outputs to check out (exit 255),
    # and `dvc pull` completes the way back. With the cache full, `dvc exp apply HEAD` alone does;
    # `dvc exp run --temp` never touches the workspace.
    b = clone(reference_run.origin, tmp_path / "b")
    assert not (b / ".dvc/cache").exists()

    def fail(setting: str, *args: str) -> None:  # a stage refuses the value set in params.yaml
        failed = dvc(b, "exp", "run", *args, "-S", setting, check=False, env=store.env())
        refused = f"{setting.replace('=', ' = ')} is not allowed"
        assert failed.returncode != 0 and refused in output(failed)

    fail("download.retries=0")  # download, the first stage: nothing else runs in the empty clone
    applied = dvc(b, "exp", "apply", "HEAD", check=False, env=store.env())
    assert applied.returncode == 255, output(applied)
    assert "data/model.keras" in applied.stderr.splitlines(), applied.stderr  # DVC names it
    assert git(b, "status", "--porcelain") == ""  # params.yaml is HEAD's again
    dvc(b, "pull", env=store.env())
    assert digests(b) == digests(reference_run.project)
    out = dvc(b, "repro", env=store.env()).stdout
    assert ran_stages(out) == [] and "up to date" in out

    fail("split.test_size=0")  # DVC leaves the changed params, the failed stage's outputs removed
    assert git(b, "status", "--porcelain").split() == ["M", "params.yaml"]
    assert not (b / "data/split").exists()
    dvc(b, "exp", "apply", "HEAD")  # the cache full now, that is the whole way back
    assert git(b, "status", "--porcelain") == "" and "up to date" in dvc(b, "status").stdout
    fail("split.test_size=0", "--temp")  # trying a value with --temp leaves the workspace as it was
    assert git(b, "status", "--porcelain") == "" and "up to date" in dvc(b, "status").stdout
