"""Stage 1: obtain the four Fashion-MNIST files from the first source where all of them verify.

data/raw/ holds the verified, decompressed IDX payloads, so its hash in dvc.lock is the same
whichever source served them (mirrors recompress, so the .gz bytes differ).

Every attempt is bounded: `timeout` seconds without data fail it (the socket timeout), and so
does a transfer slower than MIN_RATE on average (a deadline of `timeout` + size / MIN_RATE, so a
server trickling a byte every few seconds cannot hold the stage forever). No file may grow past
its expected size, compressed or decompressed, so a wrong or hostile source cannot fill the disk.
Nothing downloaded is unpickled or executed: the payloads are raw bytes, verified by sha256.

HTTPS certificates are always verified, against certifi's authorities (requests' default). Behind
a private certificate authority (a company proxy that re-signs TLS), point requests' standard
REQUESTS_CA_BUNDLE environment variable at its certificate(s): `REQUESTS_CA_BUNDLE=/path/ca.pem
dvc repro`; the tests trust their own authority that way. A certificate that does not verify fails
its source at once (every attempt would get the same certificate), naming the reason. Redirects are
followed, at most MAX_REDIRECTS of them, and only to http(s) URLs.
"""

import contextlib
import gzip
import hashlib
import re
import shutil
import signal
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm

from stages import params
from stages.cli import UserError, run
from stages.data import FILES, RAW_DIR, Payload, atomic_path

PARAMS = ("download",)
CHUNK = 1 << 16
MIN_RATE = 50_000  # bytes/s: an attempt slower than this on average fails
GZIP_SLACK = 1 << 20  # a .gz may exceed its payload by gzip's headers and stored blocks
TRANSIENT_STATUS = {408, 425, 429}  # and every 5xx: worth another attempt
MAX_REDIRECTS = 30  # requests' default, named for the message
# OpenSSL's X509_V_ERR_ codes for a self-signed certificate, alone or in the chain, and an unknown
# issuer: what a private certificate authority (a TLS-inspecting proxy) looks like to the client.
UNKNOWN_AUTHORITY = {18, 19, 20}


class SourceFailed(Exception):
    """This source cannot serve a verified file; the next source is tried."""


class Transient(Exception):
    """A network failure worth another attempt: connection, timeout, server error, cut-off body."""


class _DeadlinePassed(Exception):
    """Raised by the SIGALRM handler inside whatever call an attempt is blocked in."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def has_scheme(source: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


def download(sources: list[str], out_dir: Path, retries: int = 3, timeout: float = 30) -> str:
    """Fill `out_dir` (created atomically) from the first source whose files all verify; return it.

    If no source verifies, `out_dir` is left as it was and the UserError names every source.
    """
    failures = []
    for source in sources:
        try:
            if has_scheme(source) and not is_url(source):
                raise SourceFailed("not an http(s) URL or a local directory: rejected")
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
    max_gz = payload.size + GZIP_SLACK
    try:
        if is_url(source):
            url = source.rstrip("/") + f"/{name}.gz"
            _download_with_retries(url, gz_path, retries, timeout, max_gz)
        else:
            local = Path(source) / f"{name}.gz"
            if not local.is_file():
                raise SourceFailed(f"{local} does not exist")
            if local.stat().st_size > max_gz:
                raise SourceFailed(f"{local} has {local.stat().st_size} bytes, more than {max_gz}")
            shutil.copyfile(local, gz_path)
        decompress_and_verify(gz_path, out_dir / name, payload)
    except BaseException:
        (out_dir / name).unlink(missing_ok=True)
        raise
    finally:
        gz_path.unlink(missing_ok=True)


def decompress_and_verify(gz_path: Path, out_path: Path, payload: Payload) -> None:
    """Decompress to `out_path`, stopping as soon as it grows past the payload's size."""
    digest = hashlib.sha256()
    size = 0
    try:
        with gzip.open(gz_path, "rb") as src, open(out_path, "wb") as dst:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > payload.size:
                    raise SourceFailed(
                        f"{gz_path.name} decompresses to more than the expected "
                        f"{payload.size} bytes"
                    )
                digest.update(chunk)
                dst.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:  # not a full disk: that is no source's fault
        raise SourceFailed(f"{gz_path.name} is not a valid gzip file ({error})") from None
    if size != payload.size or digest.hexdigest() != payload.sha256:
        raise SourceFailed(
            f"{gz_path.name} decompresses to {size} bytes with sha256 {digest.hexdigest()[:12]}…, "
            f"expected {payload.size} bytes with sha256 {payload.sha256[:12]}…"
        )


def _download_with_retries(
    url: str, path: Path, retries: int, timeout: float, max_bytes: int
) -> None:
    retrying = Retrying(
        stop=stop_after_attempt(retries),
        wait=wait_exponential(multiplier=0.5, max=8),
        retry=retry_if_exception_type(Transient),
        reraise=True,
    )
    try:
        retrying(_download_once, url, path, timeout, max_bytes)
    except Transient as error:
        attempts = f"{retries} attempt{'s' if retries > 1 else ''}"
        raise SourceFailed(f"{url}: {error} (after {attempts})") from None


def attempt_deadline(timeout: float, size: int) -> float:
    """Seconds an attempt may take in all: `timeout`, plus `size` bytes at MIN_RATE."""
    return timeout + size / MIN_RATE


def _download_once(url: str, path: Path, timeout: float, max_bytes: int) -> None:
    start = time.monotonic()
    limit = attempt_deadline(timeout, max_bytes)
    received, total = 0, None
    try:
        with (
            _alarm(limit) as rearm,
            _session() as session,
            session.get(url, stream=True, timeout=timeout) as response,
        ):
            if response.status_code >= 500 or response.status_code in TRANSIENT_STATUS:
                raise Transient(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise SourceFailed(f"{url}: HTTP {response.status_code}")
            total = int(response.headers.get("Content-Length") or 0) or None
            if total is not None and total > max_bytes:
                raise SourceFailed(f"{url}: announces {total} bytes, more than the {max_bytes} expected")
            limit = attempt_deadline(timeout, total or max_bytes)  # tighter once the size is known
            rearm(limit)
            with (
                open(path, "wb") as file,
                tqdm(total=total, unit="B", unit_scale=True, desc=path.name, file=sys.stderr,
                     disable=None) as bar,
            ):
                for chunk in response.iter_content(CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise SourceFailed(f"{url}: sends more than the {max_bytes} bytes expected")
                    file.write(chunk)
                    bar.update(len(chunk))
                    if time.monotonic() - start > limit:  # without SIGALRM (not the main thread)
                        raise _DeadlinePassed
    except _DeadlinePassed:
        raise Transient(
            f"not complete after {limit:.0f} s ({received} bytes; the limit is {timeout:g} s "
            f"plus the size at {MIN_RATE // 1000} kB/s)"
        ) from None
    except requests.Timeout:
        raise Transient(f"no data for {timeout:g} s ({_progress(received, total)})") from None
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        raise Transient(f"connection dropped ({_progress(received, total)})") from None
    except requests.TooManyRedirects:
        raise SourceFailed(f"{url}: too many redirects ({MAX_REDIRECTS})") from None
    except requests.ConnectionError as error:
        if refused := _certificate_refused(error):  # not transient: the next attempt gets the same
            reason = refused.verify_message.rstrip(".")
            if refused.verify_code in UNKNOWN_AUTHORITY:
                reason += (" (behind a private certificate authority, set REQUESTS_CA_BUNDLE"
                           " to its certificate)")
            raise SourceFailed(f"{url}: certificate verify failed: {reason}") from None
        # requests reports a read timeout in the body as a ConnectionError around urllib3's.
        if "timed out" in str(error).lower():
            raise Transient(f"no data for {timeout:g} s ({_progress(received, total)})") from None
        if received:
            raise Transient(f"connection dropped ({_progress(received, total)})") from None
        raise Transient("connection failed (refused, reset or closed)") from None
    except requests.RequestException as error:
        raise Transient(type(error).__name__) from None


def _session() -> requests.Session:
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    session.hooks["response"].append(_refuse_redirect_off_http)
    return session


def _refuse_redirect_off_http(response: requests.Response, **kwargs: object) -> None:
    # requests would only fail to find a "connection adapter" for it; say what happened instead.
    if response.is_redirect:
        target = urljoin(response.url, response.headers["Location"])
        if not is_url(target):
            response.close()
            raise SourceFailed(f"{response.url}: redirected to {target}: only http(s) is allowed")


def _certificate_refused(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error somewhere behind `error`, or None.

    requests wraps the ssl.SSLCertVerificationError in urllib3's errors, as an argument or a
    cause; this follows both.
    """
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        linked = (*current.args, current.__cause__, current.__context__)
        pending += [e for e in linked if isinstance(e, BaseException) and id(e) not in seen]
    return None


def _progress(received: int, total: int | None) -> str:
    return f"{received} of {total} bytes" if total else f"{received} bytes"


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[Callable[[float], None]]:
    """Raise _DeadlinePassed in the main thread `seconds` from now, whatever call it is blocked in.

    Yields `rearm(seconds)`, which moves the deadline to `seconds` after the start. A socket
    timeout bounds each wait for data, not a whole transfer: a byte every few seconds keeps it
    alive, so SIGALRM interrupts the wait. Off the main thread the caller's own clock checks
    remain. A timer already set (say by pytest-timeout) is restored afterwards.
    """
    started = time.monotonic()
    if threading.current_thread() is not threading.main_thread():
        yield lambda seconds: None
        return

    def expire(signum: int, frame: object) -> None:
        raise _DeadlinePassed

    def rearm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, max(seconds - (time.monotonic() - started), 1e-3))

    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield rearm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            remaining = max(previous_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)


def main() -> None:
    p = params.load(*PARAMS)
    source = download(p.download.sources, RAW_DIR, p.download.retries, p.download.timeout)
    print(f"data/raw: 4 files verified by sha256, from {source}")


if __name__ == "__main__":
    run(main)
