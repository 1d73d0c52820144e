"""Stage 5: train the Keras network (by default one softmax layer: a logistic regression)."""

import sys
import time

import numpy as np

from stages import params
from stages.artifacts import MODEL, TRAIN_HISTORY_PLOT, TRAIN_METRICS, load_split
from stages.cli import run
from stages.files import atomic_path, write_json
from stages.keras_setup import import_keras

PARAMS = ("seed", "epochs", "batch_size", "model")
N_CLASSES = 10
STEPS_PER_EXECUTION = 50  # steps run inside one graph call: the same math, far less dispatch


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
    """Fit a new network; return it and its per-epoch history (loss, accuracy, val_loss, val_accuracy)."""
    net = build_model(keras, model)
    history = net.fit(
        x_train, y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=1 if sys.stdout.isatty() else 2,  # a progress bar on a terminal, a line per epoch in logs
    )
    return net, history.history


def main() -> None:
    p = params.load(*PARAMS)
    keras = import_keras(p.seed)
    x_train, y_train = load_split("train")
    x_val, y_val = load_split("val")
    start = time.perf_counter()
    net, history = train(keras, p.model, x_train, y_train, x_val, y_val, p.epochs, p.batch_size)
    print(f"trained {p.epochs} epochs on {len(y_train)} samples in {time.perf_counter() - start:.1f} s")

    with atomic_path(MODEL) as tmp:
        net.save(tmp)
    import pandas as pd

    table = pd.DataFrame(history)
    table.insert(0, "epoch", np.arange(1, len(table) + 1))
    with atomic_path(TRAIN_HISTORY_PLOT) as tmp:
        table.to_csv(tmp, index=False)
    write_json(TRAIN_METRICS, {
        "train": {"loss": history["loss"][-1], "accuracy": history["accuracy"][-1]},
        "val": {"loss": history["val_loss"][-1], "accuracy": history["val_accuracy"][-1]},
    })


if __name__ == "__main__":
    run(main)
