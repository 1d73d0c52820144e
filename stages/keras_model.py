"""Keras on TensorFlow, quiet, deterministic and isolated, and the model file it writes and reads."""

import json
import os
import re
import sys
import zipfile

from stages.cli import UserError
from stages.data import MODEL, isolate, reading

INFERENCE_BATCH = 1024  # validation and evaluation only read the weights: their batch size changes no result


def import_keras(seed: int | None = None):
    """Keras with deterministic kernels, Python, NumPy and TensorFlow seeded by `seed`."""
    if "keras" not in sys.modules:  # noqa: TID251 (read only: Keras and TensorFlow read their environment at import)
        # TensorFlow's documented log filter: 3 hides its C++ lines, such as every run's meaningless `E0000
        # ... use_unbounded_threadpool` (failures still raise; absl's, oneDNN's notes come before it applies).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        isolate()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras


def save_model(net, path: str | os.PathLike) -> None:
    """`net.save(path)`, then rewrite the .keras zip without the save dates (metadata.json's date_saved,
    each entry's time) and Python object ids (config.json's shared_object_id): the same training then
    writes the same bytes, and DVC's cache and run-cache recognise the model."""
    net.save(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    ids: dict[bytes, int] = {}  # renumbered in order of appearance: the same sharing, stable names
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if info.filename == "metadata.json":
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "date_saved"}).encode()
            elif info.filename == "config.json":
                data = re.sub(rb'"shared_object_id": (\d+)',
                              lambda m: b'"shared_object_id": %d' % ids.setdefault(m[1], len(ids) + 1), data)
            info.date_time = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
            archive.writestr(info, data)


def load_model(keras, path: str | os.PathLike = MODEL):
    """The trained model, loaded in safe mode (no code from the file runs); a bad file is a UserError."""
    with reading(path, "a file"):
        open(path, "rb").close()  # a missing model: say which stage makes it
    try:
        return keras.models.load_model(path, safe_mode=True)
    except ValueError as error:  # Keras's error for a broken or unsafe file
        message = " ".join(str(error).split())
        raise UserError(f"cannot load {path}: {message} (this stage loads models in safe mode only; "
                        "`dvc repro train` rebuilds the model)") from None
