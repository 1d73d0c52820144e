"""IDX files (the format of MNIST and Fashion-MNIST), read with checks that name what is wrong."""

import os
from pathlib import Path

import numpy as np

from stages.errors import UserError

IMAGES_MAGIC = 2051  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # unsigned bytes, 1 dimension


def parse_idx(data: bytes, magic: int, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes with the expected magic number into a read-only uint8 array."""
    ndim = magic & 0xFF  # the magic number's last byte counts the dimensions
    header_size = 4 + 4 * ndim
    if len(data) >= 4 and (found := int.from_bytes(data[:4], "big")) != magic:
        raise UserError(f"{name}: magic number {found}, expected {magic}")
    if len(data) < header_size:
        raise UserError(
            f"{name}: {len(data)} bytes is too short for an IDX header "
            f"(expected at least {header_size})"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise UserError(
            f"{name}: {len(data)} bytes, but its header {shape} needs {expected}: "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_images_and_labels(
    images_path: str | os.PathLike, labels_path: str | os.PathLike, size: tuple[int, int] = (28, 28)
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file; check the image size and that the counts agree."""
    images = parse_idx(_read(images_path), IMAGES_MAGIC, str(images_path))
    labels = parse_idx(_read(labels_path), LABELS_MAGIC, str(labels_path))
    if images.shape[1:] != size:
        raise UserError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {size[0]}x{size[1]}"
        )
    if len(images) != len(labels):
        raise UserError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    return images, labels


def _read(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
