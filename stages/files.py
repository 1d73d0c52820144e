"""Atomic writes: an output appears whole under its final name, or not at all."""

import contextlib
import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; rename it to `path` only if the block succeeds.

    The temporary name keeps the suffix (Keras checks for `.keras`), starts with a dot and
    carries the writer's process id, so nothing half-written ever carries the final name, and
    what a killed writer (SIGKILL, power loss) left behind is removed by the next writer.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.stem}-tmp-{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    tmp.chmod(0o755 if directory else 0o644)  # mkstemp's private 0600 is not meant for outputs
    try:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporaries of `path` whose writing process no longer exists; return them."""
    pattern = re.compile(rf"^\.{re.escape(path.stem)}-tmp-(\d+)-")
    removed = []
    for candidate in path.parent.glob(f".{glob_escape(path.stem)}-tmp-*"):
        match = pattern.match(candidate.name)
        if not match or _alive(int(match.group(1))):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON, atomically; the same data always gives the same bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_csv(path: str | os.PathLike, columns: dict[str, Sequence[Any]]) -> None:
    """Write equal-length `columns` as a CSV table with a header row, atomically (a DVC plot)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a .npy file: stages read only the rows they need, without a private copy."""
    return np.load(path, mmap_mode="r")
