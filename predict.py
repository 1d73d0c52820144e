"""Classify images with a trained model: `python -m predict --model data/model.keras IMAGE...`.

Not a pipeline stage: it reads a model and changes no output (docs/registry.md). Inputs become
what the pipeline feeds the model, 784 floats in [0, 1], a light garment on black: an image of any
size is fitted into 28x28 grayscale (inverted first if it is dark on light, and the output says
so); .npy and IDX batches are taken as they are.
"""

import argparse
import gzip
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# All that predict takes from the pipeline's code, in one place.
from stages.cli import UserError, run
from stages.data import CLASS_NAMES, IMAGES_MAGIC, parse_idx

SIDE = 28  # the model's inputs: SIDE x SIDE pixels, flattened
GZIP_MAGIC = b"\x1f\x8b"
IDX_UBYTE = b"\x00\x00\x08"  # an IDX file starts with two zero bytes, then 8: unsigned bytes


def scale(pixels: np.ndarray) -> np.ndarray:
    """uint8 images → float32 rows of SIDE * SIDE values in [0, 1], as the prepare stage scales them."""
    return np.divide(pixels.reshape(len(pixels), SIDE * SIDE), 255, dtype=np.float32)


def is_dark_on_light(gray: np.ndarray) -> bool:
    """True if the image's one-pixel border is brighter on average than its central half."""
    h, w = gray.shape
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    centre = gray[h // 4 : h - h // 4, w // 4 : w - w // 4]
    return border.mean() > centre.mean()


def read_image(path: Path) -> tuple[np.ndarray, bool]:
    """One image file → (a 1 x 784 row, whether it was inverted)."""
    try:
        with Image.open(path) as image:
            gray = ImageOps.exif_transpose(image).convert("L")  # a phone photo's stored rotation
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read, nor a .npy or IDX batch") from None
    inverted = is_dark_on_light(np.asarray(gray))
    if inverted:
        gray = ImageOps.invert(gray)
    # Fit the longer side to 28 pixels, pad the other with black (a 28x28 image stays as it is).
    fitted = ImageOps.pad(gray, (SIDE, SIDE), method=Image.Resampling.LANCZOS, color=0)
    return scale(np.asarray(fitted)[np.newaxis]), inverted


def read_batch(path: Path, head: bytes) -> np.ndarray:
    """A .npy array or an IDX images file (raw or gzip) → n x 784 float32 rows in [0, 1]."""
    if head.startswith(np.lib.format.MAGIC_PREFIX):
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise UserError(f"{path}: not a readable .npy array ({error})") from None
    else:
        data = gzip.decompress(path.read_bytes()) if head.startswith(GZIP_MAGIC) else path.read_bytes()
        array = parse_idx(data, IMAGES_MAGIC, str(path))
    if array.ndim not in (2, 3) or array.shape[1:] not in ((SIDE * SIDE,), (SIDE, SIDE)) or not len(array):
        raise UserError(f"{path}: an array of shape {array.shape}; expected n x 784 or n x 28 x 28, n > 0")
    if array.dtype == np.uint8:
        return scale(array)
    if not np.issubdtype(array.dtype, np.floating) or not (np.all(array >= 0) and np.all(array <= 1)):
        raise UserError(f"{path}: {array.dtype} values must be uint8 0-255 or floats in [0, 1]")
    return array.reshape(len(array), SIDE * SIDE).astype(np.float32)


def read_inputs(path: Path) -> tuple[list[str], np.ndarray, bool]:
    """(a label per row, the rows, whether the image was inverted) of one input file."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, "rb") as file:
            head = file.read(len(np.lib.format.MAGIC_PREFIX))
        if head.startswith((np.lib.format.MAGIC_PREFIX, GZIP_MAGIC, IDX_UBYTE)):  # by content, not name
            rows = read_batch(path, head)
            return [f"{path}[{i}]" for i in range(len(rows))], rows, False
        rows, inverted = read_image(path)
    except (OSError, EOFError) as error:  # unreadable, or a truncated image or gzip file
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    return [str(path)], rows, inverted


def load_model(path: Path):
    """The model, loaded in safe mode (no code stored in the file runs); a bad file is a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: no such model file (`dvc pull data/model.keras` fetches the pipeline's; "
                        "docs/registry.md says how to get a released version)")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a .keras model file (the zip archive `model.save` writes)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as the stages: no C++ info, warning or E0000 lines
    os.environ["KERAS_BACKEND"] = "tensorflow"  # the model was trained on TensorFlow
    import keras

    try:
        net = keras.models.load_model(path, safe_mode=True)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:  # a broken or unsafe file
        raise UserError(f"cannot load model {path}: {' '.join(str(error).split())}") from None
    if net.input_shape != (None, SIDE * SIDE) or net.output_shape != (None, len(CLASS_NAMES)):
        raise UserError(f"{path}: a model of inputs {net.input_shape} and outputs {net.output_shape}; "
                        f"expected (None, 784) and (None, {len(CLASS_NAMES)})")
    return net


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("data/model.keras"), help="a .keras file")
    parser.add_argument("--top", type=int, default=1, choices=range(1, len(CLASS_NAMES) + 1),
                        metavar="K", help="print the K most probable classes (default 1)")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE", help="image, .npy or IDX file")
    args = parser.parse_args(argv)
    # Every input is read and checked before TensorFlow loads: a bad one fails at once.
    labels, rows = [], []
    for path in args.inputs:
        names, x, inverted = read_inputs(path)
        labels += [f"{name} (inverted: dark on light)" if inverted else name for name in names]
        rows.append(x)
    probabilities = load_model(args.model).predict(np.concatenate(rows), verbose=0)
    for label, p in zip(labels, probabilities, strict=True):
        best = np.argsort(-p, kind="stable")[: args.top]
        print(f"{label}: " + ", ".join(f"{CLASS_NAMES[c]} {p[c]:.1%}" for c in best))


if __name__ == "__main__":
    run(main)
