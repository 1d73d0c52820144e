"""Atomic writes: an output appears whole under its final name, or not at all."""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; rename it to `path` only if the block succeeds.

    The temporary name keeps the suffix (Keras checks for `.keras`) and starts with a dot,
    so nothing half-written ever carries the final name.
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
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
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


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a .npy file: stages read only the rows they need, without a private copy."""
    return np.load(path, mmap_mode="r")
