"""Stage 6: evaluate the trained network on the validation and test sets.

PROPOSED (bench/proposed/, measured by `python -m bench.run --overlay bench/proposed`): the
default network is Dense layers only, so its forward pass is a few NumPy matrix products on the
weights in data/model.keras; importing TensorFlow (~4 s, most of this stage) is needed only for a
network with other layers, which falls back to Keras.
"""

import json
import zipfile

import numpy as np
import pandas as pd

from stages.artifacts import (
    CONFUSION_PLOT, EVALUATE_METRICS, MISCLASSIFIED_PLOT, MODEL, load_prepared, load_split,
)
from stages.cli import run
from stages.dataset import CLASS_NAMES
from stages.files import atomic_path, write_json
from stages.images import save_image_grid

N_MISCLASSIFIED = 20


def _gelu(z):
    from scipy.special import erf

    return 0.5 * z * (1 + erf(z / np.sqrt(np.float32(2)))).astype(np.float32)


ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "sigmoid": lambda z: (1 / (1 + np.exp(-z))).astype(np.float32),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))).astype(np.float32),
    "gelu": _gelu,
}


def dense_layers(path) -> list[tuple[np.ndarray, np.ndarray, str]] | None:
    """(kernel, bias, activation) of each Dense layer of a Sequential .keras file whose layers are
    all Input, Dense or Dropout (identity at inference) and whose last layer is a softmax; else None."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        with archive.open("model.weights.h5") as file, h5py.File(file, "r") as weights:
            if config.get("class_name") != "Sequential":
                return None
            layers = []
            for layer in config["config"]["layers"]:
                kind, cfg = layer["class_name"], layer["config"]
                if kind in ("InputLayer", "Dropout"):
                    continue
                activation = cfg.get("activation")
                if kind != "Dense" or not cfg.get("use_bias", True) or cfg["dtype"]["config"]["name"] != "float32":
                    return None
                if activation not in ACTIVATIONS and activation != "softmax":
                    return None
                group = weights[f"layers/{cfg['name']}/vars"]
                layers.append((group["0"][()], group["1"][()], activation))
    if not layers or layers[-1][2] != "softmax" or any(a == "softmax" for _, _, a in layers[:-1]):
        return None
    return layers


def logits(layers, x: np.ndarray) -> np.ndarray:
    h = x
    for kernel, bias, activation in layers[:-1]:
        h = ACTIVATIONS[activation](h @ kernel + bias)
    kernel, bias, _ = layers[-1]
    return h @ kernel + bias


def evaluate(layers, x: np.ndarray, y: np.ndarray) -> tuple[dict, np.ndarray]:
    """Loss (sparse categorical cross-entropy from the logits, as Keras computes it), accuracy, predictions."""
    z = logits(layers, x)
    top = z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(z - top).sum(axis=1, dtype=np.float32)) + top[:, 0]
    losses = log_sum - z[np.arange(len(y)), y]
    predicted = z.argmax(axis=1)
    return {"accuracy": float(np.mean(predicted == y)), "loss": float(np.mean(losses, dtype=np.float32))}, predicted


def per_class_accuracy(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Accuracy within each true class (None for a class absent from `y_true`)."""
    correct = predicted == y_true
    return {
        name: float(correct[y_true == label].mean()) if np.any(y_true == label) else None
        for label, name in enumerate(CLASS_NAMES)
    }


def main() -> None:
    layers = dense_layers(MODEL)
    net = None
    if layers is None:
        from stages.keras_setup import import_keras

        net = import_keras().models.load_model(MODEL, safe_mode=True)
    results = {}
    for name, (x, y) in (("val", load_split("val")), ("test", load_prepared("test"))):
        x, y = np.asarray(x), np.asarray(y)
        if net is None:
            results[name], predicted = evaluate(layers, x, y)
        else:
            results[name] = net.evaluate(x, y, batch_size=1024, verbose=0, return_dict=True)
            predicted = net.predict(x, batch_size=1024, verbose=0).argmax(axis=1)
        results[name]["per_class_accuracy"] = per_class_accuracy(y, predicted)
        print(f"{name}: loss {results[name]['loss']:.4f}, accuracy {results[name]['accuracy']:.4f} "
              f"on {len(y)} samples")

    # `x`, `y` and `predicted` are now the test set's.
    with atomic_path(CONFUSION_PLOT) as tmp:
        pd.DataFrame({
            "actual": np.array(CLASS_NAMES)[y],
            "predicted": np.array(CLASS_NAMES)[predicted],
        }).to_csv(tmp, index=False)
    wrong = np.flatnonzero(predicted != y)[:N_MISCLASSIFIED]
    save_image_grid(
        MISCLASSIFIED_PLOT, np.asarray(x[wrong]),
        [f"{CLASS_NAMES[y[i]]}\n→ {CLASS_NAMES[predicted[i]]}" for i in wrong],
    )
    write_json(EVALUATE_METRICS, results)


if __name__ == "__main__":
    run(main)
