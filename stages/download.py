"""Stage 1: the four Fashion-MNIST files, from the first source whose files all verify by sha256."""

import functools
import gzip
import re
import shutil
import sys
import zlib
from pathlib import Path

import pooch
import requests

from stages import params
from stages.data import DEBIAN, FILES, RAW_DIR, atomic_path
from stages.exits import UserError, run

PARAMS = ("download",)


class SourceFailed(Exception):
    """This source cannot serve a verified file, and another attempt would fail the same way."""


def gunzip(url: str, output_file: str, pup: pooch.Pooch,
           http: pooch.HTTPDownloader | None = None) -> None:
    """A pooch downloader storing the payload of a .gz, a URL fetched by `http` or a local file.

    pooch then checks the payload's sha256 (mirrors recompress) and retries what requests raises."""
    gz = Path(f"{output_file}.gz") if http else Path(url)
    try:
        if http:
            http(url, str(gz), pup)
        elif not gz.is_file():
            raise SourceFailed(f"{gz} does not exist")
        with gzip.open(gz) as packed, open(output_file, "wb") as payload:
            shutil.copyfileobj(packed, payload)
        Path(output_file).chmod(0o644)  # pooch's temporary is private (0600); data/raw is not
    except requests.exceptions.SSLError as error:  # the next attempt gets the same certificate
        raise SourceFailed(one_line(error)) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:  # not OSError: a full disk is not
        raise SourceFailed(f"{url} is not a valid gzip file ({error})") from None
    finally:
        if http:
            gz.unlink(missing_ok=True)


def download(sources: list[str], out_dir: Path, retries: int = 3, timeout: float = 30) -> str:
    """Fill `out_dir` from the first source whose four files verify; return it, else a UserError."""
    failures = []
    for number, source in enumerate(sources, 1):
        try:
            with atomic_path(out_dir, directory=True) as tmp:
                fetch(source, tmp, retries, timeout)
            return source
        except (SourceFailed, ValueError, requests.RequestException) as error:  # ValueError: sha256
            failures.append(f"{source}: {one_line(error)}")
            if number < len(sources):  # the last one's fault is told once, in the error below
                print(f"source {failures[-1]}; trying the next one", file=sys.stderr)
    if DEBIAN.is_dir() and DEBIAN in {Path(source) for source in sources}:
        fix = (f"the files of dataset-fashion-mnist in {DEBIAN} are damaged: "
               "`apt-get install --reinstall dataset-fashion-mnist`")
    else:
        fix = (f"`apt-get install dataset-fashion-mnist` (puts the files in {DEBIAN}), "
               "or list a reachable mirror under download.sources in params.yaml")
    tried = "; ".join(failures)
    raise UserError(f"no source could provide Fashion-MNIST. Tried: {tried}. Fix: {fix}")


def fetch(source: str, out_dir: Path, retries: int, timeout: float) -> None:
    remote = source.startswith(("http://", "https://"))
    base = source.rstrip("/") + "/" if remote else f"{Path(source)}/"
    files = pooch.create(
        path=out_dir, base_url=base,
        registry={name: f"sha256:{sha256}" for name, sha256 in FILES.items()},
        urls={name: f"{base}{name}.gz" for name in FILES},
        retry_if_failed=retries - 1 if remote else 0,  # a local file reads the same every time
    )
    terminal = sys.stderr.isatty()  # progress, pooch's bar and its lines, is for a terminal only
    pooch.get_logger().setLevel("INFO" if terminal else "WARNING")
    http = (pooch.HTTPDownloader(progressbar=terminal, timeout=timeout, chunk_size=1 << 16)
            if remote else None)
    for name in FILES:
        files.fetch(name, downloader=functools.partial(gunzip, http=http))


def one_line(error: Exception) -> str:
    """The reason requests, pooch or gzip gave, without urllib3's wrapping.

    It is the why of "('Connection broken: why', ...)" or "(Caused by SSLError('[SSL: X] why'))"."""
    text = str(error)
    wrapped = r"^\('(.*?)', .*\)$|\(Caused by .*?\w+\((?:[^'\"(]*, )?(['\"])(.*)\2\)+$"
    if why := re.search(wrapped, text):
        text = why[1] or why[3]
    prefixes = r"^<[^>]*>: |^\w+\(host=.*?\): |\[SSL: \w+\] | \(_ssl\.c:\d+\)"
    return re.sub(prefixes, "", text).rstrip(".")


def main() -> None:
    p = params.load(*PARAMS)
    source = download(p.download.sources, RAW_DIR, p.download.retries, p.download.timeout)
    print(f"data/raw: 4 files verified by sha256, from {source}")


if __name__ == "__main__":
    run(main)
