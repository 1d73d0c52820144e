"""The study as one plain script, as its notebook runs it: what a user would run instead.

It imports nothing of the project (its own data path, its own keys), so that it stays what a
user would write; its last line, `RESULT {json}`, is for bench/run.py."""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no start-up banner; changes nothing else

import keras  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.model_selection import cross_validate, train_test_split  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def load(data: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """What keras.datasets.fashion_mnist.load_data() does, from the local .gz files."""
    with gzip.open(data / f"{stem}-labels-idx1-ubyte.gz", "rb") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(data / f"{stem}-images-idx3-ubyte.gz", "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(len(y), 28, 28)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-samples", type=int, default=None,
                        help="use only the first N training and test images (smoke runs)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=42,
                        help="Keras's initialisation and shuffling seed (the pipeline's); -1: none")
    args = parser.parse_args()
    if args.seed >= 0:
        keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = load(args.data, "train"), load(args.data, "t10k")
    if args.max_samples:
        x_train, y_train = x_train[: args.max_samples], y_train[: args.max_samples]
        x_test, y_test = x_test[: args.max_samples], y_test[: args.max_samples]
    X_train = (x_train.reshape(len(x_train), -1) / 255).astype(np.float32)
    X_test = (x_test.reshape(len(x_test), -1) / 255).astype(np.float32)

    t = time.perf_counter()
    sgd = SGDClassifier(loss="log_loss", max_iter=5, random_state=42)
    scores = cross_validate(sgd, X_train, y_train, n_jobs=-1)["test_score"]
    cv_wall = time.perf_counter() - t
    print(f"SGD 5-fold CV accuracy {scores.mean():.4f} ± {scores.std():.4f} ({cv_wall:.1f} s)")

    X_tr, X_val, y_tr, y_val = train_test_split(X_train, y_train, test_size=0.2, random_state=42)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    history = model.fit(X_tr, y_tr, epochs=args.epochs, batch_size=32,
                        validation_data=(X_val, y_val), verbose=2)
    fit_wall = time.perf_counter() - t
    test_loss, test_accuracy = model.evaluate(X_test, y_test, verbose=0)
    wall = time.perf_counter() - START
    print(f"Keras {args.epochs} epochs ({fit_wall:.1f} s): validation accuracy "
          f"{history.history['val_accuracy'][-1]:.4f}, test accuracy {test_accuracy:.4f}")
    print(f"wall {wall:.1f} s")
    print("RESULT " + json.dumps({
        "sgd_cv_accuracy": float(scores.mean()),
        "keras_val_accuracy": float(history.history["val_accuracy"][-1]),
        "keras_test_accuracy": float(test_accuracy),
        "cv_wall": cv_wall,
        "fit_wall": fit_wall,
        "wall": wall,
    }))


if __name__ == "__main__":
    main()
