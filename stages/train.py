"""Stage 5: train the Keras network (by default one softmax layer: a logistic regression)."""

import json
import os
import re
import sys
import time
import zipfile

import numpy as np

from stages import params
from stages.artifacts import MODEL, TRAIN_HISTORY_PLOT, TRAIN_METRICS, load_split
from stages.cli import run
from stages.files import atomic_path, write_csv, write_json
from stages.keras_setup import import_keras

PARAMS = ("seed", "epochs", "batch_size", "model")
N_CLASSES = 10
STEPS_PER_EXECUTION = 50  # steps run inside one graph call: the same math, far less dispatch
VALIDATION_BATCH = 1024  # validation only reads the weights: its batch size changes no weight


def build_model(keras, model: params.Model):
    """`Sequential([Input((784,)), *hidden, Dense(10, softmax)])`, compiled as the study compiles it."""
    layers = [keras.Input((784,))]
    for units in model.hidden:
        layers.append(keras.layers.Dense(units, activation=model.activation))
        if model.dropout:
            layers.append(keras.layers.Dropout(model.dropout))
    layers.append(keras.layers.Dense(N_CLASSES, activation="softmax"))
    optimizers = {
        "rmsprop": keras.optimizers.RMSprop,
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
    }
    net = keras.Sequential(layers)
    net.compile(
        optimizer=optimizers[model.optimizer](learning_rate=model.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return net


def train(
    keras, model: params.Model, x_train: np.ndarray, y_train: np.ndarray,
    x_val: np.ndarray, y_val: np.ndarray, epochs: int, batch_size: int,
) -> tuple[object, dict[str, list[float]]]:
    """Fit a new network; return it and its per-epoch history (loss, accuracy, val_loss, val_accuracy).

    What `net.fit(x_train, y_train, batch_size, epochs, validation_data=(x_val, y_val))` computes,
    bit for bit: the same `train_step` on the same batches, in the order Keras's own array adapter
    shuffles them. Only the loop differs: each epoch's steps run in one TensorFlow graph call,
    slicing the training set held as one tensor, instead of pulling every batch through tf.data.
    """
    net = build_model(keras, model)
    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:  # another Keras: its own loop, the same results, slower
        history = net.fit(
            x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
            batch_size=batch_size, validation_batch_size=VALIDATION_BATCH,
            verbose=1 if sys.stdout.isatty() else 2,
        )
        return net, history.history

    import tensorflow as tf

    n = len(y_train)
    x, y = as_tensor(tf, x_train), tf.convert_to_tensor(y_train)
    x_val, y_val = as_tensor(tf, x_val), tf.convert_to_tensor(y_val)
    # Each iteration yields the next epoch's order of the n rows, as fit's adapter draws it.
    orders = ArrayDataAdapter(np.arange(n), batch_size=batch_size, shuffle=True).get_tf_dataset()
    orders = orders.unbatch().batch(n)

    @tf.function(reduce_retracing=True)
    def run_steps(batches):  # batches: steps × batch_size row numbers
        def step(i):
            rows = batches[i]
            net.train_step((tf.gather(x, rows), tf.gather(y, rows)))
            return i + 1

        tf.while_loop(lambda i: i < tf.shape(batches)[0], step, [tf.constant(0)],
                      parallel_iterations=1)

    @tf.function
    def validate():  # what net.evaluate(x_val, y_val, batch_size=VALIDATION_BATCH) computes
        for start in range(0, len(y_val), VALIDATION_BATCH):
            stop = start + VALIDATION_BATCH
            net.test_step((x_val[start:stop], y_val[start:stop]))

    full = n // batch_size * batch_size
    history: dict[str, list[float]] = {"accuracy": [], "loss": [], "val_accuracy": [], "val_loss": []}
    steps = -(-n // batch_size)
    for epoch in range(epochs):
        print(f"Epoch {epoch + 1}/{epochs}", flush=True)  # as Keras's fit logs it
        start = time.perf_counter()
        order = next(iter(orders))
        net.reset_metrics()
        if full:
            run_steps(tf.reshape(order[:full], (-1, batch_size)))
        if full < n:  # the last, partial batch
            run_steps(order[None, full:])
        logs = {name: float(value) for name, value in net.get_metrics_result().items()}
        net.reset_metrics()
        validate()
        val = net.get_metrics_result()
        for name in ("accuracy", "loss"):
            history[name].append(logs[name])
            history[f"val_{name}"].append(float(val[name]))
        print(f"{steps}/{steps} - {time.perf_counter() - start:.1f}s - "
              + " - ".join(f"{name}: {values[-1]:.4f}" for name, values in history.items()),
              flush=True)
    return net, history


def aligned(array: np.ndarray, alignment: int = 64) -> np.ndarray:
    """`array` itself if it is C-contiguous, writable (DLPack exports no read-only memory) and starts
    on an `alignment`-byte boundary; else such a copy."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable and array.ctypes.data % alignment == 0:
        return array
    buffer = np.empty(array.nbytes + alignment, dtype=np.uint8)
    offset = -buffer.ctypes.data % alignment
    copy = buffer[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


def as_tensor(tf, array: np.ndarray):
    """A TensorFlow tensor sharing `array`'s memory (DLPack; TensorFlow copies unaligned arrays)."""
    return tf.experimental.dlpack.from_dlpack(aligned(array).__dlpack__())


def save_model(net, path: str | os.PathLike) -> None:
    """Save `net` in the .keras format, as bytes that depend on the model alone.

    Keras records when it saved (metadata.json, the weights' zip entry) and Python object ids
    (config.json's shared_object_id); without them the same training writes the same file, so its
    hash in dvc.lock is the same on every run and machine.
    """
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
            info.date_time = (1980, 1, 1, 0, 0, 0)
            archive.writestr(info, data)


def main() -> None:
    p = params.load(*PARAMS)
    # The rows are gathered from the memory-mapped prepared set before TensorFlow's ~0.5 GB
    # arrive, into 64-byte-aligned arrays that TensorFlow then uses without a copy: the stage's
    # peak memory stays well under 1 GiB.
    x_train, y_train = load_split("train")
    x_train = aligned(x_train)
    x_val, y_val = load_split("val")
    x_val = aligned(x_val)
    keras = import_keras(p.seed)
    start = time.perf_counter()
    net, history = train(keras, p.model, x_train, y_train, x_val, y_val, p.epochs, p.batch_size)
    print(f"trained {p.epochs} epochs on {len(y_train)} samples in {time.perf_counter() - start:.1f} s")

    with atomic_path(MODEL) as tmp:
        save_model(net, tmp)
    write_csv(TRAIN_HISTORY_PLOT, {"epoch": range(1, p.epochs + 1), **history})
    write_json(TRAIN_METRICS, {
        "train": {"loss": history["loss"][-1], "accuracy": history["accuracy"][-1]},
        "val": {"loss": history["val_loss"][-1], "accuracy": history["val_accuracy"][-1]},
    })


if __name__ == "__main__":
    run(main)
