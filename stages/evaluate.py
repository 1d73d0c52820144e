"""Stage 6: evaluate the trained network on the validation and test sets."""

import numpy as np

from stages.artifacts import (
    CONFUSION_PLOT, EVALUATE_METRICS, MISCLASSIFIED_PLOT, MODEL, load_prepared, load_split,
)
from stages.cli import UserError, run
from stages.dataset import CLASS_NAMES
from stages.files import write_csv, write_json
from stages.images import save_image_grid
from stages.keras_setup import import_keras, without_tensorflow_noise

N_MISCLASSIFIED = 20


def per_class_accuracy(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Accuracy within each true class (None for a class absent from `y_true`)."""
    correct = predicted == y_true
    return {
        name: float(correct[y_true == label].mean()) if np.any(y_true == label) else None
        for label, name in enumerate(CLASS_NAMES)
    }


def main() -> None:
    keras = import_keras()
    try:
        net = keras.models.load_model(MODEL, safe_mode=True)  # safe mode: no code from the file
    except ValueError as error:  # Keras's error for a missing, broken or unsafe file
        message = " ".join(str(error).split())
        raise UserError(
            f"cannot load {MODEL}: {message} (this stage loads models in safe mode only; "
            "`dvc repro train` rebuilds the model)"
        ) from None
    results = {}
    for name, (x, y) in (("val", load_split("val")), ("test", load_prepared("test"))):
        x, y = np.asarray(x), np.asarray(y)
        # Keras computes the loss from the softmax's logits, as in training; recomputing it from
        # the predicted (clipped) probabilities would differ in the third decimal.
        with without_tensorflow_noise():
            results[name] = net.evaluate(x, y, batch_size=1024, verbose=0, return_dict=True)
            predicted = net.predict(x, batch_size=1024, verbose=0).argmax(axis=1)
        results[name]["per_class_accuracy"] = per_class_accuracy(y, predicted)
        print(f"{name}: loss {results[name]['loss']:.4f}, accuracy {results[name]['accuracy']:.4f} "
              f"on {len(y)} samples")

    # `x`, `y` and `predicted` are now the test set's.
    write_csv(CONFUSION_PLOT, {
        "actual": [CLASS_NAMES[label] for label in y],
        "predicted": [CLASS_NAMES[label] for label in predicted],
    })
    wrong = np.flatnonzero(predicted != y)[:N_MISCLASSIFIED]
    save_image_grid(
        MISCLASSIFIED_PLOT, np.asarray(x[wrong]),
        [f"{CLASS_NAMES[y[i]]}\n→ {CLASS_NAMES[predicted[i]]}" for i in wrong],
    )
    write_json(EVALUATE_METRICS, results)


if __name__ == "__main__":
    run(main)
