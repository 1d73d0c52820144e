"""Classify images with a trained model: `python -m predict --model data/model.keras IMAGE...`.

Not a pipeline stage: it reads a model and changes no output (docs/registry.md)."""

import argparse
import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# All that predict takes from the pipeline's code, in one place.
from stages.data import CLASS_NAMES, IMAGES_MAGIC, MODEL, parse_idx, scale_and_flatten
from stages.exits import UserError, run
from stages.keras_model import load_model

SIDE = 28  # the model's inputs: SIDE x SIDE pixels, flattened
GZIP_MAGIC = b"\x1f\x8b"
IDX_UBYTE = b"\x00\x00\x08"  # an IDX file starts with two zero bytes, then 8: unsigned bytes


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
    return scale_and_flatten(np.asarray(fitted)[np.newaxis]), inverted


def read_batch(path: Path, head: bytes) -> np.ndarray:
    """A .npy array or an IDX images file (raw or gzip) → n x 784 float32 rows in [0, 1]."""
    if head.startswith(np.lib.format.MAGIC_PREFIX):
        try:
            array = np.load(path, allow_pickle=False)  # an object array would run its pickle's code
        except ValueError as error:
            raise UserError(f"{path}: not a readable .npy array ({error})") from None
    else:
        data = path.read_bytes()
        array = parse_idx(gzip.decompress(data) if head.startswith(GZIP_MAGIC) else data,
                          IMAGES_MAGIC, str(path))
    if array.shape[1:] not in ((SIDE * SIDE,), (SIDE, SIDE)) or not len(array):
        raise UserError(f"{path}: an array of shape {array.shape}; "
                        "expected n x 784 or n x 28 x 28, n > 0")
    if array.dtype == np.uint8:
        return scale_and_flatten(array)
    if not (np.issubdtype(array.dtype, np.floating) and np.all((array >= 0) & (array <= 1))):
        raise UserError(f"{path}: {array.dtype} values must be uint8 0-255 or floats in [0, 1]")
    return array.reshape(len(array), SIDE * SIDE).astype(np.float32)


def read_inputs(path: Path) -> tuple[list[str], np.ndarray, bool]:
    """(a label per row, the rows, whether the image was inverted) of one input file."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with open(path, "rb") as file:
            head = file.read(len(np.lib.format.MAGIC_PREFIX))
        if head.startswith((np.lib.format.MAGIC_PREFIX, GZIP_MAGIC, IDX_UBYTE)):  # not by name
            rows = read_batch(path, head)
            return [f"{path}[{i}]" for i in range(len(rows))], rows, False
        rows, inverted = read_image(path)
    except (OSError, EOFError) as error:  # unreadable, or a truncated image or gzip file
        why = getattr(error, "strerror", None) or error
        raise UserError(f"cannot read {path}: {why}") from None
    return [str(path)], rows, inverted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL, help="a .keras file")
    parser.add_argument("--top", type=int, default=1, choices=range(1, len(CLASS_NAMES) + 1),
                        metavar="K", help="print the K most probable classes (default 1)")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE",
                        help="image, .npy or IDX file")
    args = parser.parse_args(argv)
    # Every input is read and checked before TensorFlow loads: a bad one fails at once.
    labels, rows = [], []
    for path in args.inputs:
        names, x, inverted = read_inputs(path)
        labels += [f"{name} (inverted: dark on light)" if inverted else name for name in names]
        rows.append(x)
    net = load_model(args.model)
    expected = ((None, SIDE * SIDE), (None, len(CLASS_NAMES)))
    if (net.input_shape, net.output_shape) != expected:
        raise UserError(f"{args.model}: a model of inputs {net.input_shape} and outputs "
                        f"{net.output_shape}; expected {expected[0]} and {expected[1]}")
    probabilities = net.predict(np.concatenate(rows), verbose=0)
    for label, p in zip(labels, probabilities, strict=True):
        best = np.argsort(-p, kind="stable")[: args.top]
        print(f"{label}: " + ", ".join(f"{CLASS_NAMES[c]} {p[c]:.1%}" for c in best))


if __name__ == "__main__":
    run(main)
