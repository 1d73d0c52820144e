"""Stage 6: evaluate the trained network on the validation and test sets."""

import numpy as np

from stages.cli import run
from stages.data import (
    CLASS_NAMES,
    CONFUSION_PLOT,
    EVALUATE_REPORT,
    MISCLASSIFIED_PLOT,
    PER_CLASS_PLOT,
    load_prepared,
    load_split,
    rounded,
    write_csv,
    write_json,
)
from stages.images import save_image_grid
from stages.keras_model import import_keras, load_model

N_MISCLASSIFIED = 20
BATCH = 1024  # evaluation only reads the weights: its batch size changes no result


def per_class_accuracy(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Accuracy within each true class (None for a class absent from `y_true`)."""
    correct = predicted == y_true
    return {
        name: float(correct[y_true == label].mean()) if np.any(y_true == label) else None
        for label, name in enumerate(CLASS_NAMES)
    }


def main() -> None:
    keras = import_keras()
    net = load_model(keras)
    report = {}
    for name, (x, y) in (("val", load_split("val")), ("test", load_prepared("test"))):
        x, y = np.asarray(x), np.asarray(y)
        # Keras computes the loss from the softmax's logits, as in training; recomputing it from
        # the predicted (clipped) probabilities would differ in the third decimal.
        report[name] = net.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
        predicted = net.predict(x, batch_size=BATCH, verbose=0).argmax(axis=1)
        report[name]["per_class_accuracy"] = per_class_accuracy(y, predicted)
        print(f"{name}: loss {report[name]['loss']:.4f}, accuracy {report[name]['accuracy']:.4f} "
              f"on {len(y)} samples")

    # `x`, `y` and `predicted` are now the test set's; the per-class plot shows the report's figures.
    report = rounded(report)
    write_csv(CONFUSION_PLOT, {
        "actual": [CLASS_NAMES[label] for label in y],
        "predicted": [CLASS_NAMES[label] for label in predicted],
    })
    write_csv(PER_CLASS_PLOT, {
        "class": CLASS_NAMES,
        "accuracy": [report["test"]["per_class_accuracy"][name] for name in CLASS_NAMES],
    })
    wrong = np.flatnonzero(predicted != y)[:N_MISCLASSIFIED]
    save_image_grid(
        MISCLASSIFIED_PLOT, x[wrong],
        [f"{CLASS_NAMES[y[i]]}\n→ {CLASS_NAMES[predicted[i]]}" for i in wrong],
    )
    write_json(EVALUATE_REPORT, report)  # rounded above


if __name__ == "__main__":
    run(main)
