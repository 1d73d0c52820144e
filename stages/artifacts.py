"""Where each stage's outputs live (as declared in dvc.yaml), and how later stages read them."""

from pathlib import Path

import numpy as np

from stages.files import load_npy

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
SPLIT_DIR = Path("data/split")
MODEL = Path("data/model.keras")

DATA_METRICS = Path("metrics/data.json")
SGD_CV_METRICS = Path("metrics/sgd_cv.json")
TRAIN_METRICS = Path("metrics/train.json")
EVALUATE_METRICS = Path("metrics/evaluate.json")
SUMMARY_METRICS = Path("metrics/summary.json")

FIRST_IMAGES_PLOT = Path("plots/first_images.png")
TRAIN_HISTORY_PLOT = Path("plots/train_history.csv")
CONFUSION_PLOT = Path("plots/confusion.csv")
MISCLASSIFIED_PLOT = Path("plots/misclassified.png")


def load_prepared(part: str) -> tuple[np.ndarray, np.ndarray]:
    """Prepared (x, y) of `part` 'train' or 'test', memory-mapped: x is n × 784 float32 in [0, 1]."""
    return load_npy(PREPARED_DIR / f"x_{part}.npy"), load_npy(PREPARED_DIR / f"y_{part}.npy")


def load_split(part: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of `part` 'train' or 'val': the rows of the prepared training set that split chose."""
    x, y = load_prepared("train")
    rows = load_npy(SPLIT_DIR / f"{part}_idx.npy")
    return x[rows], y[rows]
