"""The data: what Fashion-MNIST is, where each stage's outputs live, how they are written, read."""

import contextlib
import csv
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stages.exits import UserError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # where dataset-fashion-mnist puts the files
# The sha256 of each file's decompressed IDX bytes: mirrors recompress, so the .gz bytes differ.
FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
SPLIT_DIR = Path("data/split")
MODEL = Path("data/model.keras")
# Each stage's full report (DVC-cached); summary.json, the study's figures, is the one metrics file.
DATA_REPORT = Path("metrics/data.json")
SGD_CV_REPORT = Path("metrics/sgd_cv.json")
TRAIN_REPORT = Path("metrics/train.json")
EVALUATE_REPORT = Path("metrics/evaluate.json")
SUMMARY_METRICS = Path("metrics/summary.json")
FIRST_IMAGES_PLOT = Path("plots/first_images.png")
TRAIN_HISTORY_PLOT = Path("plots/train_history.csv")
CONFUSION_PLOT = Path("plots/confusion.csv")
PER_CLASS_PLOT = Path("plots/per_class_accuracy.csv")
MISCLASSIFIED_PLOT = Path("plots/misclassified.png")
# Every stage's outputs, as dvc.yaml declares them (tests/test_dvc_yaml.py checks that they agree).
OUTPUTS: dict[str, tuple[Path, ...]] = {
    "download": (RAW_DIR,),
    "prepare": (PREPARED_DIR, DATA_REPORT, FIRST_IMAGES_PLOT),
    "split": (SPLIT_DIR,),
    "sgd_cv": (SGD_CV_REPORT,),
    "train": (MODEL, TRAIN_REPORT, TRAIN_HISTORY_PLOT),
    "evaluate": (EVALUATE_REPORT, CONFUSION_PLOT, PER_CLASS_PLOT, MISCLASSIFIED_PLOT),
    "summary": (SUMMARY_METRICS,),
}


def isolate() -> None:
    """Keras's and Matplotlib's homes in the workspace, not the user's.

    Runs in parallel (`dvc queue start -j N`) would share them; ~/.keras/keras.json can change the
    backend or the float type."""
    home = Path(".dvc/tmp/stage-home").resolve()
    os.environ.update(KERAS_HOME=str(home / "keras"), MPLCONFIGDIR=str(home / "matplotlib"),
                      KERAS_BACKEND="tensorflow")  # the stages use TensorFlow directly
    for name in ("KERAS_MAX_EPOCHS", "KERAS_MAX_STEPS_PER_EPOCH", "MATPLOTLIBRC"):
        os.environ.pop(name, None)  # each would make a result depend on more than params.yaml


# metrics/*.json at the precision that means something: far above float noise (the last bits differ
# between CPUs' kernels), below any real change. An accuracy k/n moves by 1/n per sample: 6 decimals
# show that for every n up to 10^6. A loss, a mean of float32 terms, agrees between kernels to about
# 2e-7 relative: 5 significant digits sit 50 times above that and still show one changed sample in
# 10^4.
ACCURACY_DECIMALS = 6
LOSS_DIGITS = 5


def rounded(report: Any, key: str = "") -> Any:
    """`report`, each float rounded: LOSS_DIGITS for a loss (a key naming `loss`), else decimals."""
    if isinstance(report, dict):
        return {name: rounded(value, name) for name, value in report.items()}
    if isinstance(report, list):
        return [rounded(value, key) for value in report]
    if isinstance(report, float):
        if "loss" in key:
            return float(f"{report:.{LOSS_DIGITS}g}")
        return round(report, ACCURACY_DECIMALS)
    return report


def made_by(path: str | os.PathLike) -> str | None:
    """The stage whose output `path` is or lies in, if any."""
    path = Path(path)
    return next((stage for stage, outs in OUTPUTS.items() for out in outs
                 if out in (path, *path.parents)), None)


@contextlib.contextmanager
def reading(path: str | os.PathLike, kind: str) -> Iterator[None]:
    """A failure to read input `path` (missing, unreadable, not `kind`) as a UserError."""
    path, maker = Path(path), made_by(path)
    how = (f"; `dvc repro {maker}` makes it (or `dvc pull` fetches it, if the team store is set up)"
           if maker else "")
    try:
        yield
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}{how}") from None
    except ValueError as error:
        raise UserError(f"cannot read {path}: not {kind} ({error}){how}") from None


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """A temporary sibling of `path` to write, renamed onto `path` as the block ends, or removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before it exists, so that a stop at any point removes whatever was created; the suffix
    # stays, as Keras checks for `.keras`.
    tmp = path.with_name(f".{path.stem}-tmp-{os.urandom(4).hex()}{path.suffix}")
    try:
        tmp.mkdir() if directory else tmp.touch(exist_ok=False)
        tmp.chmod(0o755 if directory else 0o644)  # outputs readable by all, whatever the umask
        yield tmp
        if directory and path.exists():
            remove(path)  # os.replace cannot replace a non-empty directory
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def write_json(path: str | os.PathLike, report: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(rounded(report), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    with reading(path, "JSON"):
        return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, columns: dict[str, Sequence[Any]]) -> None:
    """Write equal-length `columns` as a CSV table with a header row (a DVC plot)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """A .npy file, memory-mapped: a stage reads only the rows it needs, without a copy."""
    with reading(path, "a NumPy array file"):
        return np.load(path, mmap_mode="r", allow_pickle=False)  # no object arrays, no code


def scale_and_flatten(images: np.ndarray) -> np.ndarray:
    """uint8 images (n × 28 × 28 or n × 784) → float32 rows of 784 values in [0, 1]."""
    return np.divide(images.reshape(len(images), -1), 255, dtype=np.float32)


def load_prepared(part: str) -> tuple[np.ndarray, np.ndarray]:
    """Prepared (x, y) of `part` 'train' or 'test': x is scale_and_flatten's rows."""
    return load_npy(PREPARED_DIR / f"x_{part}.npy"), load_npy(PREPARED_DIR / f"y_{part}.npy")


def load_split(part: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of `part` 'train' or 'val': the rows of the prepared training set that split chose."""
    x, y = load_prepared("train")
    rows = load_npy(SPLIT_DIR / f"{part}_idx.npy")
    return x[rows], y[rows]


# IDX, the format of MNIST and Fashion-MNIST: a magic number, the dimensions, the bytes.
IMAGES_MAGIC = 2051  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # unsigned bytes, 1 dimension


def parse_idx(data: bytes, magic: int, name: str = "IDX data") -> np.ndarray:
    ndim = magic & 0xFF  # the magic number's last byte counts the dimensions
    header_size = 4 + 4 * ndim
    if len(data) >= 4 and (found := int.from_bytes(data[:4], "big")) != magic:
        raise UserError(f"{name}: magic number {found}, expected {magic}")
    if len(data) < header_size:
        raise UserError(f"{name}: {len(data)} bytes is too short for an IDX header "
                        f"(expected at least {header_size})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise UserError(f"{name}: {len(data)} bytes, but its header {shape} needs {expected}: "
                        "the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_images_and_labels(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file; check that images are 28x28 and the counts agree."""
    arrays = []
    for path, magic in ((images_path, IMAGES_MAGIC), (labels_path, LABELS_MAGIC)):
        with reading(path, "an IDX file"):
            arrays.append(parse_idx(path.read_bytes(), magic, str(path)))
    images, labels = arrays
    if images.shape[1:] != (28, 28):
        height, width = images.shape[1:]
        raise UserError(f"{images_path}: images are {height}x{width}, expected 28x28")
    if len(images) != len(labels):
        raise UserError(f"{images_path} has {len(images)} images but {labels_path} has "
                        f"{len(labels)} labels")
    return images, labels
