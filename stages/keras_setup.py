"""Keras on TensorFlow, quiet, deterministic and isolated: same params, code and data give the same model."""

import os
import sys

from stages.isolation import isolate


def import_keras(seed: int | None = None):
    """Import and return Keras with deterministic kernels, seeding Python, NumPy and TensorFlow."""
    if "keras" not in sys.modules:  # Keras reads its environment once, at import
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no start-up banner
        isolate()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras
