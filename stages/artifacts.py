"""Where each stage's outputs live (as declared in dvc.yaml), and how later stages read them."""

from pathlib import Path

import numpy as np

from stages.files import load_npy

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
SPLIT_DIR = Path("data/split")
MODEL = Path("data/model.keras")

# Each stage's full report (DVC-cached outputs); summary.json, the study's figures, is the one
# metrics file, so `dvc exp show` shows each figure once, the headline accuracies first.
DATA_REPORT = Path("metrics/data.json")
SGD_CV_REPORT = Path("metrics/sgd_cv.json")
TRAIN_REPORT = Path("metrics/train.json")
EVALUATE_REPORT = Path("metrics/evaluate.json")
SUMMARY_METRICS = Path("metrics/summary.json")

FIRST_IMAGES_PLOT = Path("plots/first_images.png")
TRAIN_HISTORY_PLOT = Path("plots/train_history.csv")
CONFUSION_PLOT = Path("plots/confusion.csv")
MISCLASSIFIED_PLOT = Path("plots/misclassified.png")
PER_CLASS_PLOT = Path("plots/per_class_accuracy.csv")


def load_prepared(part: str) -> tuple[np.ndarray, np.ndarray]:
    """Prepared (x, y) of `part` 'train' or 'test', memory-mapped: x is n × 784 float32 in [0, 1]."""
    return load_npy(PREPARED_DIR / f"x_{part}.npy"), load_npy(PREPARED_DIR / f"y_{part}.npy")


def load_split(part: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of `part` 'train' or 'val': the rows of the prepared training set that split chose."""
    x, y = load_prepared("train")
    rows = load_npy(SPLIT_DIR / f"{part}_idx.npy")
    return x[rows], y[rows]
