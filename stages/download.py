"""Stage 1: obtain the four Fashion-MNIST files from the first source where all of them verify.

data/raw/ holds the verified, decompressed IDX payloads, so its hash in dvc.lock is the same
whichever source served them (mirrors recompress, so the .gz bytes differ).
"""

import gzip
import hashlib
import shutil
import sys
import zlib
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm

from stages import params
from stages.cli import UserError, run
from stages.dataset import FILES, Payload
from stages.artifacts import RAW_DIR
from stages.files import atomic_path

PARAMS = ("download",)
CHUNK = 1 << 20


class SourceFailed(Exception):
    """This source cannot serve a verified file; the next source is tried."""


class Transient(Exception):
    """A network failure worth another attempt: connection, timeout, server error, cut-off body."""


def download(sources: list[str], out_dir: Path, retries: int = 3, timeout: float = 30) -> str:
    """Fill `out_dir` (created atomically) from the first source whose files all verify; return it."""
    failures = []
    for source in sources:
        try:
            with atomic_path(out_dir, directory=True) as tmp:
                for name, payload in FILES.items():
                    fetch_verified(source, name, payload, tmp, retries, timeout)
            return source
        except SourceFailed as error:
            print(f"source {source}: {error}; trying the next one", file=sys.stderr)
            failures.append(f"{source}: {error}")
    raise UserError(
        "no source could provide Fashion-MNIST. Tried: "
        + "; ".join(failures)
        + ". Fix: `apt-get install dataset-fashion-mnist` (puts the files in"
        " /usr/share/datasets/fashion-mnist), or list a reachable mirror under download.sources"
        " in params.yaml"
    )


def fetch_verified(
    source: str, name: str, payload: Payload, out_dir: Path, retries: int, timeout: float
) -> None:
    """Write `out_dir/name`, the decompressed payload of `name`.gz from `source`, if it verifies."""
    gz_path = out_dir / f"{name}.gz"
    if source.startswith(("http://", "https://")):
        url = source.rstrip("/") + f"/{name}.gz"
        _download_with_retries(url, gz_path, retries, timeout)
    else:
        local = Path(source) / f"{name}.gz"
        if not local.is_file():
            raise SourceFailed(f"{local} does not exist")
        shutil.copyfile(local, gz_path)
    try:
        decompress_and_verify(gz_path, out_dir / name, payload)
    finally:
        gz_path.unlink(missing_ok=True)


def decompress_and_verify(gz_path: Path, out_path: Path, payload: Payload) -> None:
    digest = hashlib.sha256()
    size = 0
    try:
        with gzip.open(gz_path, "rb") as src, open(out_path, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise SourceFailed(f"{gz_path.name} is not a valid gzip file ({error})") from None
    if size != payload.size or digest.hexdigest() != payload.sha256:
        raise SourceFailed(
            f"{gz_path.name} decompresses to {size} bytes with sha256 {digest.hexdigest()[:12]}…, "
            f"expected {payload.size} bytes with sha256 {payload.sha256[:12]}…"
        )


def _download_with_retries(url: str, path: Path, retries: int, timeout: float) -> None:
    retrying = Retrying(
        stop=stop_after_attempt(retries),
        wait=wait_exponential(multiplier=0.5, max=8),
        retry=retry_if_exception_type(Transient),
        reraise=True,
    )
    try:
        retrying(_download_once, url, path, timeout)
    except Transient as error:
        raise SourceFailed(f"{url}: {error} (after {retries} attempts)") from None


def _download_once(url: str, path: Path, timeout: float) -> None:
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise SourceFailed(f"{url}: HTTP {response.status_code}")
            total = int(response.headers.get("Content-Length", 0)) or None
            with (
                open(path, "wb") as file,
                tqdm(total=total, unit="B", unit_scale=True, desc=path.name, file=sys.stderr) as bar,
            ):
                for chunk in response.iter_content(CHUNK):
                    file.write(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as error:
        # Connection refused or reset, timeout, a body shorter than its Content-Length.
        raise Transient(type(error).__name__) from None


def main() -> None:
    p = params.load(*PARAMS)
    source = download(p.download.sources, RAW_DIR, p.download.retries, p.download.timeout)
    print(f"data/raw: 4 files verified by sha256, from {source}")


if __name__ == "__main__":
    run(main)
