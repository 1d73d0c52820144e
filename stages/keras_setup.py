"""Keras on TensorFlow, quiet, deterministic and isolated: same params, code and data give the same model."""

import contextlib
import os
import sys
from collections.abc import Iterator

from stages.isolation import isolate

# Written to stderr by TensorFlow's C++ code whatever TF_CPP_MIN_LOG_LEVEL says
# (tensorflow/tensorflow#100442): at import, absl's notice that it is not initialized yet and info
# lines such as "oneDNN custom operations are on" (oneDNN stays on: the committed results use
# it); in Keras's evaluate and predict, an error line about an op attribute that TensorFlow 2.21's
# own Python writes and its C++ does not know, which TensorFlow itself says "may be expected".
NOISE = (
    "WARNING: All log messages before absl::InitializeLog()",
    "I0000 ",
    "NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition",
)


@contextlib.contextmanager
def without_tensorflow_noise() -> Iterator[None]:
    """Hold back what is written to stderr (fd 2) in the block; then pass on all but NOISE."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = os.memfd_create("tensorflow-import-stderr")  # in memory: nothing under TMPDIR
    os.dup2(captured, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.lseek(captured, 0, os.SEEK_SET)
        with os.fdopen(captured, "rb") as file:
            for line in file.read().decode(errors="replace").splitlines():
                if not any(noise in line for noise in NOISE):
                    print(line, file=sys.stderr)


def import_keras(seed: int | None = None):
    """Import and return Keras with deterministic kernels, seeding Python, NumPy and TensorFlow."""
    if "keras" not in sys.modules:  # Keras reads its environment once, at import
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no start-up banner
        isolate()
        # Keras imports its scikit-learn wrappers whenever scikit-learn is installed: half a
        # second of start-up for nothing a stage uses. Marked absent in this process only.
        sys.modules.setdefault("sklearn", None)
    with without_tensorflow_noise():
        import keras
        import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras
