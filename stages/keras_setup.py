"""Keras on TensorFlow, quiet, deterministic and isolated: same params, code and data give the same model."""

import os
import sys

from stages.isolation import isolate


def import_keras(seed: int | None = None):
    """Import and return Keras with deterministic kernels, seeding Python, NumPy and TensorFlow."""
    if "keras" not in sys.modules:  # Keras and TensorFlow read their environment once, at import
        # TensorFlow's documented log filter for its C++ info and warning lines. A few lines that
        # TensorFlow 2.21 writes before its logging is set up still show (absl's notice, oneDNN's
        # note): hiding them would take redirecting the process's stderr.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        isolate()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras
