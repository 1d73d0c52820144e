"""Stage 6: evaluate the trained network on the validation and test sets."""

import numpy as np

from stages import data
from stages.exits import run
from stages.images import save_image_grid
from stages.keras_model import INFERENCE_BATCH, load_model

N_MISCLASSIFIED = 20


def per_class_accuracy(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Accuracy within each true class (None for a class absent from `y_true`)."""
    correct = predicted == y_true
    return {name: float(correct[y_true == label].mean()) if np.any(y_true == label) else None
            for label, name in enumerate(data.CLASS_NAMES)}


def main() -> None:
    net = load_model()
    report = {}
    for name, (x, y) in (("val", data.load_split("val")), ("test", data.load_prepared("test"))):
        x, y = np.asarray(x), np.asarray(y)
        # Keras computes the loss from the softmax's logits, as in training; recomputing it from
        # the predicted (clipped) probabilities would differ in the third decimal.
        report[name] = net.evaluate(x, y, batch_size=INFERENCE_BATCH, verbose=0, return_dict=True)
        predicted = net.predict(x, batch_size=INFERENCE_BATCH, verbose=0).argmax(axis=1)
        report[name]["per_class_accuracy"] = per_class_accuracy(y, predicted)
        print(f"{name}: loss {report[name]['loss']:.4f}, accuracy {report[name]['accuracy']:.4f} "
              f"on {len(y)} samples")

    # `x`, `y` and `predicted` are now the test set's; the per-class plot shows the report's.
    report = data.rounded(report)
    names = np.array(data.CLASS_NAMES)  # names[labels]: each label's class name
    per_class = report["test"]["per_class_accuracy"]  # in CLASS_NAMES's order
    data.write_csv(data.CONFUSION_PLOT, {"actual": names[y], "predicted": names[predicted]})
    data.write_csv(data.PER_CLASS_PLOT,
                   {"class": list(per_class), "accuracy": list(per_class.values())})
    wrong = np.flatnonzero(predicted != y)[:N_MISCLASSIFIED]
    titles = [f"{names[y[i]]}\n→ {names[predicted[i]]}" for i in wrong]
    save_image_grid(data.MISCLASSIFIED_PLOT, x[wrong], titles)
    data.write_json(data.EVALUATE_REPORT, report)  # rounded above


if __name__ == "__main__":
    run(main)
