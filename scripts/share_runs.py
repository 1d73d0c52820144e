"""Push the run-cache with every object its entries name, so another clone can restore any stage.

    .venv/bin/python scripts/share_runs.py        # after `dvc push --run-cache` (or `dvc exp push`)

Why: `dvc push --run-cache` (DVC 3.67) sends the run records (`.dvc/cache/runs/`) and the cached
outputs of the workspace's dvc.lock only. A record also names the outputs it restores that are not
in dvc.lock: the committed plots and metrics (`cache: false`, which DVC copies into the local
cache when it records the run, dvc/stage/cache.py `_uncached_outs`) and the outputs of runs with
other params. Without those objects on the remote, `dvc repro --pull` on another machine finds
the record but reruns the stage. This script uploads, to the default remote, each object a record
names that the local cache holds and the remote lacks, in DVC's own layout (`files/md5/ab/cdef…`).
Endpoint and keys come from the environment, as for DVC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def dvc_config(key: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", "config", key],
                            capture_output=True, text=True)
    return result.stdout.strip()


def run_objects(cache: Path) -> set[str]:
    """md5s of every output named by a run-cache record, and of the files inside directories."""
    found: set[str] = set()
    for record in (cache / "runs").glob("*/*/*"):
        for out in yaml.safe_load(record.read_text()).get("outs", []):
            md5 = out.get("md5")
            if not md5:
                continue
            found.add(md5)
            if md5.endswith(".dir"):
                listing = cache / "files" / "md5" / md5[:2] / md5[2:]
                if listing.is_file():
                    found.update(entry["md5"] for entry in json.loads(listing.read_text()))
    return found


def main() -> int:
    import botocore.exceptions
    import botocore.session

    remote = dvc_config("core.remote")
    url = dvc_config(f"remote.{remote}.url") if remote else ""
    if not url.startswith("s3://"):
        print(f"error: the default remote is {url or 'not set'}; an s3:// remote is required", file=sys.stderr)
        return 1
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    cache = Path(dvc_config("cache.dir") or ".dvc/cache")
    endpoint = dvc_config(f"remote.{remote}.endpointurl") or None  # else AWS_ENDPOINT_URL_S3
    client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint)
    sent = 0
    try:
        for md5 in sorted(run_objects(cache)):
            local = cache / "files" / "md5" / md5[:2] / md5[2:]
            key = "/".join(p for p in (prefix, "files", "md5", md5[:2], md5[2:]) if p)
            if not local.is_file():
                continue  # a record of a run whose outputs this clone never had
            try:
                client.head_object(Bucket=bucket, Key=key)
                continue
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            with local.open("rb") as body:
                client.put_object(Bucket=bucket, Key=key, Body=body)
            sent += 1
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(f"error: cannot push run-cache objects to {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{sent} run-cache objects pushed to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
