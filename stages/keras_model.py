"""Keras on TensorFlow, quiet, deterministic and isolated; the model file it writes and reads."""

import json
import os
import re
import sys
import zipfile
import zlib
from pathlib import Path

from stages.data import MODEL, isolate, made_by, reading
from stages.exits import UserError

INFERENCE_BATCH = 1024  # evaluation only reads the weights: its batch size changes no result
ZIP_ENTRY = b"PK\x03\x04"  # how a zip archive, and so a .keras file, begins


def import_keras(seed: int | None = None):
    """Keras with deterministic kernels, Python, NumPy and TensorFlow seeded by `seed`."""
    # Read only (TID251): TensorFlow reads its environment once, when first imported.
    if "keras" not in sys.modules:  # noqa: TID251
        # TensorFlow's documented log filter: 3 hides its C++ lines, such as every run's meaningless
        # `E0000 ... use_unbounded_threadpool` (absl's and oneDNN's notes come before it applies).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        isolate()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras


def save_model(net, path: str | os.PathLike) -> None:
    """`net.save(path)` without save dates and Python object ids: the same training, the same bytes.

    DVC's cache and run-cache then recognise the model."""
    net.save(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    ids: dict[bytes, int] = {}  # renumbered in order of appearance: the same sharing, stable names
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = re.sub(rb'"shared_object_id": (\d+)', lambda m: b'"shared_object_id": %d'
                              % ids.setdefault(m[1], len(ids) + 1), data)
            info.date_time = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
            archive.writestr(info, data)


def zip_fault(path: Path) -> str | None:
    """What makes `path` no .keras file that Keras could read, or None."""
    if path.suffix != ".keras":
        return "not a .keras file, the only model format Keras 3 loads"
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            truncated = file.read(len(ZIP_ENTRY)) == ZIP_ENTRY
        return "truncated (its zip archive has no end)" if truncated else "not a zip archive"
    try:
        with zipfile.ZipFile(path) as archive:
            if (damaged := archive.testzip()) is not None:  # reads every entry, checks its CRC-32
                return f"{damaged} in it fails its CRC-32 check: the file is corrupt"
            if "config.json" not in archive.namelist():
                return "no config.json in its zip archive: not a Keras model"
    except (zipfile.BadZipFile, zlib.error) as error:
        return f"a damaged zip archive ({error})"
    return None


def load_model(path: str | os.PathLike = MODEL):
    """The model at `path`, loaded in safe mode (no code from the file runs); else a UserError.

    The file is checked before Keras is imported: a bad one fails in a moment, not seconds."""
    path = Path(path)
    with reading(path, "a file"):
        open(path, "rb").close()  # a missing model: `reading` names the stage that makes it
    fault = zip_fault(path)
    if fault is None:
        try:
            return import_keras().models.load_model(path, safe_mode=True)
        except (ValueError, OSError) as error:  # Keras's, or h5py's for its weights
            if isinstance(error, OSError) and error.errno is not None:
                raise  # the system's, such as a full disk
            reason = " ".join(str(error).split())
            fault = f"Keras cannot load it in safe mode, which runs no code from a file ({reason})"
    maker = made_by(path)
    again = f"; `dvc repro {maker}` makes it again" if maker else ""
    raise UserError(f"cannot load {path}: {fault}{again}")
