"""Keras on TensorFlow, quiet and deterministic: same params, code and data give the same model."""

import os


def import_keras(seed: int | None = None):
    """Import and return Keras with deterministic kernels, seeding Python, NumPy and TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no start-up banner
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras
