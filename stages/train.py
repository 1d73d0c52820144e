"""Stage 5: train the Keras network (by default one softmax layer: a logistic regression)."""

import sys
from collections.abc import Sequence

import numpy as np

from stages import params
from stages.data import MODEL, TRAIN_HISTORY_PLOT, TRAIN_REPORT, atomic_path, load_split, write_json
from stages.exits import run
from stages.keras_model import INFERENCE_BATCH, import_keras, save_model

PARAMS = ("seed", "epochs", "batch_size", "model")
N_CLASSES = 10
STEPS_PER_EXECUTION = 50  # batches per TensorFlow graph call: the same math, far less dispatch
OPTIMIZERS = {"rmsprop": "RMSprop", "adam": "Adam", "sgd": "SGD"}  # params name: keras.optimizers


def build_model(keras, model: params.Model):
    """`Sequential([Input((784,)), *hidden, Dense(10, softmax)])`, compiled as the study's."""
    layers = [keras.Input((784,))]
    for units in model.hidden:
        layers.append(keras.layers.Dense(units, activation=model.activation))
        if model.dropout:
            layers.append(keras.layers.Dropout(model.dropout))
    layers.append(keras.layers.Dense(N_CLASSES, activation="softmax"))
    net = keras.Sequential(layers)
    optimizer = getattr(keras.optimizers, OPTIMIZERS[model.optimizer])
    net.compile(
        optimizer=optimizer(learning_rate=model.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return net


def train(keras, model: params.Model, x_train: np.ndarray, y_train: np.ndarray,
          x_val: np.ndarray, y_val: np.ndarray, epochs: int, batch_size: int,
          callbacks: Sequence = ()) -> tuple[object, dict[str, list[float]]]:
    """A new network, fitted, and its history: loss, accuracy, val_loss, val_accuracy by epoch."""
    net = build_model(keras, model)
    history = net.fit(
        x_train, y_train,
        validation_data=(x_val, y_val),
        validation_batch_size=INFERENCE_BATCH,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks),
        verbose=1 if sys.stdout.isatty() else 2,  # a bar on a terminal, a line per epoch in a log
    )
    return net, history.history


def main() -> None:
    p = params.load(*PARAMS)
    x_train, y_train = load_split("train")
    x_val, y_val = load_split("val")
    keras = import_keras(p.seed)
    with atomic_path(TRAIN_HISTORY_PLOT) as history_csv:
        # Keras's CSVLogger writes a row per epoch (epoch counted from 0, as Keras counts).
        net, history = train(keras, p.model, x_train, y_train, x_val, y_val, p.epochs, p.batch_size,
                             callbacks=[keras.callbacks.CSVLogger(history_csv)])
    with atomic_path(MODEL) as tmp:
        save_model(net, tmp)
    write_json(TRAIN_REPORT, {
        "train": {"loss": history["loss"][-1], "accuracy": history["accuracy"][-1]},
        "val": {"loss": history["val_loss"][-1], "accuracy": history["val_accuracy"][-1]},
    })


if __name__ == "__main__":
    run(main)
