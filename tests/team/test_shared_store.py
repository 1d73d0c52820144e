"""Team scale, end to end against a real S3 store on 127.0.0.1: the store's set-up in two clones, push and
pull, the CI script, the way back from a failed experiment in a fresh clone. Only DVC's own commands move
data. The run-cache, which restores every stage but summary in another clone (summary's one output is
committed to Git, not cached: it reruns, 0.1 s of arithmetic), is tests/team/test_sweep.py's subject."""

import shlex
import signal
import subprocess
from pathlib import Path

from scripts.toolkit import (
    REPO,
    VENV_BIN,
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


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def storage(project: Path, command: str, **popen: object) -> subprocess.Popen:
    """`python -m scripts.storage COMMAND` in `project`, as `make storage` runs it in a clone."""
    return subprocess.Popen([str(VENV_BIN / "python"), "-m", "scripts.storage", command], cwd=project,
                            env=venv_env({"PYTHONPATH": str(REPO)}), text=True, **popen)


def test_a_second_clone_reaches_the_store_started_from_the_first(tmp_path):
    a = copy_project(tmp_path / "a", origin=tmp_path / "origin.git")
    b = clone(tmp_path / "origin.git", tmp_path / "b")
    # B keeps no store: it says so in one line, and how to get the keys, and starts nothing.
    share = storage(b, "share", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = share.communicate(timeout=60)
    assert share.returncode == 1 and out == "", (out, err)
    assert err.splitlines() == [("error: this clone keeps no store; run `make storage` in the clone that "
                                 "keeps it and run the `dvc remote modify --local` lines it prints here")]
    assert not (b / ".storage").exists() and not (b / ".dvc/config.local").exists()

    for restart in range(2):  # the keys stay the same across a restart of the store
        server = storage(a, "serve", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = [server.stdout.readline() for _ in range(5)]  # the store answers: what to run in B
        commands = [shlex.split(line) for line in lines if line.startswith("dvc remote modify --local ")]
        assert [c[5] for c in commands] == ["endpointurl", "access_key_id", "secret_access_key"], lines
        secret = commands[2][6]
        assert dvc(a, "config", "--local", "remote.storage.secret_access_key").stdout.strip() == secret
        assert (a / ".dvc/config.local").stat().st_mode & 0o077 == 0  # no one else reads the secret
        # The secret is in no process's arguments: `ps` shows the server's command line to every user.
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
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
        assert storage(b, command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait(60) == 1
    assert not (b / ".storage").exists()


def test_outside_a_clone_the_store_command_is_one_line(tmp_path, monkeypatch, capsys):
    from scripts import storage

    monkeypatch.chdir(tmp_path)
    assert storage.main(["share"]) == 1 and not list(tmp_path.iterdir())
    assert capsys.readouterr().err == (f"error: {tmp_path} is not the top of a clone of this project (no "
                                       ".dvc/): run `make storage` there\n")


def test_ci_reruns_only_what_a_change_touches(store, reference_run, tmp_path):
    # The pull-request job: a change to an sgd param, the rest restored from the store.
    pr = clone(reference_run.origin, tmp_path / "pr")
    set_params(pr, {"sgd.max_iter": 4})
    out = output(run(pr, str(REPO / "scripts/ci_cache.sh"), "repro", env=store.env(), check=True))
    assert ran_stages(out) == ["sgd_cv", "summary"], out
    assert digests(pr, ("data/model.keras",)) == digests(reference_run.project, ("data/model.keras",))
    # Without the store's keys (no repository secrets) the push step does nothing and succeeds.
    no_keys = run(pr, str(REPO / "scripts/ci_cache.sh"), "push", env={"AWS_ACCESS_KEY_ID": ""})
    assert no_keys.returncode == 0 and "no store credentials" in no_keys.stderr


def test_a_fresh_clone_pulls_every_output_and_undoes_a_failed_experiment(store, reference_run, tmp_path):
    """A failed experiment in a fresh clone: `dvc exp apply HEAD` puts params.yaml back but has no cached
    outputs to check out, DVC says so (exit 255), and `dvc pull` completes the way back. With the cache
    full, `dvc exp apply HEAD` alone does; `dvc exp run --temp` never touches the workspace."""
    b = clone(reference_run.origin, tmp_path / "b")
    assert not (b / ".dvc/cache").exists()

    def fail(setting: str, *args: str) -> None:  # a stage refuses the value DVC has set in params.yaml
        failed = dvc(b, "exp", "run", *args, "-S", setting, check=False, env=store.env())
        assert failed.returncode != 0 and f"{setting.replace('=', ' = ')} is not allowed" in output(failed)

    fail("download.retries=0")  # download, the first stage: nothing else runs in the empty clone
    applied = dvc(b, "exp", "apply", "HEAD", check=False, env=store.env())
    assert applied.returncode == 255, output(applied)
    lines = applied.stderr.splitlines()
    assert lines[0] == "ERROR: Checkout failed for following targets:", lines
    assert "data/model.keras" in lines and "Is your cache up to date?" in lines, lines
    assert git(b, "status", "--porcelain") == ""  # params.yaml is HEAD's again
    dvc(b, "pull", env=store.env())
    assert digests(b) == digests(reference_run.project)
    out = dvc(b, "repro", env=store.env()).stdout
    assert "Running stage" not in out and "Data and pipelines are up to date." in out

    fail("split.test_size=0")  # DVC leaves the changed params behind, the failed stage's outputs removed
    assert git(b, "status", "--porcelain").split() == ["M", "params.yaml"] and not (b / "data/split").exists()
    dvc(b, "exp", "apply", "HEAD")  # the cache full now, that is the whole way back
    assert git(b, "status", "--porcelain") == "" and "up to date" in dvc(b, "status").stdout
    fail("split.test_size=0", "--temp")  # trying a value with --temp leaves the workspace as it was
    assert git(b, "status", "--porcelain") == "" and "up to date" in dvc(b, "status").stdout
