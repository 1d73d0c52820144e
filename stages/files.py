"""Atomic writes and the file formats the stages share (JSON metrics, CSV plots, .npy arrays)."""

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; `os.replace` it onto `path` if the block succeeds.

    An output thus appears whole under its final name or not at all; on an error the temporary is
    removed. It keeps `path`'s suffix, since Keras checks for `.keras`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.stem}-tmp-"
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
            shutil.rmtree(path)  # os.replace cannot replace a non-empty directory
        os.replace(tmp, path)
    except BaseException:
        if directory:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON, atomically; the same data always gives the same bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, columns: dict[str, Sequence[Any]]) -> None:
    """Write equal-length `columns` as a CSV table with a header row, atomically (a DVC plot)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a .npy file: stages read only the rows they need, without a private copy."""
    return np.load(path, mmap_mode="r")
