"""A grid of DVC experiments on a Dask cluster, pulled into one `dvc exp show` (docs/team.md)."""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.data import SUMMARY_METRICS
from stages.params import PARAMS_FILE, flatten
from stages.summary import HEADLINE

if TYPE_CHECKING:
    from distributed import Client, Future
    from hydra.core.override_parser.types import Override

ORIGIN_VARIABLE = "SWEEP_GIT_ORIGIN"  # the Git origin's URL, in each worker's environment
CLONES_VARIABLE = "SWEEP_CLONES"  # where a worker keeps its clones (default ~/.cache/dvc-sweep)
# A stage `dvc exp run` did not run but took from a cache: unchanged in dvc.lock (from the clone's
# cache, or pulled from the store), or found in the run-cache.
RESTORED = re.compile(r"Stage '(\w+)' (?:didn't change, skipping|is cached - skipping run)"
                      r"|Pulling data for stage: '(\w+)'")


class SweepError(Exception):
    """A failure the user can act on, said in one line."""


@dataclass(frozen=True)
class Shown:
    """One row of `dvc exp show --json`: a commit (name None) or one of its experiments."""

    baseline: str  # the commit's rev ("workspace" for the workspace's row)
    name: str | None
    rev: str
    state: str | None  # the executor's: "success", "failed", "running", "queued"; None for a commit
    params: dict[str, Any]  # params.yaml's values by dotted key
    metrics: dict[str, Any]  # metrics/summary.json's values


def shown_rows(listing: list[dict]) -> list[Shown]:
    """The rows of `dvc exp show --json`'s `listing`: each commit, then its experiments."""
    found = []
    for commit in listing:
        rows = [(None, commit, {})] + [(e["name"], e["revs"][0], e.get("executor") or {})
                                       for e in commit.get("experiments") or []]
        for name, row, executor in rows:
            data = row.get("data") or {}
            params = (data.get("params") or {}).get(PARAMS_FILE, {}).get("data", {})
            metrics = (data.get("metrics") or {}).get(SUMMARY_METRICS.as_posix(), {}).get(
                "data", {})
            found.append(Shown(commit["rev"], name, row["rev"],
                               executor.get("state") if name else None, flatten(params), metrics))
    return found


def redact(text: str) -> str:
    """`text` with a URL's user:password@ hidden (a Git origin may carry a token)."""
    return re.sub(r"://[^/@\s]+@", "://***@", text)


def overrides(settings: list[str]) -> list[Override]:
    """The `-S` settings parsed by Hydra's override parser, as `dvc exp run -S` parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for setting in settings:
        try:
            parsed.extend(parser.parse_overrides([setting]))
        except OverrideParseException as error:  # a function's own error is the cause's first line
            why = str(error.__cause__ or error).splitlines()[0]
            raise SweepError(f"-S {setting}: {why}") from None
    return parsed


def grid(settings: list[str]) -> list[dict[str, str]]:
    """The experiments of `-S` settings, each {dotted key: value as DVC's -S takes it}."""
    axes = {o.get_key_element(): list(o.sweep_string_iterator()) if o.is_sweep_override()
            else [o.get_value_element_as_str()] for o in overrides(settings)}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def experiment_names(prefix: str, grid_: list[dict[str, str]]) -> list[str]:
    """`prefix-RUNID-leaf-value_...`: a random run id per sweep, then what each experiment set."""
    run_id = secrets.token_hex(3)
    slugs = ["_".join(f"{key.rsplit('.', 1)[-1]}-"
                      f"{re.sub(r'[^A-Za-z0-9.]+', '.', value).strip('.') or 'empty'}"
                      for key, value in values.items())
             for values in grid_]
    if len(set(slugs)) < len(slugs):  # values that differ only in characters a ref cannot hold
        slugs = [f"{slug}-{i}" for i, slug in enumerate(slugs, 1)]
    return [f"{prefix}-{run_id}-{slug}" for slug in slugs]


def failure_line(output: str) -> str:
    """Why a command failed: a stage's `error:` line first, then DVC's or Git's."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for start in ("error: ", "ERROR: ", "fatal: "):
        found = [line for line in lines if line.startswith(start)]
        if found:
            return redact(found[0])
    return redact(lines[-1]) if lines else "no output"


# Its own runner, not scripts.toolkit's: the worker task (run_experiment) travels to the Dask
# workers by value, with what it calls, and a worker has the venv but not the developer toolkit.
def command(cwd: Path, *args: str, keep_fd: int | None = None, env: dict[str, str] | None = None,
            timeout: float | None = None) -> str:
    """Run git or the venv's dvc in `cwd`; raise SweepError with its failure line."""
    venv = str(Path(sys.executable).parent)  # dvc runs each stage's `python` from PATH: the venv's
    full_env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
                **(env or {})}
    full_env.pop("PYTHONPATH", None)
    program = str(Path(venv) / args[0]) if (Path(venv) / args[0]).exists() else args[0]
    try:
        done = subprocess.run(  # noqa: S603 - git or dvc by design, with the arguments built here
            [program, *args[1:]], check=False, cwd=cwd, env=full_env, capture_output=True,
            text=True, stdin=subprocess.DEVNULL, timeout=timeout,
            pass_fds=(keep_fd,) if keep_fd else ())
    except subprocess.TimeoutExpired:
        raise SweepError(f"`{' '.join(args[:3])}` did not answer in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise SweepError(failure_line(done.stdout + "\n" + done.stderr))
    return done.stdout


@contextmanager
def worker_clone(origin: str) -> Iterator[tuple[Path, int]]:
    """(a clone of `origin` no other task is using, the fd of the lock that says so)."""
    # Kept between tasks with its DVC cache; the lock is passed on to dvc, so that a clone stays
    # taken while an orphaned dvc of a killed worker still runs in it.
    base = Path(os.environ.get(CLONES_VARIABLE) or Path.home() / ".cache" / "dvc-sweep")
    root = base / hashlib.sha256(origin.encode()).hexdigest()[:12]
    root.mkdir(parents=True, exist_ok=True)
    for slot in itertools.count():
        with open(root / f"{slot}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            clone = root / str(slot)
            if not (clone / ".git").is_dir():  # cloned aside, then renamed: never half a clone
                partial = root / f"{slot}.partial"
                shutil.rmtree(partial, ignore_errors=True)
                command(root, "git", "clone", "--quiet", "--no-checkout", origin, str(partial),
                        timeout=600)
                partial.rename(clone)
            yield clone, lock.fileno()
            return


def run_experiment(commit: str, name: str, values: dict[str, str], topic: str) -> dict:
    """On a worker: experiment `name` of `commit` with `values`, run and pushed; what it did."""
    from distributed import get_worker

    # The client counts it as running; both events travel on the worker's one stream, in order.
    get_worker().log_event(topic, ("started", name))
    started = time.monotonic()
    result = {"name": name, "params": values, "metrics": {}, "ran": [], "restored": [],
              "error": None}
    try:
        origin = os.environ.get(ORIGIN_VARIABLE)
        if not origin:
            raise SweepError(f"the worker has no {ORIGIN_VARIABLE}: set it to the Git origin's "
                             "URL where the worker starts")
        with worker_clone(origin) as (clone, lock):
            command(clone, "git", "fetch", "--quiet", "origin", timeout=300)
            try:
                command(clone, "git", "checkout", "--quiet", "--force", "--detach", commit)
            except SweepError:
                raise SweepError(f"commit {commit[:7]} is not in the workers' Git origin") from None
            # A clean checkout, keeping the DVC cache (outputs and run records) of earlier tasks
            # and the clone's own DVC config.
            command(clone, "git", "clean", "-ffdxq", "-e", "/.dvc/cache",
                    "-e", "/.dvc/config.local")
            if not (clone / ".dvc/config.local").is_file():  # a new clone
                # Outputs linked from the cache, not copied: safe, as the stages replace their
                # outputs (a new file renamed into place) and never edit one in place.
                command(clone, "dvc", "config", "--local", "cache.type", "hardlink,symlink,copy")
            settings = [arg for key, value in values.items() for arg in ("-S", f"{key}={value}")]
            output = command(clone, "dvc", "exp", "run", "--pull", "-n", name, *settings,
                             keep_fd=lock)
            result["ran"] = re.findall(r"Running stage '(\w+)'", output)
            result["restored"] = list(dict.fromkeys(  # a stage DVC names twice, counted once
                stage for match in RESTORED.findall(output)
                for stage in match if stage and stage not in result["ran"]))
            result["metrics"] = json.loads((clone / SUMMARY_METRICS).read_text())
            # Data and run records first, the ref last: a ref on origin always has its data in
            # the store (`dvc exp push --run-cache` alone pushes the ref first, then uploads).
            command(clone, "dvc", "push", "--run-cache", keep_fd=lock)
            command(clone, "dvc", "exp", "push", "--no-cache", "origin", name, keep_fd=lock)
    except SweepError as error:
        result["error"] = str(error)
    result["seconds"] = round(time.monotonic() - started, 1)
    get_worker().log_event(topic, ("finished", name))
    return result


# A remote's settings in DVC's config, and the variables through which a worker's DVC reads them.
STORE_VARIABLES = {"endpointurl": "AWS_ENDPOINT_URL_S3", "access_key_id": "AWS_ACCESS_KEY_ID",
                   "secret_access_key": "AWS_SECRET_ACCESS_KEY"}


def store_settings(project: Path, remote: str) -> dict[str, str]:
    """This clone's settings of `remote` (.dvc/config.local) as the variables local workers get."""
    found = {}
    for line in command(project, "dvc", "config", "--list").splitlines():
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if section == f"remote.{remote}" and option in STORE_VARIABLES:
            found[STORE_VARIABLES[option]] = value
    return found


def preflight(project: Path, local_workers: bool) -> tuple[str, str]:
    """(commit, origin URL) after checking, in a few seconds, what every task will need."""
    try:
        commit = command(project, "git", "rev-parse", "HEAD").strip()
        origin = command(project, "git", "remote", "get-url", "origin").strip()
    except SweepError as error:
        raise SweepError(f"run the sweep in your clone of the project, with a remote `origin` "
                         f"({error})") from None
    try:
        command(project, "git", "fetch", "--quiet", "origin", timeout=60)
    except SweepError as error:
        raise SweepError(f"the Git origin is unreachable (git fetch origin): {error}") from None
    if not command(project, "git", "branch", "--remotes", "--contains", commit).strip():
        raise SweepError(f"commit {commit[:7]} is not on origin: `git push origin HEAD`, "
                         "then sweep again")
    if local_workers:  # they use this clone's store settings: one try, so a dead store fails fast
        remote = command(project, "dvc", "remote", "default").strip()
        os.environ.update(store_settings(project, remote))
        try:
            command(project, "dvc", "ls-url", f"remote://{remote}", env={"AWS_MAX_ATTEMPTS": "1"},
                    timeout=60)
        except SweepError as error:
            if "does not exist" not in str(error):  # an empty store answers so
                raise SweepError(f"the DVC remote '{remote}' is unreachable or refuses the keys "
                                 f"(dvc ls-url remote://{remote}): {error}") from None
    return commit, origin


def connect(args: argparse.Namespace, origin: str) -> Client:
    """A Dask client of the scheduler named, or of a new local cluster on 127.0.0.1 only."""
    import logging

    from distributed import Client, LocalCluster
    from distributed.security import Security

    logging.getLogger("distributed").setLevel(logging.ERROR)  # our own lines say what happens
    if not args.scheduler:
        os.environ[ORIGIN_VARIABLE] = origin  # the workers inherit this process's environment
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0")
        return Client(cluster)
    tls = {"tls_ca_file": args.tls_ca_file, "tls_client_cert": args.tls_cert,
           "tls_client_key": args.tls_key}
    security = Security(**tls, require_encryption=True) if any(tls.values()) else None
    try:
        client = Client(args.scheduler, security=security, timeout=args.timeout)
        client.wait_for_workers(1, timeout=args.timeout)
    except (OSError, TimeoutError) as error:
        raise SweepError(f"cannot use the Dask scheduler at {args.scheduler}: "
                         f"{str(error).splitlines()[0]}") from None
    return client


def disconnect(client: Client, args: argparse.Namespace) -> None:
    """Close the client, and the local cluster if this process started one."""
    client.close()
    if not args.scheduler:
        client.cluster.close()


def lost_task(future: Future, params: dict) -> dict:
    """The result of a task whose workers kept dying (Dask's KilledWorker)."""
    error = future.exception()
    why = str(error).splitlines()[0] if str(error) else ""
    return {"name": future.key, "params": params, "metrics": {}, "ran": [], "restored": [],
            "error": f"{type(error).__name__}: {why}", "seconds": 0.0}


def outcome(result: dict) -> str:
    """How an experiment ended, as a progress line says it."""
    if result["error"]:
        return f"{result['name']} failed: {result['error']}"
    return (f"{result['name']} done in {result['seconds']:.0f} s (ran "
            f"{', '.join(result['ran']) or 'no stage'}; {len(result['restored'])} restored)")


def table(results: list[dict], metrics: tuple[str, ...] = HEADLINE) -> str:
    """One row an experiment: `metrics` first, then the params it set."""
    keys = list(results[0]["params"])
    header = ["experiment", *metrics, *keys]
    rows = [[r["name"], *(f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "failed"
                          for k in metrics), *(r["params"][k] for k in keys)] for r in results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows])


def pull(project: Path, names: list[str]) -> None:
    """The experiments' Git refs from origin into this clone (`dvc exp show` lists them)."""
    if names:  # another dvc command of the user's may hold this clone's DVC lock: wait for it
        command(project, "dvc", "--wait-for-lock", "exp", "pull", "--no-cache", "origin", *names,
                timeout=600)


def sweep(args: argparse.Namespace) -> int:
    """The sweep of `args`: every experiment run, the finished ones pulled; the exit code."""
    from distributed import as_completed

    experiments = grid(args.set_param)
    names = experiment_names(args.name_prefix, experiments)
    project = Path.cwd()
    commit, origin = preflight(project, local_workers=not args.scheduler)
    client = connect(args, origin)
    finished: dict[str, dict] = {}
    running: set[str] = set()
    printing = threading.Lock()

    def progress(line: str) -> None:
        failed = sum(1 for r in finished.values() if r["error"])
        with printing:
            print(f"[{len(finished) - failed} done, {len(running)} running, {failed} failed of "
                  f"{len(names)}] {line}", flush=True)

    def on_event(event: tuple) -> None:
        what, name = event[1]
        if what == "started":
            running.add(name)
            progress(f"{name} started")
        else:
            running.discard(name)

    try:
        print(f"sweep of commit {commit[:7]}: {len(names)} experiments; dashboard "
              f"{client.dashboard_link}", flush=True)
        topic = f"sweep-{names[0]}"
        client.subscribe_topic(topic, on_event)
        futures = [client.submit(run_experiment, commit, name, values, topic, key=name, pure=False)
                   for name, values in zip(names, experiments, strict=True)]
        for future in as_completed(futures):
            result = (future.result() if future.status == "finished"
                      else lost_task(future, experiments[names.index(future.key)]))
            running.discard(result["name"])
            finished[result["name"]] = result
            progress(outcome(result))
    finally:
        disconnect(client, args)
    results = [finished[name] for name in names]
    pull(project, [r["name"] for r in results if not r["error"]])
    print(table(results))
    failed = [r for r in results if r["error"]]
    for result in failed:
        print(f"{result['name']}: {result['error']}")
    if failed:
        print(f"error: {len(failed)} of {len(results)} experiments failed: "
              f"{', '.join(r['name'] for r in failed)}", file=sys.stderr)
        return 1
    print(f"all {len(results)} pulled: `dvc exp show` lists them")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """Argparse whose mistakes exit 1 with one `error:` line, as every other error does."""

    def error(self, message: str) -> None:
        self.exit(1, f"error: {message} (see {self.prog} --help)\n")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """`--workers N | --scheduler ADDRESS`, the TLS files and `--timeout`."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler",
                       help="an existing cluster's scheduler, tcp://HOST:8786 or tls://HOST:8786")
    where.add_argument("--workers", type=int,
                       help="a local cluster of N worker processes on 127.0.0.1")
    parser.add_argument("--tls-ca-file",
                        help="with tls://: the CA that signed the cluster's certificates")
    parser.add_argument("--tls-cert", help="with tls://: this client's certificate (PEM)")
    parser.add_argument("--tls-key",
                        help="with tls://: its private key (PEM), if not in --tls-cert")
    parser.add_argument("--timeout", type=float, default=10,
                        help="seconds to reach the scheduler and a worker")


def check_cluster_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with parser.error on a mistake in add_cluster_options' options."""
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers {args.workers}: give 1 or more")
    if (args.scheduler or "").startswith("tls://") and not (args.tls_ca_file and args.tls_cert):
        parser.error("a tls:// scheduler needs --tls-ca-file and this client's --tls-cert "
                     "(and --tls-key)")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m sweep", description=__doc__)
    parser.add_argument("-S", "--set-param", action="append", required=True, metavar="KEY=V1,V2",
                        help="values of a param, as `dvc exp run -S`; several -S: their product")
    parser.add_argument("--name-prefix", default="sweep",
                        help="experiment names start with it (default sweep)")
    add_cluster_options(parser)
    args = parser.parse_args(argv)
    check_cluster_options(parser, args)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name_prefix):
        parser.error(f"--name-prefix {args.name_prefix!r}: letters, digits, '.', '_' and '-' only")
    try:
        return sweep(args)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; the experiments already pushed stay on origin", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
